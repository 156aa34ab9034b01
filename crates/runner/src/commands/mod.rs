//! One module per subcommand; each `run` returns the process exit code.

pub mod bench;
pub mod data;
pub mod devices;
pub mod eval;
pub mod golden;
pub mod plan;
pub mod report;
pub mod seed_rounds;
pub mod slurm_task;
pub mod sweep;
pub mod sweep_slurm;
pub mod test_hooks;
pub mod trial;

/// The result of a subcommand: the exit code, or an error to print.
pub type CommandResult = anyhow::Result<i32>;

/// `outer: cause: root cause`, the way errors are printed.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Skip a cause whose text the outer message already contains.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
