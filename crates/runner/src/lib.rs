//! The `ablate` runner: experiment files, trials, device queues and results.

pub mod cli;
pub mod commands;
pub mod config;
pub mod device;
pub mod exec;
pub mod results;
