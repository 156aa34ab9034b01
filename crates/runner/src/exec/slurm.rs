//! Slurm job arrays: `ablate sweep --slurm` submits the trials to run as one `sbatch --array`
//! job, one array task per trial. Each task runs `ablate slurm-task LIST`, which picks its trial
//! folder from `LIST` by `SLURM_ARRAY_TASK_ID` and runs `ablate trial DIR` as a child exactly as
//! a local slot does (same environment, same end-of-child bookkeeping, same retries), so a
//! trial's folder looks the same whether it ran here or on a cluster node.
//!
//! The sweep's results folder must be on a file system the nodes share. Files, under
//! `results/<name>/slurm/`: `<stamp>.trials` (the list), `<stamp>.sbatch` (the script),
//! `<jobid>_<task>.out` (each task's stdout and stderr), `jobs.jsonl` (every submission), so a
//! later `ablate sweep --slurm` waits for a job of the sweep that is still queued or running
//! instead of submitting its trials twice.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::results::records::now_rfc3339;

pub use super::slurm_error::SlurmError;

/// Environment variable with the array task's index, set by Slurm.
pub const ARRAY_TASK_ENV: &str = "SLURM_ARRAY_TASK_ID";
/// Environment variable with the array's job id, set by Slurm.
pub const ARRAY_JOB_ENV: &str = "SLURM_ARRAY_JOB_ID";
/// Environment variable with the CPUs allocated per task, set by Slurm.
pub const CPUS_ENV: &str = "SLURM_CPUS_PER_TASK";
/// The sweep's Slurm folder, inside its results folder.
pub const SLURM_DIR: &str = "slurm";
/// Every submission of the sweep, one JSON object per line.
pub const JOBS_FILE: &str = "jobs.jsonl";

/// How the array's tasks are asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArraySpec {
    /// The job's name (`ablate-<experiment>`).
    pub job_name: String,
    /// CPUs per task (`--cpus-per-task`); the trial's threads.
    pub cpus_per_task: u32,
    /// GPUs per task (`--gres=gpu:N`); with any, the trial runs on `cuda:0`, the first GPU
    /// Slurm gave the task (`CUDA_VISIBLE_DEVICES`).
    pub gpus: u32,
    /// Extra attempts for a failing trial, made inside its task.
    pub retries: u32,
}

/// One submission, as recorded in `jobs.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Slurm's job id of the array.
    pub job_id: String,
    /// When it was submitted (RFC 3339).
    pub submitted_at: String,
    /// The batch script.
    pub script: PathBuf,
    /// The trial ids, in array-task order.
    pub trials: Vec<String>,
}

/// The batch script of an array over the trial folders listed in `list`.
pub fn render_script(
    spec: &ArraySpec,
    exe: &Path,
    list: &Path,
    out_dir: &Path,
    tasks: usize,
) -> String {
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str("# Written by `ablate sweep --slurm`: one array task per line of the trial list.\n");
    s.push_str(&format!("#SBATCH --job-name={}\n", spec.job_name));
    s.push_str(&format!("#SBATCH --array=0-{}\n", tasks.saturating_sub(1)));
    s.push_str("#SBATCH --ntasks=1\n");
    s.push_str(&format!("#SBATCH --cpus-per-task={}\n", spec.cpus_per_task));
    if spec.gpus > 0 {
        s.push_str(&format!("#SBATCH --gres=gpu:{}\n", spec.gpus));
    }
    s.push_str(&format!(
        "#SBATCH --output={}\n",
        out_dir.join("%A_%a.out").display()
    ));
    let device = if spec.gpus > 0 { "cuda:0" } else { "cpu" };
    s.push_str(&format!(
        "exec {} slurm-task {} --device {device} --retries {}\n",
        shell_quote(&exe.display().to_string()),
        shell_quote(&list.display().to_string()),
        spec.retries
    ));
    s
}

/// Single-quotes `s` for bash.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Writes the list and the script into `slurm_dir` (named by `stamp`), returns the script.
pub fn write_job_files(
    slurm_dir: &Path,
    stamp: &str,
    spec: &ArraySpec,
    exe: &Path,
    trial_dirs: &[PathBuf],
) -> Result<PathBuf, SlurmError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SlurmError::Io { path, source }
    };
    std::fs::create_dir_all(slurm_dir).map_err(io(slurm_dir))?;
    let list = slurm_dir.join(format!("{stamp}.trials"));
    let mut text = String::new();
    for d in trial_dirs {
        text.push_str(&d.display().to_string());
        text.push('\n');
    }
    std::fs::write(&list, text).map_err(io(&list))?;
    let script = slurm_dir.join(format!("{stamp}.sbatch"));
    let body = render_script(spec, exe, &list, slurm_dir, trial_dirs.len());
    std::fs::write(&script, body).map_err(io(&script))?;
    Ok(script)
}

