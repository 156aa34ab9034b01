//! Fault soak: a sweep of 12 tiny trials on synthetic data is killed at random moments and
//! restarted each time: SIGKILL of the runner alone (its trials then get SIGTERM through the
//! parent-death signal and checkpoint mid-epoch), of the runner with its children, of single
//! trial processes, plus SIGTERM and SIGINT of the runner. At the end every trial is completed,
//! its folder and the Parquet files hold exactly one record per epoch and per step, and on the CPU
//! every loss, accuracy and final weight is bit for bit the one of an uninterrupted run of the
//! same sweep.
//!
//! The kinds and times of the faults are drawn from a seed that the test prints
//! (`ABLATE_SOAK_SEED` replays the same kinds in the same order; the delays scale with the time
//! the uninterrupted sweep took on this machine, so that the faults fall while it runs).
//! `ABLATE_SOAK_KILLS` (default 24, at least 20 SIGKILLs) and `ABLATE_SOAK_SCALE=full` (more and
//! longer trials) make the long run of `just soak`.

#![cfg(unix)]

mod sweep_common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use sweep_common::ablate;
use sweep_common::fingerprint::{assert_parquet_rows, fingerprint, Shape};

/// What is done to the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Fault {
    /// SIGKILL of the runner only.
    KillRunner,
    /// SIGKILL of the runner and of every trial process it started.
    KillAll,
    /// SIGKILL of one running trial process (the runner retries it).
    KillTrial,
    /// SIGTERM of the runner (graceful stop).
    Term,
    /// SIGINT of the runner (Ctrl-C).
    Int,
}

/// SplitMix64: the test's random stream, from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Scale {
    seeds: &'static [u64],
    epochs: u64,
    steps: u64,
}

const CI: Scale = Scale {
    seeds: &[0, 1, 2],
    epochs: 3,
    steps: 8,
};

const FULL: Scale = Scale {
    seeds: &[0, 1, 2, 3, 4],
    epochs: 4,
    steps: 12,
};

/// The range of the delays before each fault (after a start or the previous fault), in
/// milliseconds: drawn uniformly so that all faults together take about half the time the
/// uninterrupted sweep took here (`reference`). The sweep can then not finish before the last
/// fault, on a fast machine as on a loaded one.
fn delay_range(reference: Duration, faults: usize) -> (u64, u64) {
    let hi = (reference.as_millis() as u64 / faults.max(1) as u64).max(100);
    (hi / 10, hi)
}

fn experiment(name: &str, s: &Scale) -> String {
    let seeds: Vec<String> = s.seeds.iter().map(u64::to_string).collect();
    format!(
        "name = \"{name}\"\n\
         description = \"fault soak\"\n\
         seeds = [{}]\n\n\
         [data]\n\
         dataset = \"synthetic\"\n\
         synthetic_train = {}\n\
         synthetic_test = 20\n\
         augment = [\"crop\", \"flip\"]\n\n\
         [train]\n\
         epochs = {}\n\
         batch_size = 8\n\
         eval_batch_size = 20\n\
         scheduler = \"cosine\"\n\n\
         [model]\n\
         reduction = 4\n\n\
         [[grid]]\n\
         \"model.attention\" = [\"none\", \"se\", \"eca\", \"spatial\"]\n",
        seeds.join(", "),
        s.steps * 8,
        s.epochs
    )
}

