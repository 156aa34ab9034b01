//! A trial that panics and one that diverges are recorded while the others complete; the sweep
//! exits with the "some trials failed" code; `--retries` re-runs the failed one only.

mod sweep_common;

use polars::prelude::*;
use sweep_common::{explain, read_parquet, Sandbox};

#[test]
fn a_panicking_and_a_diverging_trial_are_recorded_while_the_others_complete() {
    let sb = Sandbox::new("failures", &[0, 1, 2], false, 2, 2);
    let out = sb.sweep(
        &["--retries", "1"],
        &[
            ("ABLATE_TEST_PANIC_AT_STEP", "1@1"),
            ("ABLATE_TEST_DIVERGE", "1@2"),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let t = sb.trials();
    assert_eq!(t.len(), 3);

    let ok = t[0].status();
    assert_eq!((t[0].seed, ok["status"].as_str()), (0, Some("completed")));
    t[0].assert_complete_records(2, 2);

    let panicked = t[1].status();
    assert_eq!(panicked["status"], "failed", "{panicked}");
    assert_eq!(panicked["exit_code"], 101);
    assert_eq!(panicked["attempts"], 2, "retried once");
    let err = panicked["error"].as_str().unwrap();
    assert!(err.contains("panic"), "{err}");
    assert!(
        err.contains("ABLATE_TEST_PANIC_AT_STEP"),
        "log tail in the error: {err}"
    );

    let diverged = t[2].status();
    assert_eq!(diverged["status"], "diverged", "{diverged}");
    assert_eq!(diverged["exit_code"], 3);
    assert_eq!(diverged["attempts"], 1, "a diverged trial is not retried");
    assert!(diverged["error"].as_str().unwrap().contains("non-finite"));

    let trials = read_parquet(&sb.results().join("trials.parquet"));
    let sorted = trials
        .lazy()
        .sort(["seed"], Default::default())
        .collect()
        .unwrap();
    let status: Vec<_> = sorted
        .column("status")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap().to_string())
        .collect();
    assert_eq!(status, ["completed", "failed", "diverged"]);
    let codes: Vec<_> = sorted
        .column("exit_code")
        .unwrap()
        .i32()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(codes, [Some(0), Some(101), Some(3)]);
    let errors = sorted.column("error").unwrap().str().unwrap();
    assert!(errors.get(0).is_none());
    assert!(errors.get(1).is_some() && errors.get(2).is_some());

    // A new sweep retries the failed trial (now without the hook) and leaves the diverged one.
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert_eq!(t[1].status()["status"], "completed");
    assert_eq!(t[1].status()["attempts"], 3);
    t[1].assert_complete_records(2, 2);
    assert_eq!(t[2].status()["status"], "diverged");
    assert_eq!(t[2].status()["attempts"], 1);
}
