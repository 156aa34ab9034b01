//! The sweep loop: launches trial children on free slots, watches them, records how each ended,
//! retries failures, and stops cleanly on Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use super::child::{send_signal, signal_name, ChildCommand, ChildExit};
use super::exit_codes;
use super::progress::{Progress, TrialProgress};
use super::scheduler::{Decision, Scheduler, Slot};
use super::signals::StopFlag;
use crate::results::records::{
    files, now_rfc3339, read_last_jsonl, tail_lines, write_json_atomic, RecordError, TrialState,
    TrialStatus,
};

/// Lines of the trial log kept in the error of a failed trial.
pub const ERROR_LOG_LINES: usize = 20;

/// A trial to run: its folder holds `config.toml` (and `trial.json`).
#[derive(Debug, Clone)]
pub struct TrialJob {
    /// The trial id.
    pub trial_id: String,
    /// The trial folder.
    pub dir: PathBuf,
    /// Label for progress lines (e.g. `3f2a9c01d4e7 attention=se reduction=16 seed=0`).
    pub label: String,
    /// Planned epochs.
    pub epochs_planned: u32,
}

/// How to run the trials.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// How children are started.
    pub child: ChildCommand,
    /// The device slots.
    pub slots: Vec<Slot>,
    /// Extra attempts for failed trials.
    pub retries: u32,
    /// How often children are polled.
    pub poll: Duration,
}

/// How the run went.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// Final state of each job launched in this run (`None`: not launched, e.g. after Ctrl-C).
    pub states: Vec<Option<TrialState>>,
    /// Whether a stop signal cut the run short.
    pub interrupted: bool,
    /// The folder of the first trial that ran out of disk space: the run stopped there.
    pub no_space: Option<PathBuf>,
}

/// Errors of the sweep loop itself (a trial's own failure is not one).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A status file could not be read or written.
    #[error("cannot update the status of trial {trial_id}")]
    Status {
        /// The trial.
        trial_id: String,
        /// The cause (boxed: it is large, and errors travel by value).
        #[source]
        source: Box<RecordError>,
    },
    /// Waiting for a child failed.
    #[error("cannot wait for the child process of trial {trial_id}")]
    Wait {
        /// The trial.
        trial_id: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

struct Running {
    job: usize,
    child: Child,
    attempts_before: u32,
}

/// Runs `order` (indices into `jobs`) on the slots until all are done or a stop is asked.
///
/// The first stop signal stops launching and forwards SIGINT to the running children, which
/// checkpoint and exit (recorded as interrupted); a second one kills them (SIGKILL); their
/// last checkpoint stays, so the trials are resumable either way.
pub fn run_trials(
    jobs: &[TrialJob],
    order: impl IntoIterator<Item = usize>,
    opts: &RunOptions,
    stop: &StopFlag,
    progress: &mut Progress,
) -> Result<RunReport, RunError> {
    let mut run = SweepLoop {
        jobs,
        opts,
        sched: Scheduler::new(opts.slots.len(), jobs.len(), order, opts.retries),
        running: (0..opts.slots.len()).map(|_| None).collect(),
        states: vec![None; jobs.len()],
        forwarded: 0,
        no_space: None,
        last_progress: Instant::now(),
    };
    loop {
        run.forward_signals(stop.count(), progress);
        run.launch_ready(progress)?;
        run.poll_children(progress)?;
        run.stop_on_full_disk(progress);
        if run.sched.is_done() {
            break;
        }
        std::thread::sleep(opts.poll);
    }
    Ok(RunReport {
        states: run.states,
        interrupted: run.forwarded > 0,
        no_space: run.no_space,
    })
}

/// The state of [`run_trials`]' loop.
struct SweepLoop<'a> {
    jobs: &'a [TrialJob],
    opts: &'a RunOptions,
    sched: Scheduler,
    /// The child running on each slot.
    running: Vec<Option<Running>>,
    /// How each launched job ended.
    states: Vec<Option<TrialState>>,
    /// Stop signals already acted on.
    forwarded: usize,
    /// The first trial that ran out of disk space.
    no_space: Option<PathBuf>,
    last_progress: Instant,
}

