//! Damaged trial records, end to end: a changed byte in `status.json`, a metric line or
//! `final.json` of a finished sweep is detected, named in a warning, set aside, and the trial runs
//! again: it ends with the same records as before the damage, and no trial fails twice.

mod sweep_common;

use std::path::Path;

use sweep_common::{explain, Sandbox, TrialDir};

/// Changes one character inside the first number after `key` in `path`.
fn damage_number(path: &Path, key: &str, nth_line: usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let line = &mut lines[nth_line];
    let at = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len() + 3;
    let mut bytes = line.clone().into_bytes();
    bytes[at] = if bytes[at] == b'7' { b'3' } else { b'7' };
    *line = String::from_utf8(bytes).unwrap();
    let mut out = lines.join("\n");
    out.push('\n');
    std::fs::write(path, out).unwrap();
}

/// The metrics of a trial's epochs (no timings).
fn metrics(t: &TrialDir) -> Vec<String> {
    t.jsonl("epochs.jsonl")
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {} {} {}",
                r["epoch"], r["train_loss"], r["train_acc"], r["test_loss"], r["test_acc"], r["lr"]
            )
        })
        .collect()
}

fn losses(t: &TrialDir) -> Vec<String> {
    t.jsonl("iterations.jsonl")
        .iter()
        .map(|r| format!("{} {}", r["iteration"], r["loss"]))
        .collect()
}

fn final_metrics(t: &TrialDir) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.dir.join("final.json")).unwrap()).unwrap();
    format!(
        "{} {} {}",
        v["final_test_acc"], v["final_test_loss"], v["classes"]
    )
}

#[test]
fn damaged_records_are_named_set_aside_and_trained_again() {
    let sb = Sandbox::new("damage", &[0, 1], false, 3, 3);
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let t = sb.trials();
    let (m0, l0, f0) = (metrics(&t[0]), losses(&t[0]), final_metrics(&t[0]));
    let (m1, l1) = (metrics(&t[1]), losses(&t[1]));

    // 1. status.json: the trial counts as pending, runs, finishes at once from its final
    //    checkpoint.
    let status = t[0].dir.join("status.json");
    let text = std::fs::read_to_string(&status).unwrap();
    std::fs::write(&status, text.replace("\"completed\"", "\"completes\"")).unwrap();
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("status.json is damaged"), "{stderr}");
    assert!(stderr.contains("the trial runs again"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 already done, 1 to run"));
    assert!(t[0].dir.join("damaged/status.json").is_file());
    assert_eq!(t[0].status()["status"], "completed");
    assert_eq!((metrics(&t[0]), losses(&t[0])), (m0.clone(), l0.clone()));

    // 2. A line of epochs.jsonl: found when the Parquet files are rebuilt; the trial is marked
    //    failed; the next sweep keeps epochs 1 and 2, continues from the checkpoint after
    //    epoch 2 (the previous one) and writes epoch 3 again, the same as before.
    damage_number(&t[1].dir.join("epochs.jsonl"), "\"train_loss\"", 2);
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("epochs.jsonl is damaged at line 3"),
        "{stderr}"
    );
    assert!(stderr.contains("marked failed"), "{stderr}");
    assert_eq!(t[1].status()["status"], "failed");
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(t[1].dir.join("damaged/epochs.jsonl").is_file());
    t[1].assert_complete_records(3, 3);
    assert_eq!((metrics(&t[1]), losses(&t[1])), (m1.clone(), l1.clone()));
    let log = std::fs::read_to_string(t[1].dir.join("log.txt")).unwrap();
    assert!(log.contains("keeping the 2 records before it"), "{log}");
    assert!(log.contains("resuming from"), "{log}");

    // 3. A line of iterations.jsonl (a step of epoch 2) and final.json of trial 0: both named;
    //    no kept checkpoint is covered by the intact steps, so the trial starts over.
    damage_number(&t[0].dir.join("iterations.jsonl"), "\"loss\"", 5);
    let fin = t[0].dir.join("final.json");
    let text = std::fs::read_to_string(&fin).unwrap();
    std::fs::write(&fin, text.replacen("\"correct\": ", "\"correct\": 1", 1)).unwrap();
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("iterations.jsonl is damaged at line 6"),
        "{stderr}"
    );
    assert!(stderr.contains("final.json is damaged"), "{stderr}");
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    t[0].assert_complete_records(3, 3);
    assert_eq!(
        (metrics(&t[0]), losses(&t[0]), final_metrics(&t[0])),
        (m0, l0, f0)
    );
    // 4. iterations.jsonl cut at a line boundary (no damaged line: the count gives it away):
    //    the trial continues from the checkpoint the remaining steps cover.
    let its = t[1].dir.join("iterations.jsonl");
    let text = std::fs::read_to_string(&its).unwrap();
    let kept: Vec<&str> = text.lines().take(7).collect();
    std::fs::write(&its, kept.join("\n") + "\n").unwrap();
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("are incomplete: 3 epochs and 7 steps"),
        "{stderr}"
    );
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    t[1].assert_complete_records(3, 3);
    assert_eq!((metrics(&t[1]), losses(&t[1])), (m1, l1));

    // Nothing failed twice: each damaged trial took one extra run.
    let out = sb.sweep(&[], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 already done, 0 to run"));
}
