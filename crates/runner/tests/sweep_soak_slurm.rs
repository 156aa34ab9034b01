//! The soak's Slurm case, on a real (local) Slurm: while the sweep's job array runs, one task
//! is requeued (`scontrol requeue`: Slurm stops it with SIGTERM and runs it again) and another is
//! cancelled (`scancel`); `ablate sweep --slurm` then waits, submits the cancelled trial again
//! and collects. Every trial completes with the bit-exact results of an uninterrupted local run.
//!
//! Needs a running Slurm (`scripts/slurm/start.sh` starts a single-node one, as root): it is
//! ignored unless asked for (`cargo test -p ablate-runner --test sweep_soak_slurm -- --ignored`),
//! which `.ci/run` does when it could start the cluster.

#![cfg(unix)]

mod sweep_common;

use std::process::Command;
use std::time::{Duration, Instant};

use sweep_common::fingerprint::{assert_parquet_rows, assert_same, fingerprint, Shape};
use sweep_common::{explain, Sandbox};

const EPOCHS: u32 = 3;
const STEPS: usize = 6;

fn job(sb: &Sandbox) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(sb.results().join("slurm/jobs.jsonl")).expect("jobs.jsonl");
    let v: serde_json::Value = serde_json::from_str(text.lines().next().expect("a job")).unwrap();
    let trials = v["trials"]
        .as_array()
        .expect("trials")
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    (v["job_id"].as_str().expect("job id").to_string(), trials)
}

/// The task index of a trial that is training (a step recorded, status `running`), waiting for
/// one; never one of `except`.
fn running_task(sb: &Sandbox, trials: &[String], except: &[usize]) -> usize {
    let start = Instant::now();
    loop {
        for (task, id) in trials.iter().enumerate() {
            if except.contains(&task) {
                continue;
            }
            let dir = sb.results().join("trials").join(id);
            let steps = std::fs::read_to_string(dir.join("iterations.jsonl"))
                .map(|t| t.lines().count())
                .unwrap_or(0);
            let status = std::fs::read_to_string(dir.join("status.json")).unwrap_or_default();
            if steps >= 2 && status.contains("\"running\"") {
                return task;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no Slurm task started training"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn slurm(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect(cmd);
    assert!(out.status.success(), "{cmd} {args:?}: {}", explain(&out));
}

#[test]
#[ignore = "needs a local Slurm cluster (scripts/slurm/start.sh)"]
fn real_slurm_requeued_and_cancelled_tasks_resume_bit_exactly() {
    let reference = Sandbox::new("slurm_soak", &[0, 1, 2], true, EPOCHS, STEPS);
    let out = reference.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));

    let sb = Sandbox::new("slurm_soak", &[0, 1, 2], true, EPOCHS, STEPS);
    let env = [("ABLATE_SLURM_POLL_MS", "200")];
    let out = sb.sweep(&["--slurm", "--cpus-per-task", "1", "--no-wait"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let (job_id, trials) = job(&sb);
    assert_eq!(trials.len(), 6);

    let requeued = running_task(&sb, &trials, &[]);
    slurm("scontrol", &["requeue", &format!("{job_id}_{requeued}")]);
    let cancelled = running_task(&sb, &trials, &[requeued]);
    slurm("scancel", &[&format!("{job_id}_{cancelled}")]);
    eprintln!("slurm soak: job {job_id}, task {requeued} requeued, task {cancelled} cancelled");

    // Waits for the job, submits the cancelled trial again, waits, collects.
    let out = sb.sweep(&["--slurm", "--cpus-per-task", "1"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 to submit to Slurm"), "{stdout}");
    let requeued_dir = sb.results().join("trials").join(&trials[requeued]);
    let status = std::fs::read_to_string(requeued_dir.join("status.json")).unwrap();
    let attempts: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(attempts["attempts"].as_u64().unwrap() >= 2, "{status}");

    let shape = Shape {
        epochs: u64::from(EPOCHS),
        steps: STEPS as u64,
    };
    let want = fingerprint(&reference.results(), &shape);
    let got = fingerprint(&sb.results(), &shape);
    assert_same(&want, &got, &format!("Slurm job {job_id}"));
    assert_parquet_rows(&sb.results(), 6, &shape);
}
