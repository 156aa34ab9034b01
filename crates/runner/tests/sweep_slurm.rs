//! `ablate sweep --slurm`: the job array, its tasks, waiting, collecting and resuming.
//!
//! The first tests put a stand-in `sbatch`/`squeue` on `PATH` (shell scripts that run the
//! array's tasks one after the other in the background, as Slurm's environment would): they
//! check our side of the contract everywhere. `real_slurm_runs_the_array` needs a real Slurm
//! (`scripts/slurm/start.sh` starts a single-node one): it is ignored unless asked for
//! (`cargo test -p ablate-runner --test sweep_slurm -- --ignored`), which `.ci/run` does when
//! it could start the cluster.

mod sweep_common;

use std::path::{Path, PathBuf};

use sweep_common::{explain, read_parquet, Sandbox};

/// A stand-in `sbatch` (runs the array's tasks in the background, one after the other, except
/// the tasks listed in `$FAKE_SLURM_SKIP`, as if cancelled; with `$FAKE_SLURM_PENDING` set it
/// runs none and they pend for that reason), `squeue` (lists a job until its tasks are done:
/// `id|state|reason`), `scancel` (ends a job) and `sinfo` (prints `$FAKE_SINFO`, or fails as
/// where there is none). Returns the folder to put first on `PATH`.
fn fake_slurm(root: &Path) -> PathBuf {
    let bin = root.join("fake-slurm");
    std::fs::create_dir_all(&bin).unwrap();
    let sbatch = r#"#!/bin/bash
state="$(dirname "$0")"
echo "$@" >> "$state/sbatch-calls"
script="${@: -1}"
array=$(sed -n 's/^#SBATCH --array=//p' "$script")
out=$(sed -n 's/^#SBATCH --output=//p' "$script")
cpus=$(sed -n 's/^#SBATCH --cpus-per-task=//p' "$script")
n=$(( $(cat "$state/next-id" 2>/dev/null || echo 100) + 1 )); echo $n > "$state/next-id"
touch "$state/active-$n"
if [ -n "$FAKE_SLURM_PENDING" ]; then
  echo "$FAKE_SLURM_PENDING" > "$state/pending-$n"
  echo "$n;cluster"
  exit 0
fi
(
  sleep "${FAKE_SLURM_DELAY:-0}"
  for i in $(seq ${array%-*} ${array#*-}); do
    case " $FAKE_SLURM_SKIP " in *" $i "*) continue;; esac
    o=${out//%A/$n}; o=${o//%a/$i}
    SLURM_ARRAY_JOB_ID=$n SLURM_ARRAY_TASK_ID=$i SLURM_CPUS_PER_TASK=$cpus bash "$script" > "$o" 2>&1
  done
  rm -f "$state/active-$n"
) > /dev/null 2>&1 &
echo "$n;cluster"
"#;
    let squeue = r#"#!/bin/bash
state="$(dirname "$0")"
while [ $# -gt 0 ]; do [ "$1" = -j ] && job=$2; shift; done
if [ -e "$state/active-$job" ]; then
  if [ -e "$state/pending-$job" ]; then echo "${job}_[0-9]|PENDING|$(cat "$state/pending-$job")"
  else echo "$job|RUNNING|None"; fi
fi
exit 0
"#;
    let scancel = r#"#!/bin/bash
state="$(dirname "$0")"
echo "$@" >> "$state/scancel-calls"
rm -f "$state/active-$1" "$state/pending-$1"
"#;
    let sinfo = r#"#!/bin/bash
[ -n "$FAKE_SINFO" ] || { echo "sinfo: error: no controller" >&2; exit 1; }
printf "$FAKE_SINFO"
"#;
    for (name, text) in [
        ("sbatch", sbatch),
        ("squeue", squeue),
        ("scancel", scancel),
        ("sinfo", sinfo),
    ] {
        let p = bin.join(name);
        std::fs::write(&p, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    bin
}

fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn jobs(sb: &Sandbox) -> Vec<serde_json::Value> {
    let text =
        std::fs::read_to_string(sb.results().join("slurm").join("jobs.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_sweep_runs_as_one_job_array_and_is_collected() {
    let sb = Sandbox::new("slurm", &[0, 1], true, 2, 2);
    let bin = fake_slurm(sb.dir.path());
    let path = path_with(&bin);
    let env = [("PATH", path.as_str()), ("ABLATE_SLURM_POLL_MS", "50")];
    let args = [
        "--slurm",
        "--cpus-per-task",
        "1",
        "--sbatch-arg=--partition=debug",
        "--sbatch-arg",
        "--time=00:10:00",
    ];
    let out = sb.sweep(&args, &env);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("submitted Slurm job 101: 4 array tasks (1 CPU each)"),
        "{stdout}"
    );
    for t in sb.trials() {
        assert_eq!(t.status()["status"], "completed", "{}", t.dir.display());
        t.assert_complete_records(2, 2);
    }
    let calls = std::fs::read_to_string(bin.join("sbatch-calls")).unwrap();
    assert!(
        calls.starts_with("--parsable --partition=debug --time=00:10:00 /"),
        "{calls}"
    );
    let j = jobs(&sb);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0]["job_id"], "101");
    assert_eq!(j[0]["trials"].as_array().unwrap().len(), 4);
    let script = std::fs::read_to_string(j[0]["script"].as_str().unwrap()).unwrap();
    assert!(script.contains("#SBATCH --array=0-3\n"), "{script}");
    let task_out = std::fs::read_to_string(sb.results().join("slurm").join("101_2.out")).unwrap();
    assert!(task_out.contains("slurm:101_2: completed"), "{task_out}");
    let trials = read_parquet(&sb.results().join("trials.parquet"));
    assert_eq!(trials.height(), 4);

    // Again: nothing to submit.
    let out = sb.sweep(&args, &env);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 to submit to Slurm"));
    assert_eq!(jobs(&sb).len(), 1);
}

#[test]
fn failures_and_cancelled_tasks_are_recorded_and_resubmitted_on_the_next_run() {
    let sb = Sandbox::new("slurm_fail", &[0, 1, 2], false, 1, 2);
    let bin = fake_slurm(sb.dir.path());
    let path = path_with(&bin);
    // Task 1 (seed 1) panics, with one retry inside its task; task 2 is "cancelled" before
    // it starts.
    let out = sb.sweep(
        &["--slurm", "--retries", "1"],
        &[
            ("PATH", path.as_str()),
            ("ABLATE_SLURM_POLL_MS", "50"),
            ("ABLATE_TEST_PANIC_AT_STEP", "1@1"),
            ("FAKE_SLURM_SKIP", "2"),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let t = sb.trials();
    assert_eq!(t[0].status()["status"], "completed");
    let panicked = t[1].status();
    assert_eq!(panicked["status"], "failed");
    assert_eq!(panicked["attempts"], 2, "retried once inside its task");
    assert!(panicked["error"].as_str().unwrap().contains("panic"));
    let cancelled = t[2].status();
    assert_eq!(cancelled["status"], "failed", "{cancelled}");
    let err = cancelled["error"].as_str().unwrap();
    assert!(
        err.contains("Slurm array task 101_2 ended without recording an end"),
        "{err}"
    );

    // The next run submits only the two that did not complete.
    let out = sb.sweep(
        &["--slurm"],
        &[("PATH", path.as_str()), ("ABLATE_SLURM_POLL_MS", "50")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let j = jobs(&sb);
    assert_eq!(j.len(), 2);
    assert_eq!(j[1]["trials"].as_array().unwrap().len(), 2);
    assert!(sb
        .trials()
        .iter()
        .all(|t| t.status()["status"] == "completed"));
}

#[test]
fn no_wait_returns_and_the_next_run_waits_instead_of_submitting_twice() {
    let sb = Sandbox::new("slurm_detach", &[0], false, 1, 2);
    let bin = fake_slurm(sb.dir.path());
    let path = path_with(&bin);
    // The stand-in job waits 2 s before its tasks start: the second run finds it queued.
    let env = [
        ("PATH", path.as_str()),
        ("ABLATE_SLURM_POLL_MS", "50"),
        ("FAKE_SLURM_DELAY", "2"),
    ];
    let out = sb.sweep(&["--slurm", "--no-wait"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("not waiting (--no-wait)"));
    let out = sb.sweep(&["--slurm"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Slurm job 101 of this sweep is still queued or running"),
        "{stdout}"
    );
    assert!(stdout.contains("0 to submit to Slurm"), "{stdout}");
    assert_eq!(jobs(&sb).len(), 1, "{}", explain(&out));
    assert_eq!(sb.trials()[0].status()["status"], "completed");
}

#[test]
fn a_local_sweep_refuses_to_run_the_trials_of_a_queued_slurm_job() {
    let sb = Sandbox::new("slurm_guard", &[0], false, 1, 2);
    let bin = fake_slurm(sb.dir.path());
    let path = path_with(&bin);
    let out = sb.sweep(
        &["--slurm", "--no-wait"],
        &[("PATH", path.as_str()), ("FAKE_SLURM_DELAY", "5")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let out = sb.sweep(&[], &[("PATH", path.as_str())]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Slurm job 101 of this sweep is still queued or running"),
        "{err}"
    );
    // Waiting for it with --slurm collects it.
    let out = sb.sweep(
        &["--slurm"],
        &[("PATH", path.as_str()), ("ABLATE_SLURM_POLL_MS", "50")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_eq!(sb.trials()[0].status()["status"], "completed");
    assert_eq!(jobs(&sb).len(), 1);
}

#[test]
fn sbatch_arg_needs_slurm_and_a_missing_sbatch_is_a_clear_error() {
    let sb = Sandbox::new("slurm_usage", &[0], false, 1, 1);
    let out = sb.sweep(&["--sbatch-arg=--partition=x"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let out = sb.sweep(&["--slurm"], &[("PATH", "/nonexistent")]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot run `sbatch` (is Slurm installed and on PATH?)"),
        "{err}"
    );
}

#[test]
fn a_hopeless_pending_reason_cancels_the_job_and_a_later_run_resubmits() {
    let sb = Sandbox::new("slurm_hopeless", &[0], false, 1, 2);
    let bin = fake_slurm(sb.dir.path());
    let path = path_with(&bin);
    let out = sb.sweep(
        &["--slurm"],
        &[
            ("PATH", path.as_str()),
            ("ABLATE_SLURM_POLL_MS", "50"),
            ("FAKE_SLURM_PENDING", "PartitionConfig"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Slurm job 101 cannot start: its tasks wait with reason `PartitionConfig`")
            && err.contains("cancelled job 101"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(bin.join("scancel-calls")).unwrap(),
        "101\n"
    );
    let status = sb.trials()[0].status();
    assert_eq!(status["status"], "failed");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("cancelled by the sweep before it started"),
        "{status}"
    );
    // With a request that fits, the next run submits the trial again and completes it.
    let out = sb.sweep(
        &["--slurm"],
        &[("PATH", path.as_str()), ("ABLATE_SLURM_POLL_MS", "50")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_eq!(sb.trials()[0].status()["status"], "completed");
    assert_eq!(jobs(&sb).len(), 2);
}

#[test]
fn task_resources_fit_the_partition_or_are_refused_before_submitting() {
    let sb = Sandbox::new("slurm_fit", &[0], false, 1, 2);
    let bin = fake_slurm(sb.dir.path());
    let path = path_with(&bin);
    let sinfo = "debug*|2|(null)\ngpu|16|gpu:h100:4\n";
    let env = [
        ("PATH", path.as_str()),
        ("ABLATE_SLURM_POLL_MS", "50"),
        ("FAKE_SINFO", sinfo),
    ];
    // An explicit request the nodes can never give, and GPUs on a partition without any.
    let out = sb.sweep(&["--slurm", "--cpus-per-task", "4"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "--cpus-per-task 4 can never be met: the nodes of partition debug have at most 2 CPUs"
        ),
        "{err}"
    );
    let out = sb.sweep(&["--slurm", "--gpus-per-task", "1"], &env);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("partition debug has no GPUs"));
    assert!(!bin.join("sbatch-calls").exists(), "nothing was submitted");
    // The default (4 CPUs) is lowered to what the default partition's nodes have.
    let out = sb.sweep(&["--slurm"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("partition debug: its nodes have at most 2 CPUs; asking 2 per task"),
        "{stdout}"
    );
    let script = std::fs::read_to_string(jobs(&sb)[0]["script"].as_str().unwrap()).unwrap();
    assert!(script.contains("#SBATCH --cpus-per-task=2\n"), "{script}");
    // On the GPU partition, GPUs are asked for and the trial runs on the first one.
    let sb = Sandbox::new("slurm_fit_gpu", &[0], false, 1, 2);
    let out = sb.sweep(
        &[
            "--slurm",
            "--no-wait",
            "--gpus-per-task",
            "2",
            "--sbatch-arg=-pgpu",
        ],
        &[
            ("PATH", path.as_str()),
            ("FAKE_SINFO", sinfo),
            ("FAKE_SLURM_PENDING", "Resources"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let script = std::fs::read_to_string(jobs(&sb)[0]["script"].as_str().unwrap()).unwrap();
    assert!(
        script.contains("#SBATCH --cpus-per-task=4\n")
            && script.contains("#SBATCH --gres=gpu:2\n")
            && script.contains("--device cuda:0"),
        "{script}"
    );
}

#[test]
#[ignore = "needs a local Slurm cluster (scripts/slurm/start.sh)"]
fn real_slurm_runs_the_array() {
    let sb = Sandbox::new("slurm_real", &[0, 1], true, 1, 2);
    let out = sb.sweep(
        &["--slurm", "--cpus-per-task", "1"],
        &[("ABLATE_SLURM_POLL_MS", "200")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    for t in sb.trials() {
        assert_eq!(t.status()["status"], "completed");
        t.assert_complete_records(1, 2);
    }
    assert_eq!(jobs(&sb).len(), 1);
}
