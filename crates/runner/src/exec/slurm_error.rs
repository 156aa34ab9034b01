//! What can go wrong talking to Slurm (`sbatch`, `squeue`, `sinfo`, `scancel`) or with the
//! sweep's Slurm folder: shared by the job-array side ([`super::slurm`]) and the queue side
//! ([`super::slurm_queue`]).

use std::path::PathBuf;

/// A failure talking to Slurm.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// A Slurm command could not be started (not installed, not on `PATH`).
    #[error("cannot run `{command}` (is Slurm installed and on PATH?)")]
    Spawn {
        /// The command.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `sbatch` refused the job, or `squeue` failed.
    #[error("slurm command failed (exit {code:?}): {stderr}")]
    Refused {
        /// Its exit code.
        code: Option<i32>,
        /// What it printed on stderr.
        stderr: String,
    },
    /// `sbatch --parsable` printed something that is not a job id.
    #[error("`sbatch --parsable` printed {0:?}, not a job id")]
    BadJobId(String),
    /// A file of the sweep's Slurm folder could not be written or read.
    #[error("cannot write or read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
