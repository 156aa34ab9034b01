//! The code under fuzzing. The runner's `config` module (experiment files, `--set`, trial config
//! files) is compiled here from its source file, so that the fuzz build needs neither polars nor
//! the report crate (the module uses only its own files and the data and model crates); the
//! model crate (weights, checkpoints) is a dependency.

#[allow(dead_code, clippy::all)]
#[path = "../../crates/runner/src/config/mod.rs"]
pub mod config;
