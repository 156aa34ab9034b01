//! `ablate slurm-task LIST`: one task of the Slurm job array of `ablate sweep --slurm`
//! (`crate::exec::slurm`). Picks line `$SLURM_ARRAY_TASK_ID` of LIST (a trial folder), runs
//! `ablate trial DIR` as a child with `$SLURM_CPUS_PER_TASK` threads, and records how it ended in
//! the trial's `status.json`, as a local sweep's slot does; a failed trial is retried up to
//! `--retries` times. SIGINT/SIGTERM (Slurm's `scancel`, a time limit) are forwarded as SIGINT,
//! so the trial checkpoints and is recorded as interrupted.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::Context;

use crate::cli::SlurmTaskArgs;
use crate::device::DeviceId;
use crate::exec::child::{send_signal, ChildCommand, ChildExit};
use crate::exec::exit_codes::{TRIAL_COMPLETED, TRIAL_DIVERGED, TRIAL_ERROR, TRIAL_INTERRUPTED};
use crate::exec::run::record_exit;
use crate::exec::scheduler::{parse_devices, Slot};
use crate::exec::signals::StopFlag;
use crate::exec::slurm::{ARRAY_JOB_ENV, ARRAY_TASK_ENV, CPUS_ENV};
use crate::results::records::{files, write_json_atomic, TrialState, TrialStatus};

use super::CommandResult;

/// `ablate slurm-task LIST --device D --retries N`.
pub fn run(args: SlurmTaskArgs) -> CommandResult {
    let (dir, slot, task) = task_setup(&args)?;
    let child = ChildCommand::current_exe().context("cannot find the ablate executable")?;
    let stop = StopFlag::install().context("cannot install the signal handler")?;
    println!(
        "{task}: trial {} on {slot} with {} threads",
        dir.display(),
        slot.threads
    );

    let mut attempt = 0;
    loop {
        let attempts_before = match mark_running(&dir.join(files::STATUS), slot.device, &task)? {
            Ok(attempts) => attempts,
            Err(state) => {
                println!("{task}: already {state}");
                return Ok(exit_code(state));
            }
        };
        let proc = child.spawn(&dir, &slot).with_context(|| {
            format!(
                "cannot start `{} trial {}`",
                child.exe.display(),
                dir.display()
            )
        })?;
        let exit = wait_forwarding_signals(proc, &stop)?;
        let (state, detail) = record_exit(&dir, exit, attempts_before, stop.is_raised())?;
        println!(
            "{task}: {state}{}",
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        );
        if state == TrialState::Failed && attempt < args.retries && !stop.is_raised() {
            attempt += 1;
            println!("{task}: retry {attempt} of {}", args.retries);
            continue;
        }
        return Ok(exit_code(state));
    }
}

/// The task's trial folder (its line of the list), its slot (the device, and the CPUs Slurm
/// gave the task) and its name for the log (`slurm:JOB_INDEX`).
fn task_setup(args: &SlurmTaskArgs) -> anyhow::Result<(PathBuf, Slot, String)> {
    let index: usize = std::env::var(ARRAY_TASK_ENV)
        .with_context(|| format!("${ARRAY_TASK_ENV} is not set: run this as a Slurm array task"))?
        .trim()
        .parse()
        .with_context(|| format!("${ARRAY_TASK_ENV} is not a task index"))?;
    let dir = trial_dir(&args.list, index)?;
    let threads = std::env::var(CPUS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let devices = parse_devices(&args.device, cfg!(feature = "cuda"))?;
    let device = *devices.first().context("--device names no device")?;
    let slot = Slot {
        device,
        index: 0,
        threads,
    };
    let task = format!(
        "slurm:{}_{index}",
        std::env::var(ARRAY_JOB_ENV).unwrap_or_else(|_| "?".into())
    );
    Ok((dir, slot, task))
}

/// Marks the trial running on `device` for `task` and returns its attempts so far; `Err` with
/// its state when it already ended (completed or diverged): nothing to run.
fn mark_running(
    status_path: &Path,
    device: DeviceId,
    task: &str,
) -> anyhow::Result<Result<u32, TrialState>> {
    let mut status: TrialStatus =
        crate::results::damage::read_status(status_path)?.unwrap_or_else(TrialStatus::pending);
    if status.status.is_final() {
        return Ok(Err(status.status));
    }
    let attempts_before = status.attempts;
    status.status = TrialState::Running;
    status.device = Some(format!("{device} ({task})"));
    status.ended_at = None;
    status.error = None;
    status.exit_code = None;
    status.signal = None;
    write_json_atomic(status_path, &status)?;
    Ok(Ok(attempts_before))
}

/// Waits for the trial's process, forwarding stop signals: the first as SIGINT (checkpoint
/// and stop), a later one as SIGKILL.
fn wait_forwarding_signals(mut proc: Child, stop: &StopFlag) -> anyhow::Result<ChildExit> {
    let mut forwarded = 0;
    loop {
        if let Some(s) = proc.try_wait().context("cannot wait for the trial")? {
            return Ok(ChildExit::from(s));
        }
        let signals = stop.count();
        if signals > forwarded {
            let sig = if forwarded == 0 {
                libc::SIGINT
            } else {
                libc::SIGKILL
            };
            send_signal(&proc, sig);
            forwarded = signals;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Line `index` (0-based) of the list.
fn trial_dir(list: &Path, index: usize) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(list)
        .with_context(|| format!("cannot read the trial list {}", list.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let line = lines.get(index).with_context(|| {
        format!(
            "task {index} is out of range: {} lists {} trials",
            list.display(),
            lines.len()
        )
    })?;
    Ok(PathBuf::from(line))
}

/// The task's exit code: `ablate trial`'s for the state it ended in.
fn exit_code(state: TrialState) -> i32 {
    match state {
        TrialState::Completed => TRIAL_COMPLETED,
        TrialState::Diverged => TRIAL_DIVERGED,
        TrialState::Interrupted => TRIAL_INTERRUPTED,
        _ => TRIAL_ERROR,
    }
}
