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

/// Whether `e` (or a cause of it) is a write that failed for lack of disk space or quota.
pub fn out_of_space(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
                return true;
            }
        }
        // Libraries that keep the I/O error as text only (polars).
        let text = err.to_string().to_lowercase();
        if text.contains("no space left on device") || text.contains("disk quota exceeded") {
            return true;
        }
        cur = err.source();
    }
    false
}

/// What to do after running out of disk space.
pub const NO_SPACE_HINT: &str =
    "free space (or raise the quota), then run the same command again to resume";

/// The one line printed for an error: [`error_chain`], and what to do when the disk is full.
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let text = error_chain(e);
    if out_of_space(e) {
        format!("{text}; {NO_SPACE_HINT}")
    } else {
        text
    }
}

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
