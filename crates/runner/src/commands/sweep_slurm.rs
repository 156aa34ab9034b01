//! `ablate sweep --slurm`: the trials that are not done go to Slurm as one job array
//! (`crate::exec::slurm`); the sweep waits for it (or for a job of the same sweep submitted
//! earlier), records the tasks that ended without a result as failed, and returns to
//! `sweep::run`, which rebuilds the Parquet files and writes the report as for a local sweep.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::SweepArgs;
use crate::config::Experiment;
use crate::exec::scheduler::Device;
use crate::exec::signals::StopFlag;
use crate::exec::slurm::{self, ArraySpec, JobRecord, SLURM_DIR};
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
pub fn run(
    args: &SweepArgs,
    experiment: &Experiment,
    dir: &Path,
    devices: &[Device],
    stop: &StopFlag,
) -> anyhow::Result<SlurmOutcome> {
    let slurm_dir = dir.join(SLURM_DIR);
    let active = slurm::active_jobs(&slurm_dir)?;
    if !active.is_empty() {
        let ids: Vec<&str> = active.iter().map(|j| j.job_id.as_str()).collect();
        println!(
            "Slurm job {} of this sweep is still queued or running",
            ids.join(", ")
        );
        if args.no_wait {
            println!("not waiting (--no-wait); run the same command again to collect");
            return Ok(SlurmOutcome::Detached);
        }
        if !wait_for(&active, dir, stop)? {
            return Ok(SlurmOutcome::StoppedWaiting);
        }
    }
    // Every earlier job has ended: a trial it left pending or running never got an end.
    for j in &slurm::recorded_jobs(&slurm_dir)? {
        record_unfinished(j, dir, &slurm_dir)?;
    }

    let plan = Plan::new(experiment, &args.out)?;
    let todo: Vec<(String, PathBuf)> = plan
        .trials
        .iter()
        .filter(|t| !t.state.is_final())
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
    let spec = ArraySpec {
        job_name: format!("ablate-{}", experiment.name()),
        cpus_per_task: args.cpus_per_task,
        gpu: devices.iter().any(|d| matches!(d, Device::Cuda(_))),
        retries: args.retries,
    };
    // The nodes need absolute paths.
    let abs_dirs: Vec<PathBuf> = todo
        .iter()
        .map(|(_, d)| std::path::absolute(d).unwrap_or_else(|_| d.clone()))
        .collect();
    let abs_slurm_dir = std::path::absolute(&slurm_dir).unwrap_or_else(|_| slurm_dir.clone());
    let exe = std::env::current_exe().context("cannot find the ablate executable")?;
    let script = slurm::write_job_files(&abs_slurm_dir, &slurm::stamp(), &spec, &exe, &abs_dirs)?;
    let job_id = slurm::submit(&script, &args.sbatch_args)?;
    let record = slurm::job_record(
        job_id.clone(),
        script.clone(),
        todo.iter().map(|(id, _)| id.clone()).collect(),
    );
    slurm::record_job(&slurm_dir, &record)?;
    println!(
        "submitted Slurm job {job_id}: {} array task{} ({} CPU{} each{}), script {}, task output {}",
        todo.len(),
        if todo.len() == 1 { "" } else { "s" },
        spec.cpus_per_task,
        if spec.cpus_per_task == 1 { "" } else { "s" },
        if spec.gpu { ", 1 GPU" } else { "" },
        script.display(),
        abs_slurm_dir.join(format!("{job_id}_<task>.out")).display()
    );
    if args.no_wait {
        println!("not waiting (--no-wait); run the same command again to wait and collect");
        return Ok(SlurmOutcome::Detached);
    }
    if !wait_for(std::slice::from_ref(&record), dir, stop)? {
        return Ok(SlurmOutcome::StoppedWaiting);
    }
    record_unfinished(&record, dir, &slurm_dir)?;
    Ok(SlurmOutcome::Ended)
}

/// Polls `squeue` until none of `jobs` is queued or running, printing the trials' states when
/// they change. `false` when a stop signal ended the wait (the jobs go on).
fn wait_for(jobs: &[JobRecord], dir: &Path, stop: &StopFlag) -> anyhow::Result<bool> {
    let poll = std::env::var("ABLATE_SLURM_POLL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(2), Duration::from_millis);
    let mut last = String::new();
    let mut last_print = Instant::now();
    loop {
        let mut active = Vec::new();
        for j in jobs {
            if slurm::job_active(&j.job_id)? {
                active.push(j.job_id.as_str());
            }
        }
        let counts = state_counts(jobs, dir);
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
fn record_unfinished(job: &JobRecord, dir: &Path, slurm_dir: &Path) -> anyhow::Result<()> {
    for (task, id) in job.trials.iter().enumerate() {
        let path = dir.join("trials").join(id).join(files::STATUS);
        let mut status: TrialStatus =
            crate::results::damage::read_status(&path)?.unwrap_or_else(TrialStatus::pending);
        if !matches!(status.status, TrialState::Pending | TrialState::Running) {
            continue;
        }
        let out = slurm_dir.join(format!("{}_{task}.out", job.job_id));
        let tail = tail_lines(&out, 20);
        let mut error = format!(
            "Slurm array task {}_{task} ended without recording an end (cancelled, timed out or \
             killed by Slurm); its output: {}",
            job.job_id,
            out.display()
        );
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