fn start_sweep(dir: &Path) -> Child {
    ablate()
        .current_dir(dir)
        .args([
            "sweep",
            "exp.toml",
            "--out",
            "results",
            "--no-report",
            "--jobs-per-device",
            "2",
            "--retries",
            "1000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ablate sweep")
}

/// The direct children of `pid` (the trial processes of a runner), from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a process this test started (or one of its children).
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Waits for the runner to exit (it may take a few seconds to checkpoint after SIGTERM).
fn wait_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the runner did not exit after {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The fault schedule: at least 20 SIGKILLs, one SIGTERM and one SIGINT, in a random order.
fn schedule(rng: &mut Rng, total: usize) -> Vec<Fault> {
    let kills = [Fault::KillRunner, Fault::KillAll, Fault::KillTrial];
    let mut faults: Vec<Fault> = (0..total.max(22) - 2)
        .map(|_| kills[rng.below(3) as usize])
        .collect();
    for f in [Fault::Term, Fault::Int] {
        let at = rng.below(faults.len() as u64 + 1) as usize;
        faults.insert(at, f);
    }
    faults
}

/// Runs the faults against a sweep in `dir`, then runs it to completion.
fn soak(
    dir: &Path,
    faults: &[Fault],
    rng: &mut Rng,
    delay_ms: (u64, u64),
) -> BTreeMap<Fault, usize> {
    let mut done: BTreeMap<Fault, usize> = BTreeMap::new();
    let mut runner: Option<Child> = None;
    let mut next = 0;
    while next < faults.len() {
        let fault = faults[next];
        let delay = delay_ms.0 + rng.below(delay_ms.1 - delay_ms.0);
        let r = runner.get_or_insert_with(|| start_sweep(dir));
        std::thread::sleep(Duration::from_millis(delay));
        if let Some(status) = r.try_wait().expect("wait") {
            // The sweep ended before the fault: start it again and do this fault then (a sweep
            // that completed has nothing left to kill: the count check then says so).
            assert!(
                matches!(status.code(), Some(0 | 3 | 4)),
                "the sweep failed: {status:?}"
            );
            runner = None;
            if status.code() == Some(0) {
                break;
            }
            continue;
        }
        let pid = r.id();
        match fault {
            Fault::KillRunner => signal(pid, libc::SIGKILL),
            Fault::KillAll => {
                let kids = children_of(pid);
                signal(pid, libc::SIGKILL);
                for k in kids {
                    signal(k, libc::SIGKILL);
                }
            }
            Fault::KillTrial => match children_of(pid).first() {
                Some(&k) => signal(k, libc::SIGKILL),
                None => continue, // between two trials: this fault again, later
            },
            Fault::Term => signal(pid, libc::SIGTERM),
            Fault::Int => signal(pid, libc::SIGINT),
        }
        *done.entry(fault).or_default() += 1;
        next += 1;
        if fault != Fault::KillTrial {
            let mut r = runner.take().expect("started above");
            let status = wait_exit(&mut r, &format!("{fault:?}"));
            if matches!(fault, Fault::Term | Fault::Int) {
                let mut err = String::new();
                std::io::Read::read_to_string(r.stderr.as_mut().expect("piped"), &mut err)
                    .expect("stderr");
                assert!(
                    matches!(status.code(), Some(0 | 4)),
                    "{fault:?}: {status:?}\n{err}"
                );
            }
        }
    }
    if let Some(mut r) = runner.take() {
        wait_exit(&mut r, "the last fault");
    }
    // Then without faults, until every trial is done (a killed trial may be left failed).
    for attempt in 0..5 {
        let out = start_sweep(dir).wait_with_output().expect("run sweep");
        if out.status.code() == Some(0) {
            return done;
        }
        eprintln!(
            "soak: final sweep {attempt} exited {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    panic!("the sweep did not complete after the faults");
}

#[test]
fn soak_random_kills_lose_and_duplicate_nothing() {
    let scale = match std::env::var("ABLATE_SOAK_SCALE").as_deref() {
        Ok("full") => &FULL,
        _ => &CI,
    };
    let seed: u64 = std::env::var("ABLATE_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let total: usize = std::env::var("ABLATE_SOAK_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    eprintln!("soak: ABLATE_SOAK_SEED={seed} (set it to replay this run)");
    let mut rng = Rng(seed);
    let faults = schedule(&mut rng, total);
    let trials = scale.seeds.len() * 4;

    let reference = tempfile::tempdir().unwrap();
    std::fs::write(reference.path().join("exp.toml"), experiment("soak", scale)).unwrap();
    let started = Instant::now();
    let out = start_sweep(reference.path())
        .wait_with_output()
        .expect("reference sweep");
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let faulted = tempfile::tempdir().unwrap();
    std::fs::write(faulted.path().join("exp.toml"), experiment("soak", scale)).unwrap();
    let delays = delay_range(took, faults.len());
    eprintln!(
        "soak: the uninterrupted sweep took {:.1} s; {} faults, {}..{} ms apart",
        took.as_secs_f64(),
        faults.len(),
        delays.0,
        delays.1
    );
    let done = soak(faulted.path(), &faults, &mut rng, delays);
    eprintln!("soak: seed {seed}, faults done {done:?}");
    let kills: usize = [Fault::KillRunner, Fault::KillAll, Fault::KillTrial]
        .iter()
        .map(|f| done.get(f).copied().unwrap_or(0))
        .sum();
    assert!(
        kills >= 20,
        "only {kills} SIGKILLs done (seed {seed}): {done:?}"
    );
    assert!(
        done.contains_key(&Fault::Term) && done.contains_key(&Fault::Int),
        "{done:?}"
    );

    let shape = Shape {
        epochs: scale.epochs,
        steps: scale.steps,
    };
    let want = fingerprint(&reference.path().join("results/soak"), &shape);
    let got = fingerprint(&faulted.path().join("results/soak"), &shape);
    assert_eq!(want.len(), trials);
    sweep_common::fingerprint::assert_same(&want, &got, &format!("seed {seed}"));
    assert_parquet_rows(&faulted.path().join("results/soak"), trials, &shape);
    let attempts: u64 = sweep_common::Sandbox::trial_dirs(&faulted.path().join("results/soak"))
        .iter()
        .map(|t| t.status()["attempts"].as_u64().unwrap_or(0))
        .sum();
    eprintln!("soak: {trials} trials completed in {attempts} attempts, bit-exact");
}
