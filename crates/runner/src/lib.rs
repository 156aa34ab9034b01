//! The `ablate` runner: experiment files, trials, device queues and results.
//!
//! | module | what |
//! | --- | --- |
//! | [`cli`] | the command line (clap) |
//! | [`commands`] | one module per subcommand (`sweep`, `trial`, `report`, `eval`, `data`, `golden`, `bench`, `slurm-task`), the seed rounds of seeds by precision, and the test hooks of `trial` |
//! | [`config`] | experiment files parsed in passes into trials with stable ids |
//! | [`exec`] | the scheduler, device slots, child processes, Slurm job arrays, signals, the results and trial locks |
//! | [`results`] | a trial folder's records (sealed with checksums; damaged ones set aside), and the Parquet files rebuilt from them through `ablate_schema` |

pub mod cli;
pub mod commands;
pub mod config;
pub mod device;
pub mod exec;
pub mod results;
