//! Running trials: device slots and the queue, child processes, the sweep lock, signals and
//! progress.

pub mod child;
pub mod lock;
pub mod progress;
pub mod run;
pub mod scheduler;
pub mod signals;
pub mod slurm;
pub mod slurm_error;
pub mod slurm_queue;

/// Exit codes of `ablate trial` and `ablate sweep` (documented in docs/running.md).
pub mod exit_codes {
    /// `ablate trial`: trained all planned epochs.
    pub const TRIAL_COMPLETED: i32 = 0;
    /// `ablate trial`: an error (bad config, data, I/O); a panic exits with 101.
    pub const TRIAL_ERROR: i32 = 1;
    /// `ablate trial`: the loss became non-finite.
    pub const TRIAL_DIVERGED: i32 = 3;
    /// `ablate trial`: stopped by SIGINT/SIGTERM after checkpointing; resumable.
    pub const TRIAL_INTERRUPTED: i32 = 4;
    /// `ablate trial`: a write failed for lack of disk space (or quota); resumable once space is
    /// freed. The sweep stops when a trial exits with it.
    pub const TRIAL_NO_SPACE: i32 = 5;

    /// `ablate sweep`: every trial completed.
    pub const SWEEP_OK: i32 = 0;
    /// `ablate sweep`: the sweep itself failed (experiment file, lock, I/O).
    pub const SWEEP_ERROR: i32 = 1;
    /// `ablate sweep`: it ran to the end, but some trials failed or diverged.
    pub const SWEEP_TRIALS_FAILED: i32 = 3;
    /// `ablate sweep`: stopped by Ctrl-C; run it again to resume.
    pub const SWEEP_INTERRUPTED: i32 = 4;
}
