//! `ablate-lint`: house rules of the workspace that a test can check by reading the source.
//!
//! | module | what |
//! | --- | --- |
//! | [`modules`] | the modules of a library crate, from its file tree |
//! | [`paths`] | the `crate::`, `super::` and `self::` paths a source file names |
//! | [`cycles`] | import cycles between sibling modules |
//!
//! The checks run as this crate's tests (`tests/module_cycles.rs`) over every crate of the
//! workspace, so `cargo test --workspace` fails on a new cycle.

pub mod cycles;
pub mod modules;
pub mod paths;

pub use cycles::{find_cycles, Cycle};
pub use modules::{crate_modules, Module};
