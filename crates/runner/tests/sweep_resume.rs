//! Resuming a half-finished sweep: a trial killed in the middle of an epoch (no checkpoint for
//! it) and a sweep stopped with Ctrl-C both continue from their checkpoints, without duplicated
//! or missing epochs or steps.

mod sweep_common;

use std::time::{Duration, Instant};

use sweep_common::{explain, read_parquet, Sandbox};

#[test]
fn resume_after_a_killed_trial_has_no_duplicated_or_missing_epochs() {
    const EPOCHS: u64 = 3;
    const STEPS: u64 = 3;
    let sb = Sandbox::new("killed", &[0, 1], false, EPOCHS as u32, STEPS as usize);
    // Seed 0 is killed at the second step of epoch 2: epoch 1's checkpoint exists, epoch 2's
    // first step is recorded but not checkpointed.
    let out = sb.sweep(&[], &[("ABLATE_TEST_KILL_AT_STEP", "4@0")]);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let t = sb.trials();
    let killed = t[0].status();
    assert_eq!(killed["status"], "failed", "{killed}");
    assert_eq!(killed["signal"], 9);
    assert_eq!(killed["epochs_done"], 1);
    assert_eq!(
        t[0].jsonl("iterations.jsonl").len(),
        4,
        "steps 0..=3 recorded"
    );
    assert_eq!(t[1].status()["status"], "completed");

    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 already done, 1 to run"));
    for tr in &t {
        assert_eq!(tr.status()["status"], "completed");
        tr.assert_complete_records(EPOCHS, STEPS);
    }
    assert_eq!(t[0].status()["attempts"], 2);
    assert_eq!(t[1].status()["attempts"], 1);
    let e = read_parquet(&sb.results().join("epochs.parquet"));
    assert_eq!(e.height(), 2 * EPOCHS as usize);
}

#[cfg(unix)]
#[test]
fn ctrl_c_leaves_a_resumable_sweep() {
    const EPOCHS: u64 = 4;
    const STEPS: u64 = 4;
    let sb = Sandbox::new(
        "interrupted",
        &[0, 1, 2],
        false,
        EPOCHS as u32,
        STEPS as usize,
    );
    let child = sb
        .sweep_command(&[], &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sweep");
    // Wait until the first trial recorded a step, then interrupt the sweep like Ctrl-C.
    let start = Instant::now();
    let trials = sb.results().join("trials");
    'wait: loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no trial started"
        );
        if let Ok(rd) = std::fs::read_dir(&trials) {
            for e in rd.flatten() {
                if std::fs::metadata(e.path().join("iterations.jsonl")).is_ok_and(|m| m.len() > 0) {
                    break 'wait;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the child we spawned.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let out = child.wait_with_output().expect("wait sweep");
    assert_eq!(out.status.code(), Some(4), "{}", explain(&out));
    let t = sb.trials();
    let states: Vec<String> = t
        .iter()
        .map(|t| t.status()["status"].as_str().unwrap().to_string())
        .collect();
    assert!(
        states
            .iter()
            .any(|s| s == "interrupted" || s == "completed"),
        "{states:?}"
    );
    assert!(
        states.iter().any(|s| s == "pending"),
        "nothing launched after Ctrl-C: {states:?}"
    );
    assert!(
        sb.results().join("trials.parquet").is_file(),
        "tables rebuilt after Ctrl-C"
    );

    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    for tr in &t {
        assert_eq!(tr.status()["status"], "completed");
        tr.assert_complete_records(EPOCHS, STEPS);
    }
}