impl SweepLoop<'_> {
    /// Acts on stop signals not yet acted on: the first stops launching and asks the children
    /// to checkpoint and exit (SIGINT), a later one kills them.
    fn forward_signals(&mut self, signals: usize, progress: &mut Progress) {
        if signals <= self.forwarded {
            return;
        }
        if self.forwarded == 0 {
            self.sched.stop();
            progress.println(
                "stopping: running trials checkpoint and exit (Ctrl-C again to kill them now)",
            );
            for r in self.running.iter().flatten() {
                send_signal(&r.child, libc::SIGINT);
            }
        } else {
            progress.println("killing running trials; they resume from their last checkpoint");
            for r in self.running.iter().flatten() {
                send_signal(&r.child, libc::SIGKILL);
            }
        }
        self.forwarded = signals;
    }

    /// Starts the jobs the scheduler hands out, each on its slot, marking it running.
    fn launch_ready(&mut self, progress: &mut Progress) -> Result<(), RunError> {
        while let Some((slot, job)) = self.sched.next_launch() {
            let j = &self.jobs[job];
            let status_err = |source| RunError::Status {
                trial_id: j.trial_id.clone(),
                source: Box::new(source),
            };
            let mut status = read_status(&j.dir).map_err(status_err)?;
            let attempts_before = status.attempts;
            status.status = TrialState::Running;
            status.device = Some(self.opts.slots[slot].device.to_string());
            status.ended_at = None;
            status.error = None;
            status.exit_code = None;
            status.signal = None;
            write_json_atomic(&j.dir.join(files::STATUS), &status).map_err(status_err)?;
            progress.started(
                slot,
                &self.opts.slots[slot].to_string(),
                job,
                self.sched.attempts(job),
            );
            match self.opts.child.spawn(&j.dir, &self.opts.slots[slot]) {
                Ok(child) => {
                    self.running[slot] = Some(Running {
                        job,
                        child,
                        attempts_before,
                    })
                }
                Err(e) => {
                    status.status = TrialState::Failed;
                    status.attempts = attempts_before + 1;
                    status.error = Some(format!(
                        "cannot start `{} trial {}`: {e}",
                        self.opts.child.exe.display(),
                        j.dir.display()
                    ));
                    status.ended_at = Some(now_rfc3339());
                    write_json_atomic(&j.dir.join(files::STATUS), &status).map_err(status_err)?;
                    let d = self.sched.finished(slot, TrialState::Failed);
                    note_decision(progress, &mut self.states, slot, job, d, &e.to_string());
                }
            }
        }
        Ok(())
    }

    /// Polls every running child: updates its progress line (every 500 ms), and records the
    /// ones that exited.
    fn poll_children(&mut self, progress: &mut Progress) -> Result<(), RunError> {
        let show = self.last_progress.elapsed() >= Duration::from_millis(500);
        if show {
            self.last_progress = Instant::now();
        }
        for slot in 0..self.running.len() {
            let Some(r) = self.running[slot].as_mut() else {
                continue;
            };
            let j = &self.jobs[r.job];
            let exited = r.child.try_wait().map_err(|source| RunError::Wait {
                trial_id: j.trial_id.clone(),
                source,
            })?;
            match exited {
                None if show => progress.update(slot, r.job, &read_progress(&j.dir)),
                None => {}
                Some(exit) => {
                    // The last epochs may have finished between two polls.
                    progress.update(slot, r.job, &read_progress(&j.dir));
                    let r = self.running[slot].take().expect("checked above");
                    self.record_end(slot, r, ChildExit::from(exit), progress)?;
                }
            }
        }
        Ok(())
    }

    /// Records how the child of `slot` ended and tells the scheduler.
    fn record_end(
        &mut self,
        slot: usize,
        r: Running,
        exit: ChildExit,
        progress: &mut Progress,
    ) -> Result<(), RunError> {
        let j = &self.jobs[r.job];
        let (state, detail) =
            record_exit(&j.dir, exit, r.attempts_before, self.sched.is_stopping()).map_err(
                |source| RunError::Status {
                    trial_id: j.trial_id.clone(),
                    source: Box::new(source),
                },
            )?;
        let d = self.sched.finished(slot, state);
        note_decision(progress, &mut self.states, slot, r.job, d, &detail);
        if exit == ChildExit::Code(exit_codes::TRIAL_NO_SPACE) && self.no_space.is_none() {
            self.no_space = Some(j.dir.clone());
        }
        Ok(())
    }

    /// After a trial ran out of disk space, stops as on Ctrl-C: every other trial would fail
    /// the same way.
    fn stop_on_full_disk(&mut self, progress: &mut Progress) {
        let Some(dir) = self.no_space.as_ref().filter(|_| !self.sched.is_stopping()) else {
            return;
        };
        self.sched.stop();
        progress.println(&format!(
            "stopping: no space left on device in {}; running trials checkpoint and exit",
            dir.display()
        ));
        for other in self.running.iter().flatten() {
            send_signal(&other.child, libc::SIGINT);
        }
    }
}

