//! `ablate sweep --slurm`: the trials that are not done go to Slurm as one job array
//! (`crate::exec::slurm`); the sweep waits for it (or for a job of the same sweep submitted
//! earlier), records the tasks that ended without a result as failed, and returns to
//! `sweep::run`, which rebuilds the Parquet files and writes the report as for a local sweep.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::SweepArgs;
use crate::config::Experiment;
use crate::device::DeviceId;
use crate::exec::signals::StopFlag;
use crate::exec::slurm::{self, ArraySpec, JobRecord, SLURM_DIR};
use crate::exec::slurm_queue;
use crate::results::records::{
    files, now_rfc3339, tail_lines, write_json_atomic, TrialState, TrialStatus,
};

use super::plan::Plan;

/// How the Slurm part of a sweep ended.
pub enum SlurmOutcome {
    /// Every submitted job ended; the results can be collected.
    Ended,
    /// Submitted (or found running) with `--no-wait`: nothing to collect yet.
    Detached,
    /// Ctrl-C while waiting: the job goes on.
    StoppedWaiting,
}

/// Submits the sweep's unfinished trials as a job array and waits for it (see the module doc).
/// Trials in `skip` (submitted in an earlier round of seeds by precision) are not submitted
/// again.
pub fn run(
    args: &SweepArgs,
    experiment: &Experiment,
    dir: &Path,
    devices: &[DeviceId],
    stop: &StopFlag,
    skip: &HashSet<String>,
) -> anyhow::Result<SlurmOutcome> {
    let slurm_dir = dir.join(SLURM_DIR);
    if let Some(outcome) = settle_earlier_jobs(args, dir, &slurm_dir, stop)? {
        return Ok(outcome);
    }

    let plan = Plan::new(experiment, &args.out)?;
    let todo: Vec<(String, PathBuf)> = plan
        .trials
        .iter()
        .filter(|t| !t.state.is_final() && !skip.contains(t.trial.id.as_str()))
        .map(|t| {
            let id = t.trial.id.to_string();
            let d = dir.join("trials").join(&id);
            (id, d)
        })
        .collect();
    println!(
        "sweep {}: {} trials, {} already done, {} to submit to Slurm",
        experiment.name(),
        plan.trials.len(),
        plan.trials.len() - todo.len(),
        todo.len()
    );
    if todo.is_empty() {
        return Ok(SlurmOutcome::Ended);
    }
    let record = submit(args, experiment, devices, &slurm_dir, &todo)?;
    if args.no_wait {
        println!("not waiting (--no-wait); run the same command again to wait and collect");
        return Ok(SlurmOutcome::Detached);
    }
    if !wait_for(std::slice::from_ref(&record), dir, &slurm_dir, stop)? {
        return Ok(SlurmOutcome::StoppedWaiting);
    }
    record_unfinished(&record, dir, &slurm_dir, None)?;
    Ok(SlurmOutcome::Ended)
}

/// Waits for this sweep's jobs that are still queued or running (or, with `--no-wait`, stops
/// there), then records the trials every earlier job left without an end. `Some`: the sweep
/// stops here with that outcome.
fn settle_earlier_jobs(
    args: &SweepArgs,
    dir: &Path,
    slurm_dir: &Path,
    stop: &StopFlag,
) -> anyhow::Result<Option<SlurmOutcome>> {
    let active = slurm::active_jobs(slurm_dir)?;
    if !active.is_empty() {
        let ids: Vec<&str> = active.iter().map(|j| j.job_id.as_str()).collect();
        println!(
            "Slurm job {} of this sweep is still queued or running",
            ids.join(", ")
        );
        if args.no_wait {
            println!("not waiting (--no-wait); run the same command again to collect");
            return Ok(Some(SlurmOutcome::Detached));
        }
        if !wait_for(&active, dir, slurm_dir, stop)? {
            return Ok(Some(SlurmOutcome::StoppedWaiting));
        }
    }
    // Every earlier job has ended: a trial it left pending or running never got an end.
    for j in &slurm::recorded_jobs(slurm_dir)? {
        record_unfinished(j, dir, slurm_dir, None)?;
    }
    Ok(None)
}

