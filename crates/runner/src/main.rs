//! `ablate`: parses the command line and dispatches to `commands::*`.

use std::process::ExitCode;

use clap::Parser;

use ablate_runner::cli::{Cli, Command, DataCommand, EXIT_ERROR};
use ablate_runner::commands;

#[global_allocator]
static GLOBAL: ablate_model::allocator::Allocator = ablate_model::allocator::Allocator;

fn main() -> ExitCode {
    ablate_model::allocator::configure();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sweep(args) => commands::sweep::run(args),
        Command::Trial(args) => commands::trial::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Golden(args) => commands::golden::run(args),
        Command::Data(DataCommand::Info(args)) => commands::data::info(args),
        Command::Data(DataCommand::Export(args)) => commands::data::export(args),
        Command::Devices => commands::devices::run(),
        Command::SlurmTask(args) => commands::slurm_task::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {}", commands::error_line(&*e));
            ExitCode::from(EXIT_ERROR as u8)
        }
    }
}