fn note_decision(
    progress: &mut Progress,
    states: &mut [Option<TrialState>],
    slot: usize,
    job: usize,
    d: Decision,
    detail: &str,
) {
    match d {
        Decision::Done(state) => {
            states[job] = Some(state);
            progress.finished(slot, job, state, false, detail);
        }
        Decision::Retry(_) => {
            states[job] = Some(TrialState::Failed);
            progress.finished(slot, job, TrialState::Failed, true, detail);
        }
    }
}

fn read_status(dir: &Path) -> Result<TrialStatus, RecordError> {
    Ok(
        crate::results::damage::read_status(&dir.join(files::STATUS))?
            .unwrap_or_else(TrialStatus::pending),
    )
}

/// What a running trial last wrote.
pub fn read_progress(dir: &Path) -> TrialProgress {
    TrialProgress {
        iteration: read_last_jsonl(&dir.join(files::ITERATIONS)),
        epoch: read_last_jsonl(&dir.join(files::EPOCHS)),
    }
}

/// Records how a child ended in its `status.json` and returns the trial's state and a one-line
/// detail. `stopping`: the sweep forwarded a stop signal, so death by SIGINT/SIGTERM/SIGKILL is
/// an interruption, not a failure.
pub fn record_exit(
    dir: &Path,
    exit: ChildExit,
    attempts_before: u32,
    stopping: bool,
) -> Result<(TrialState, String), RecordError> {
    let mut status = read_status(dir)?;
    if status.attempts == attempts_before {
        // the child died before recording its start
        status.attempts += 1;
    }
    let child_error = status
        .error
        .take()
        .filter(|_| status.status != TrialState::Running);
    let (state, headline) = classify_exit(dir, exit, status.status, child_error, stopping);
    let detail = headline.clone().unwrap_or_default();
    status.error = headline.and_then(|h| with_log_tail(dir, state, h));
    status.status = state;
    match exit {
        ChildExit::Code(c) => {
            status.exit_code = Some(c);
            status.signal = None;
        }
        ChildExit::Signal(s) => {
            status.exit_code = None;
            status.signal = Some(s);
        }
    }
    status.pid = None;
    status.ended_at = Some(now_rfc3339());
    write_json_atomic(&dir.join(files::STATUS), &status)?;
    Ok((state, detail))
}

/// How a child's exit reads: the trial's state and, when it did not end well, a one-line
/// headline. `recorded`: the state the child wrote in `status.json`; `child_error`: the error
/// it recorded there.
fn classify_exit(
    dir: &Path,
    exit: ChildExit,
    recorded: TrialState,
    child_error: Option<String>,
    stopping: bool,
) -> (TrialState, Option<String>) {
    match exit {
        ChildExit::Code(exit_codes::TRIAL_COMPLETED) => {
            if recorded == TrialState::Completed {
                (TrialState::Completed, None)
            } else {
                (
                    TrialState::Failed,
                    Some(format!(
                        "exited with code 0 but its status is `{}`",
                        recorded
                    )),
                )
            }
        }
        ChildExit::Code(exit_codes::TRIAL_DIVERGED) => (
            TrialState::Diverged,
            Some(child_error.unwrap_or_else(|| "the loss became non-finite".into())),
        ),
        ChildExit::Code(exit_codes::TRIAL_INTERRUPTED) => (TrialState::Interrupted, None),
        ChildExit::Code(exit_codes::TRIAL_NO_SPACE) => (
            TrialState::Failed,
            Some(format!(
                "ran out of disk space (exit code {})",
                exit_codes::TRIAL_NO_SPACE
            )),
        ),
        ChildExit::Code(code) => {
            let what = if code == 101 {
                match panic_message(&dir.join(files::LOG)) {
                    Some(m) => format!("exited with code {code} (panic: {m})"),
                    None => format!("exited with code {code} (panic)"),
                }
            } else {
                format!("exited with code {code}")
            };
            let head = match child_error {
                Some(e) => format!("{what}: {e}"),
                None => what,
            };
            (TrialState::Failed, Some(head))
        }
        ChildExit::Signal(sig)
            if stopping && [libc::SIGINT, libc::SIGTERM, libc::SIGKILL].contains(&sig) =>
        {
            (TrialState::Interrupted, None)
        }
        ChildExit::Signal(sig) => {
            let hint = if sig == libc::SIGKILL {
                " (out of memory?)"
            } else {
                ""
            };
            (
                TrialState::Failed,
                Some(format!(
                    "killed by signal {sig} ({}){hint}",
                    signal_name(sig)
                )),
            )
        }
    }
}