/// Writes the job files of the trials `todo` (id, folder), submits them as one array with the
/// task resources of [`task_resources`] and records the job in `slurm/jobs.jsonl`.
fn submit(
    args: &SweepArgs,
    experiment: &Experiment,
    devices: &[DeviceId],
    slurm_dir: &Path,
    todo: &[(String, PathBuf)],
) -> anyhow::Result<slurm::JobRecord> {
    let (cpus_per_task, gpus) = task_resources(args, devices)?;
    let spec = ArraySpec {
        job_name: format!("ablate-{}", experiment.name()),
        cpus_per_task,
        gpus,
        retries: args.retries,
    };
    // The nodes need absolute paths.
    let abs_dirs: Vec<PathBuf> = todo
        .iter()
        .map(|(_, d)| std::path::absolute(d).unwrap_or_else(|_| d.clone()))
        .collect();
    let abs_slurm_dir = std::path::absolute(slurm_dir).unwrap_or_else(|_| slurm_dir.to_path_buf());
    let exe = std::env::current_exe().context("cannot find the ablate executable")?;
    let script = slurm::write_job_files(&abs_slurm_dir, &slurm::stamp(), &spec, &exe, &abs_dirs)?;
    let job_id = slurm::submit(&script, &args.sbatch_args)?;
    let record = slurm::job_record(
        job_id.clone(),
        script.clone(),
        todo.iter().map(|(id, _)| id.clone()).collect(),
    );
    slurm::record_job(slurm_dir, &record)?;
    println!(
        "submitted Slurm job {job_id}: {} array task{} ({} CPU{} each{}), script {}, task output {}",
        todo.len(),
        if todo.len() == 1 { "" } else { "s" },
        spec.cpus_per_task,
        if spec.cpus_per_task == 1 { "" } else { "s" },
        match spec.gpus {
            0 => String::new(),
            1 => ", 1 GPU".into(),
            n => format!(", {n} GPUs"),
        },
        script.display(),
        abs_slurm_dir.join(format!("{job_id}_<task>.out")).display()
    );
    Ok(record)
}

/// The CPUs and GPUs each array task asks for: the options', fitted to the partition the job
/// goes to (`sinfo`): the default CPU count is lowered to what its nodes have; an explicit one
/// they can never give, or GPUs on a partition without any, is an error before submitting.
fn task_resources(args: &SweepArgs, devices: &[DeviceId]) -> anyhow::Result<(u32, u32)> {
    let gpus = args
        .gpus_per_task
        .unwrap_or_else(|| u32::from(devices.iter().any(|d| matches!(d, DeviceId::Cuda(_)))));
    let mut cpus = args.cpus_per_task.unwrap_or(DEFAULT_CPUS_PER_TASK);
    let named = slurm_queue::partition_arg(&args.sbatch_args);
    let which = named
        .as_deref()
        .map_or("the default partition".to_string(), |n| {
            format!("partition {n}")
        });
    match slurm_queue::partition(named.as_deref()) {
        Ok(Some(p)) => {
            if gpus > 0 && !p.has_gpus {
                anyhow::bail!(
                    "partition {} has no GPUs (no `gpu` gres in sinfo), but each task asks for \
                     {gpus}; name a GPU partition (--sbatch-arg=--partition=NAME) or run on CPUs",
                    p.name
                );
            }
            if p.max_cpus > 0 && cpus > p.max_cpus {
                if args.cpus_per_task.is_some() {
                    anyhow::bail!(
                        "--cpus-per-task {cpus} can never be met: the nodes of partition {} \
                         have at most {} CPUs",
                        p.name,
                        p.max_cpus
                    );
                }
                println!(
                    "partition {}: its nodes have at most {} CPUs; asking {} per task (default {})",
                    p.name, p.max_cpus, p.max_cpus, DEFAULT_CPUS_PER_TASK
                );
                cpus = p.max_cpus;
            }
        }
        Ok(None) => println!(
            "note: sinfo lists no {which}; asking {cpus} CPUs{} per task as given",
            if gpus > 0 { " and GPUs" } else { "" }
        ),
        Err(e) => println!(
            "note: cannot read {which} from sinfo ({}); asking {cpus} CPUs per task",
            super::error_chain(&e)
        ),
    }
    Ok((cpus, gpus))
}

/// CPUs per task when `--cpus-per-task` is not given (and the partition's nodes have them).
const DEFAULT_CPUS_PER_TASK: u32 = 4;