/// `sbatch --parsable [extra...] script`: the job id.
pub fn submit(script: &Path, extra: &[String]) -> Result<String, SlurmError> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(extra)
        .arg(script)
        .output()
        .map_err(|source| SlurmError::Spawn {
            command: "sbatch".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(SlurmError::Refused {
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let id = text.split(';').next().unwrap_or("").trim().to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(SlurmError::BadJobId(text));
    }
    Ok(id)
}

/// Whether job `id` still has tasks queued or running (`squeue`). A job Slurm no longer knows
/// counts as ended.
pub fn job_active(id: &str) -> Result<bool, SlurmError> {
    Ok(!super::slurm_queue::queued_tasks(id)?.is_empty())
}

/// Appends a submission to `slurm_dir/jobs.jsonl`.
pub fn record_job(slurm_dir: &Path, job: &JobRecord) -> Result<(), SlurmError> {
    let path = slurm_dir.join(JOBS_FILE);
    let io = |source| SlurmError::Io {
        path: path.clone(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    let line = serde_json::to_string(job).expect("a job record serializes");
    writeln!(f, "{line}").map_err(io)?;
    f.sync_all().map_err(io)
}

/// Every submission recorded in `slurm_dir/jobs.jsonl` (none when the file is missing).
pub fn recorded_jobs(slurm_dir: &Path) -> Result<Vec<JobRecord>, SlurmError> {
    let path = slurm_dir.join(JOBS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(SlurmError::Io { path, source }),
    };
    let mut jobs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(j) => jobs.push(j),
            // A torn last line (a crash while appending) is ignored; others are an error.
            Err(_) if i + 1 == text.lines().count() => {}
            Err(e) => {
                return Err(SlurmError::Io {
                    path: path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("line {}: {e}", i + 1),
                    ),
                })
            }
        }
    }
    Ok(jobs)
}

/// The jobs recorded in `slurm_dir/jobs.jsonl` that are still queued or running.
pub fn active_jobs(slurm_dir: &Path) -> Result<Vec<JobRecord>, SlurmError> {
    let mut active = Vec::new();
    for j in recorded_jobs(slurm_dir)? {
        if job_active(&j.job_id)? {
            active.push(j);
        }
    }
    Ok(active)
}

/// A stamp for file names: seconds since the epoch, then the process id.
pub fn stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs}-{}", std::process::id())
}

/// A new record for job `job_id`.
pub fn job_record(job_id: String, script: PathBuf, trials: Vec<String>) -> JobRecord {
    JobRecord {
        job_id,
        submitted_at: now_rfc3339(),
        script,
        trials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_asks_for_one_task_per_trial_and_runs_the_task_command() {
        let spec = ArraySpec {
            job_name: "ablate-se".into(),
            cpus_per_task: 4,
            gpus: 0,
            retries: 1,
        };
        let s = render_script(
            &spec,
            Path::new("/opt/ablate's/bin/ablate"),
            Path::new("/r/se/slurm/1.trials"),
            Path::new("/r/se/slurm"),
            3,
        );
        assert!(s.starts_with("#!/bin/bash\n"));
        assert!(s.contains("#SBATCH --array=0-2\n"));
        assert!(s.contains("#SBATCH --cpus-per-task=4\n"));
        assert!(s.contains("#SBATCH --output=/r/se/slurm/%A_%a.out\n"));
        assert!(!s.contains("gres"));
        assert!(s.contains(
            "exec '/opt/ablate'\\''s/bin/ablate' slurm-task '/r/se/slurm/1.trials' --device cpu --retries 1\n"
        ));
        let g = render_script(
            &ArraySpec { gpus: 1, ..spec },
            Path::new("a"),
            Path::new("l"),
            Path::new("o"),
            1,
        );
        assert!(g.contains("#SBATCH --gres=gpu:1\n") && g.contains("--device cuda:0"));
    }

    #[test]
    fn job_records_round_trip_and_a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert!(recorded_jobs(dir.path()).unwrap().is_empty());
        let a = job_record(
            "12".into(),
            "x.sbatch".into(),
            vec!["t1".into(), "t2".into()],
        );
        record_job(dir.path(), &a).unwrap();
        let b = job_record("13".into(), "y.sbatch".into(), vec![]);
        record_job(dir.path(), &b).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOBS_FILE))
            .unwrap();
        write!(f, "{{\"job_id\": \"1").unwrap();
        assert_eq!(recorded_jobs(dir.path()).unwrap(), vec![a, b]);
    }
}