/// A failed or diverged trial's error: the headline and the last lines of its log. `None` for
/// the other states.
fn with_log_tail(dir: &Path, state: TrialState, headline: String) -> Option<String> {
    if !matches!(state, TrialState::Failed | TrialState::Diverged) {
        return None;
    }
    let tail = tail_lines(&dir.join(files::LOG), ERROR_LOG_LINES);
    if tail.is_empty() {
        return Some(headline);
    }
    Some(format!(
        "{headline}\n--- last {} lines of {} ---\n{}",
        tail.len(),
        files::LOG,
        tail.join("\n")
    ))
}

/// The message of the last panic in a trial's log: the `panicked at` line's
/// location and the message line after it. A backtrace (`RUST_BACKTRACE=1`)
/// can push both out of the log tail quoted in the error, so they are looked
/// for separately.
fn panic_message(log: &Path) -> Option<String> {
    let lines = tail_lines(log, 400);
    let at = lines.iter().rposition(|l| l.contains(" panicked at "))?;
    let location = lines[at]
        .split(" panicked at ")
        .nth(1)?
        .trim_end_matches(':');
    let message = lines.get(at + 1).map(|m| m.trim()).unwrap_or("");
    Some(format!("{message} at {location}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::records::read_json_opt;

    fn with_status(s: TrialStatus) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write_json_atomic(&dir.path().join(files::STATUS), &s).unwrap();
        dir
    }

    #[test]
    fn a_crash_is_recorded_with_code_and_log_tail() {
        let mut s = TrialStatus::pending();
        s.status = TrialState::Running;
        s.attempts = 1;
        let dir = with_status(s);
        let log: String = (0..30).map(|i| format!("log line {i}\n")).collect();
        std::fs::write(dir.path().join(files::LOG), log).unwrap();
        let (state, detail) = record_exit(dir.path(), ChildExit::Code(101), 0, false).unwrap();
        assert_eq!(state, TrialState::Failed);
        assert!(detail.contains("panic"), "{detail}");
        let st: TrialStatus = read_json_opt(&dir.path().join(files::STATUS))
            .unwrap()
            .unwrap();
        assert_eq!(st.exit_code, Some(101));
        assert_eq!(st.attempts, 1, "the child counted its attempt");
        let err = st.error.unwrap();
        assert!(err.contains("log line 29") && err.contains("log line 10"));
        assert!(!err.contains("log line 9\n"));
    }

    #[test]
    fn signals_are_failures_unless_the_sweep_is_stopping() {
        let mut s = TrialStatus::pending();
        s.status = TrialState::Running;
        let dir = with_status(s.clone());
        let (state, detail) =
            record_exit(dir.path(), ChildExit::Signal(libc::SIGKILL), 0, false).unwrap();
        assert_eq!(state, TrialState::Failed);
        assert!(detail.contains("SIGKILL"));
        let st: TrialStatus = read_json_opt(&dir.path().join(files::STATUS))
            .unwrap()
            .unwrap();
        assert_eq!((st.signal, st.exit_code, st.attempts), (Some(9), None, 1));

        let dir = with_status(s);
        let (state, _) = record_exit(dir.path(), ChildExit::Signal(libc::SIGINT), 0, true).unwrap();
        assert_eq!(state, TrialState::Interrupted);
    }

    #[test]
    fn exit_zero_without_a_completed_status_is_a_failure() {
        let mut s = TrialStatus::pending();
        s.status = TrialState::Running;
        let dir = with_status(s);
        let (state, _) = record_exit(dir.path(), ChildExit::Code(0), 0, false).unwrap();
        assert_eq!(state, TrialState::Failed);
    }
}
