//! Launching a trial as a child process (`ablate trial DIR`) and telling it to stop.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use super::scheduler::Slot;
use crate::results::records::files;

/// Environment variable naming the device of a trial child (`cpu`, `cuda:0`, ...).
pub const DEVICE_ENV: &str = "ABLATE_DEVICE";

/// How to start trial children.
#[derive(Debug, Clone)]
pub struct ChildCommand {
    /// The `ablate` executable (normally `std::env::current_exe()`).
    pub exe: PathBuf,
}

impl ChildCommand {
    /// Children run the current executable.
    pub fn current_exe() -> io::Result<Self> {
        Ok(Self {
            exe: std::env::current_exe()?,
        })
    }

    /// Starts `exe trial DIR` on `slot`, stdout and stderr appended to `DIR/log.txt`, in its own
    /// process group (so a terminal's Ctrl-C reaches only the sweep, which forwards it), with
    /// `RAYON_NUM_THREADS` set to the slot's share of the cores and `ABLATE_DEVICE` to its
    /// device. On Linux the child gets SIGTERM if the sweep dies, so no orphan keeps writing.
    pub fn spawn(&self, trial_dir: &Path, slot: &Slot) -> io::Result<Child> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(trial_dir.join(files::LOG))?;
        let mut cmd = Command::new(&self.exe);
        cmd.arg("trial")
            .arg(trial_dir)
            .env("RAYON_NUM_THREADS", slot.threads.to_string())
            .env(DEVICE_ENV, slot.device.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
            #[cfg(target_os = "linux")]
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            };
        }
        cmd.spawn()
    }
}

/// Sends `signal` (e.g. `libc::SIGINT`) to a child; errors (it already exited) are ignored.
pub fn send_signal(child: &Child, signal: i32) {
    #[cfg(unix)]
    // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    };
    #[cfg(not(unix))]
    let _ = (child, signal);
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl From<ExitStatus> for ChildExit {
    fn from(s: ExitStatus) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(sig) = s.signal() {
                return Self::Signal(sig);
            }
        }
        Self::Code(s.code().unwrap_or(-1))
    }
}

/// A readable name for a signal number.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        _ => "signal",
    }
}