/// Polls `squeue` until none of `jobs` is queued or running, printing the trials' states (and
/// why tasks wait) when they change. `false` when a stop signal ended the wait (the jobs go
/// on). A task pending for a reason that cannot clear by waiting cancels the jobs and is an
/// error saying why.
fn wait_for(
    jobs: &[JobRecord],
    dir: &Path,
    slurm_dir: &Path,
    stop: &StopFlag,
) -> anyhow::Result<bool> {
    let poll = std::env::var("ABLATE_SLURM_POLL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(2), Duration::from_millis);
    let mut last = String::new();
    let mut last_print = Instant::now();
    loop {
        let mut active = Vec::new();
        let mut reasons: Vec<(String, usize)> = Vec::new();
        for j in jobs {
            let tasks = slurm_queue::queued_tasks(&j.job_id)?;
            if tasks.is_empty() {
                continue;
            }
            active.push(j.job_id.as_str());
            for t in tasks.iter().filter(|t| t.state == "PENDING") {
                stop_if_hopeless(jobs, &t.reason, dir, slurm_dir)?;
                match reasons.iter_mut().find(|(r, _)| *r == t.reason) {
                    Some((_, n)) => *n += 1,
                    None => reasons.push((t.reason.clone(), 1)),
                }
            }
        }
        let mut counts = state_counts(jobs, dir);
        if !reasons.is_empty() {
            let why: Vec<String> = reasons.iter().map(|(r, n)| format!("{r}: {n}")).collect();
            counts.push_str(&format!(" (Slurm's pending reasons: {})", why.join(", ")));
        }
        if counts != last || last_print.elapsed() >= Duration::from_secs(60) {
            println!("slurm: {counts}");
            last = counts;
            last_print = Instant::now();
        }
        if active.is_empty() {
            return Ok(true);
        }
        if stop.is_raised() {
            println!(
                "stopped waiting; Slurm job {} goes on (`scancel {}` stops it); run the same \
                 command again to wait and collect",
                active.join(", "),
                active.join(" ")
            );
            return Ok(false);
        }
        std::thread::sleep(poll);
    }
}

/// Cancels `jobs`, records their trials that never started as failed (a later sweep submits
/// them again) and returns an error, when `reason` (a pending task's) can never clear.
fn stop_if_hopeless(
    jobs: &[JobRecord],
    reason: &str,
    dir: &Path,
    slurm_dir: &Path,
) -> anyhow::Result<()> {
    let nodes = if reason.starts_with("ReqNodeNotAvail") {
        slurm_queue::node_names().unwrap_or_default()
    } else {
        Vec::new()
    };
    let Some(why) = slurm_queue::hopeless_reason(reason, &nodes) else {
        return Ok(());
    };
    let ids: Vec<&str> = jobs.iter().map(|j| j.job_id.as_str()).collect();
    let mut cancelled = Vec::new();
    for id in &ids {
        match slurm_queue::cancel(id) {
            Ok(()) => cancelled.push(*id),
            Err(e) => eprintln!("cannot cancel Slurm job {id}: {}", super::error_chain(&e)),
        }
    }
    let because = format!("Slurm's pending reason `{reason}` never clears ({why})");
    for j in jobs {
        record_unfinished(j, dir, slurm_dir, Some(&because))?;
    }
    anyhow::bail!(
        "Slurm job {} cannot start: its tasks wait with reason `{reason}`, which waiting never \
         clears ({why}); cancelled {}. Change the request (--cpus-per-task, --gpus-per-task, \
         --sbatch-arg) and run the same command again: the trials are still to run.",
        ids.join(", "),
        if cancelled.is_empty() {
            "nothing".to_string()
        } else {
            format!("job {}", cancelled.join(", "))
        }
    )
}

/// `3 completed, 1 running, 2 pending` over the trials of `jobs`.
fn state_counts(jobs: &[JobRecord], dir: &Path) -> String {
    let mut counts: Vec<(TrialState, usize)> = Vec::new();
    for id in jobs.iter().flat_map(|j| &j.trials) {
        let state =
            crate::results::damage::read_status(&dir.join("trials").join(id).join(files::STATUS))
                .ok()
                .flatten()
                .map_or(TrialState::Pending, |s| s.status);
        match counts.iter_mut().find(|(s, _)| *s == state) {
            Some((_, n)) => *n += 1,
            None => counts.push((state, 1)),
        }
    }
    counts.sort_by_key(|(s, _)| s.as_str());
    counts
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// After `job` ended: a trial of it still `pending` or `running` never recorded an end (its task
/// was cancelled before starting, or killed by Slurm without a chance to checkpoint): it is
/// recorded as failed, with the end of its task's output.
fn record_unfinished(
    job: &JobRecord,
    dir: &Path,
    slurm_dir: &Path,
    cancelled_because: Option<&str>,
) -> anyhow::Result<()> {
    for (task, id) in job.trials.iter().enumerate() {
        let path = dir.join("trials").join(id).join(files::STATUS);
        let mut status: TrialStatus =
            crate::results::damage::read_status(&path)?.unwrap_or_else(TrialStatus::pending);
        if !matches!(status.status, TrialState::Pending | TrialState::Running) {
            continue;
        }
        let out = slurm_dir.join(format!("{}_{task}.out", job.job_id));
        let tail = tail_lines(&out, 20);
        let mut error = match cancelled_because {
            Some(why) => format!(
                "Slurm array task {}_{task} was cancelled by the sweep before it started: {why}",
                job.job_id
            ),
            None => format!(
                "Slurm array task {}_{task} ended without recording an end (cancelled, timed \
                 out or killed by Slurm); its output: {}",
                job.job_id,
                out.display()
            ),
        };
        if !tail.is_empty() {
            error.push_str(&format!(
                "\n--- last {} lines ---\n{}",
                tail.len(),
                tail.join("\n")
            ));
        }
        status.status = TrialState::Failed;
        status.error = Some(error);
        status.pid = None;
        status.ended_at = Some(now_rfc3339());
        write_json_atomic(&path, &status)?;
    }
    Ok(())
}
