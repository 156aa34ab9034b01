//! The sweep lock: one sweep at a time writes a results folder; and the trial lock: one process
//! at a time writes a trial folder.
//!
//! `results/<name>/sweep.lock` is locked exclusively (`flock` through fs4) for the whole sweep
//! and holds the holder's process id, so a second sweep can say who holds it. The lock is
//! released by the kernel when the holder exits, however it exits; the file itself stays.
//!
//! `trials/<id>/trial.lock` is the same for `ablate trial`: a sweep killed with SIGKILL leaves
//! its trials running until they have checkpointed (they get SIGTERM when it dies); a sweep
//! restarted at once waits for them ([`SweepLock::acquire_waiting`]) instead of writing the same
//! folder twice.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Errors taking the sweep lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "{path} is locked by another {holder}{}; wait for it to finish or stop it first",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Held {
        /// What holds such a lock (`sweep`, `trial process`).
        holder: &'static str,
        /// The lock file.
        path: PathBuf,
        /// The holder's process id, as it wrote it.
        pid: Option<u32>,
    },
    /// The lock file could not be opened, locked or written.
    #[error("cannot lock {path}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// An exclusive lock on a results folder, held until dropped.
#[derive(Debug)]
pub struct SweepLock {
    file: File,
    path: PathBuf,
}

impl SweepLock {
    /// Takes the lock at `path` (creating the file), without waiting.
    pub fn acquire(path: &Path) -> Result<Self, LockError> {
        Self::take(path, "sweep", None)
    }

    /// Takes the lock at `path`, waiting up to `wait` for its holder (a `trial process`) to
    /// release it.
    pub fn acquire_waiting(path: &Path, wait: std::time::Duration) -> Result<Self, LockError> {
        Self::take(path, "trial process", Some(wait))
    }

    fn take(
        path: &Path,
        holder: &'static str,
        wait: Option<std::time::Duration>,
    ) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let deadline = wait.map(|w| std::time::Instant::now() + w);
        loop {
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => break,
                Err(fs4::TryLockError::WouldBlock)
                    if deadline.is_some_and(|d| std::time::Instant::now() < d) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(fs4::TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    return Err(LockError::Held {
                        holder,
                        path: path.to_path_buf(),
                        pid: text.trim().parse().ok(),
                    });
                }
                Err(fs4::TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SweepLock {
    fn drop(&mut self) {
        let _ = fs4::FileExt::unlock(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holder_pid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sweep.lock");
        let held = SweepLock::acquire(&p).unwrap();
        let err = SweepLock::acquire(&p).unwrap_err();
        match &err {
            LockError::Held { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
            other => panic!("unexpected {other:?}"),
        }
        assert!(err
            .to_string()
            .contains(&format!("pid {}", std::process::id())));
        drop(held);
        SweepLock::acquire(&p).expect("free again after drop");
    }
}
