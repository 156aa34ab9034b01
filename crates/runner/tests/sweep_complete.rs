//! A tiny sweep runs to the end and writes every Parquet file with the documented schema
//! (docs/results.md); running it again runs nothing.

mod sweep_common;

use polars::prelude::*;
use sweep_common::{explain, read_parquet, schema_of, Sandbox};

const EPOCHS: u64 = 2;
const STEPS: u64 = 2;

fn list(inner: DataType) -> DataType {
    DataType::List(Box::new(inner))
}

#[test]
fn sweep_writes_all_parquet_files_with_the_documented_schema_and_resume_runs_nothing() {
    let sb = Sandbox::new("complete", &[0, 1], true, EPOCHS as u32, STEPS as usize);
    let out = sb.sweep(&["--jobs-per-device", "2"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let trials = sb.trials();
    assert_eq!(trials.len(), 4);
    for t in &trials {
        assert_eq!(t.status()["status"], "completed", "{:?}", t.dir);
        assert_eq!(t.status()["attempts"], 1);
        t.assert_complete_records(EPOCHS, STEPS);
        for f in ["final.json", "inside.json", "model.safetensors", "log.txt"] {
            assert!(t.dir.join(f).is_file(), "{f} in {:?}", t.dir);
        }
    }
    let dir = sb.results();
    assert!(dir.join("experiment.toml").is_file());

    use DataType::*;
    let t = read_parquet(&dir.join("trials.parquet"));
    assert_eq!(t.height(), 4);
    let s = schema_of(&t);
    for (name, dtype) in [
        ("schema_version", UInt32),
        ("experiment", String),
        ("trial_id", String),
        ("variant_id", String),
        ("variant", String),
        ("seed", UInt64),
        ("attention", String),
        ("axis.model.attention", String),
        ("axis.model.reduction", Int64),
        ("status", String),
        ("attempts", UInt32),
        ("params", UInt64),
        ("macs", UInt64),
        ("epochs_planned", UInt32),
        ("epochs_done", UInt32),
        ("final_test_acc", Float64),
        ("best_test_acc", Float64),
        ("final_test_loss", Float64),
        ("train_seconds", Float64),
        ("images_per_sec", Float64),
        ("device", String),
        ("started_at", String),
        ("ended_at", String),
        ("exit_code", Int32),
        ("error", String),
        ("config", String),
    ] {
        assert_eq!(s.get(name), Some(&dtype), "trials.parquet column {name}");
    }
    assert_eq!(s.len(), 26, "no undocumented column: {s:?}");
    let status = t.column("status").unwrap().str().unwrap();
    assert!(status.iter().all(|v| v == Some("completed")));
    let params = t.column("params").unwrap().u64().unwrap();
    let attention = t.column("attention").unwrap().str().unwrap();
    for (p, a) in params.iter().zip(attention.iter()) {
        match a.unwrap() {
            "none" => assert_eq!(p, Some(1_147_914)),
            "se" => assert!(p.unwrap() > 1_147_914),
            other => panic!("attention {other}"),
        }
    }
    let variant = t.column("variant").unwrap().str().unwrap();
    assert!(variant.iter().any(|v| v == Some("baseline")));
    let version = t.column("schema_version").unwrap().u32().unwrap();
    assert!(version.iter().all(|v| v == Some(1)));

    let e = read_parquet(&dir.join("epochs.parquet"));
    assert_eq!(e.height(), 4 * EPOCHS as usize);
    let want = [
        ("schema_version", UInt32),
        ("trial_id", String),
        ("epoch", UInt32),
        ("train_loss", Float64),
        ("train_acc", Float64),
        ("test_loss", Float64),
        ("test_acc", Float64),
        ("lr", Float64),
        ("seconds", Float64),
        ("images_per_sec", Float64),
    ];
    assert_eq!(
        schema_of(&e),
        want.iter()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect()
    );

    let i = read_parquet(&dir.join("iterations.parquet"));
    assert_eq!(i.height(), 4 * (EPOCHS * STEPS) as usize);
    let want = [
        ("schema_version", UInt32),
        ("trial_id", String),
        ("epoch", UInt32),
        ("step", UInt32),
        ("iteration", UInt64),
        ("loss", Float32),
    ];
    assert_eq!(
        schema_of(&i),
        want.iter()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect()
    );

    let c = read_parquet(&dir.join("classes.parquet"));
    assert_eq!(c.height(), 4 * 10);
    let want = [
        ("schema_version", UInt32),
        ("trial_id", String),
        ("class_index", UInt32),
        ("class", String),
        ("accuracy", Float64),
        ("correct", UInt64),
        ("total", UInt64),
        ("confusion", list(UInt64)),
    ];
    assert_eq!(
        schema_of(&c),
        want.iter()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect()
    );
    let total: u64 = c
        .column("total")
        .unwrap()
        .u64()
        .unwrap()
        .iter()
        .flatten()
        .sum();
    assert_eq!(total, 4 * 20, "every test image counted once per trial");

    let g = read_parquet(&dir.join("gates.parquet"));
    // SE r=8 trials only (2 of them): 10 classes x (32 + 64 + 128) channels.
    assert_eq!(g.height(), 2 * 10 * (32 + 64 + 128));
    let want = [
        ("schema_version", UInt32),
        ("trial_id", String),
        ("block", UInt32),
        ("class_index", UInt32),
        ("channel", UInt32),
        ("mean_gate", Float32),
    ];
    assert_eq!(
        schema_of(&g),
        want.iter()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect()
    );

    let sm = read_parquet(&dir.join("samples.parquet"));
    assert_eq!(sm.height(), 4 * 4);
    let want = [
        ("schema_version", UInt32),
        ("trial_id", String),
        ("sample", UInt32),
        ("class_index", UInt32),
        ("class", String),
        ("predicted", UInt32),
        ("height", UInt32),
        ("width", UInt32),
        ("pixels", list(UInt8)),
    ];
    assert_eq!(
        schema_of(&sm),
        want.iter()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect()
    );
    let px = sm.column("pixels").unwrap().list().unwrap();
    assert!(px
        .amortized_iter()
        .all(|p| p.unwrap().as_ref().len() == 3 * 32 * 32));
    // the same images for every trial
    let idx = sm
        .clone()
        .lazy()
        .group_by([col("sample")])
        .agg([col("class_index").n_unique().alias("n")])
        .collect()
        .unwrap();
    assert!(idx
        .column("n")
        .unwrap()
        .u32()
        .unwrap()
        .iter()
        .all(|n| n == Some(1)));

    let f = read_parquet(&dir.join("feature_maps.parquet"));
    assert_eq!(f.height(), 4 * 4 * 3 * 9);
    let want = [
        ("schema_version", UInt32),
        ("trial_id", String),
        ("sample", UInt32),
        ("block", UInt32),
        ("channel", UInt32),
        ("height", UInt32),
        ("width", UInt32),
        ("values", list(Float32)),
    ];
    assert_eq!(
        schema_of(&f),
        want.iter()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect()
    );

    // Resume after a completed sweep: nothing runs, nothing changes.
    let before: Vec<_> = trials
        .iter()
        .map(|t| std::fs::read_to_string(t.dir.join("epochs.jsonl")).unwrap())
        .collect();
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let stdout = std::string::String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("4 already done, 0 to run"), "{stdout}");
    for (t, b) in trials.iter().zip(before) {
        assert_eq!(t.status()["attempts"], 1);
        assert_eq!(
            std::fs::read_to_string(t.dir.join("epochs.jsonl")).unwrap(),
            b
        );
    }
}
