//! Seeds by precision end to end: the sweep adds rounds of seeds up to the maximum when the
//! target cannot be met, the added trials are ordinary trials (the same ids as a fixed seed
//! list), a rerun replays the rounds and runs nothing, and a loose target stops after the
//! first round.

mod sweep_common;

use std::collections::BTreeSet;

use sweep_common::{ablate, explain, Sandbox};

/// Baseline and SE on 200 synthetic test images (so seeds differ), 1 epoch of 2 steps.
fn sandbox(name: &str) -> Sandbox {
    let sb = Sandbox::new(name, &[0], true, 1, 2);
    sb.set_test_images(200);
    sb
}

fn folder_ids(sb: &Sandbox) -> BTreeSet<String> {
    sb.trials()
        .iter()
        .map(|t| t.dir.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn rounds_grow_to_the_maximum_with_ordinary_trials_and_resume() {
    let sb = sandbox("precise");
    let args = [
        "--ci-half-width",
        "1e-9",
        "--seeds-start",
        "2",
        "--seeds-max",
        "4",
        "--jobs-per-device",
        "2",
    ];
    let out = sb.sweep(&args, &[]);
    let text = explain(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("round 1: 4 trials"), "{text}");
    assert!(text.contains("2 -> 4 seeds"), "{text}");
    assert!(text.contains("round 2: 8 trials"), "{text}");
    assert!(text.contains("at the maximum (4)"), "{text}");
    let trials = sb.trials();
    assert_eq!(trials.len(), 8);
    assert!(trials.iter().all(|t| t.status()["status"] == "completed"));
    let seeds: BTreeSet<u64> = trials.iter().map(|t| t.seed).collect();
    assert_eq!(seeds, (0..4).collect());
    // The experiment as run records the rule.
    let exp = std::fs::read_to_string(sb.results().join("experiment.toml")).unwrap();
    assert!(
        exp.contains("ci_half_width") && exp.contains("max = 4"),
        "{exp}"
    );

    // The same trial ids as the fixed list 0..4: the dry run of that list finds them done.
    let plan = ablate()
        .current_dir(sb.dir.path())
        .args(["sweep", "exp.toml", "--out", "results", "--dry-run"])
        .args(["--set", "seeds=[0, 1, 2, 3]"])
        .output()
        .unwrap();
    let plan_text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(plan_text.contains("8 completed; 0 to run"), "{plan_text}");
    for id in folder_ids(&sb) {
        assert!(plan_text.contains(&id), "{id} not in the fixed-list plan");
    }

    // A rerun replays the rounds and runs nothing.
    let out = sb.sweep(&args, &[]);
    let text = explain(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("8 trials, 8 already done, 0 to run"),
        "{text}"
    );
    assert_eq!(sb.trials().len(), 8);
}

#[test]
fn a_loose_target_stops_after_the_first_round() {
    let sb = sandbox("loose");
    // The file's `seeds = [0]` (after name and description) becomes a `[seeds]` table.
    let text = std::fs::read_to_string(sb.dir.path().join("exp.toml"))
        .unwrap()
        .replace(
            "seeds = [0]",
            "[seeds]\nstart = 2\nmax = 10\nci_half_width = 1000.0",
        );
    std::fs::write(sb.dir.path().join("exp.toml"), text).unwrap();
    let out = sb.sweep(&[], &[]);
    let text = explain(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("precise"), "{text}");
    assert!(text.contains("no variant needs more seeds"), "{text}");
    assert_eq!(sb.trials().len(), 4);
}
