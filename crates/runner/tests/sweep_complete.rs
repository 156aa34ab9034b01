//! A tiny sweep runs to the end and writes every Parquet file as the results schema
//! (`ablate_schema`, docs/results.md) defines it; running it again runs nothing.

mod sweep_common;

use ablate_schema::tables::{self, TableDef};
use ablate_schema::{check_columns, col, ExtraColumns, TrialState, SCHEMA_VERSION};
use polars::prelude::*;
use sweep_common::{explain, read_parquet, schema_of, Sandbox};

const EPOCHS: u64 = 2;
const STEPS: u64 = 2;

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

    // Every table as the results schema defines it (which docs/results.md lists: checked by
    // ablate-schema's tests), nothing more.
    let read = |table: &'static TableDef| {
        let df = read_parquet(&dir.join(table.file_name()));
        check_columns(table, df.schema(), ExtraColumns::Refuse).unwrap_or_else(|e| panic!("{e}"));
        let v = df.column(col::SCHEMA_VERSION).unwrap().u32().unwrap();
        assert!(
            v.iter().all(|v| v == Some(SCHEMA_VERSION)),
            "{}",
            table.name
        );
        df
    };
    let t = read(&tables::TRIALS);
    assert_eq!(t.height(), 4);
    let s = schema_of(&t);
    assert_eq!(s.get("axis.model.attention"), Some(&DataType::String));
    assert_eq!(s.get("axis.model.reduction"), Some(&DataType::Int64));
    assert_eq!(
        s.len(),
        tables::TRIALS.columns.len() + 2,
        "the two swept keys: {s:?}"
    );
    let rows = ablate_schema::trials_from_frame(&t).unwrap();
    for r in &rows {
        assert_eq!(r.status, TrialState::Completed);
        assert_eq!(r.device.as_deref(), Some("cpu"));
        match r.attention.as_str() {
            "none" => assert_eq!(r.params, Some(1_147_914)),
            "se" => assert!(r.params.unwrap() > 1_147_914),
            other => panic!("attention {other}"),
        }
    }
    assert!(rows.iter().any(|r| r.variant == "baseline"));

    assert_eq!(read(&tables::EPOCHS).height(), 4 * EPOCHS as usize);
    assert_eq!(
        read(&tables::ITERATIONS).height(),
        4 * (EPOCHS * STEPS) as usize
    );

    let c = read(&tables::CLASSES);
    assert_eq!(c.height(), 4 * 10);
    let total: u64 = ablate_schema::classes_from_frame(&c)
        .unwrap()
        .iter()
        .map(|(_, c)| c.total)
        .sum();
    assert_eq!(total, 4 * 20, "every test image counted once per trial");

    // SE r=8 trials only (2 of them): 10 classes x (32 + 64 + 128) channels.
    assert_eq!(read(&tables::GATES).height(), 2 * 10 * (32 + 64 + 128));

    let sm = read(&tables::SAMPLES);
    let samples = ablate_schema::samples_from_frame(&sm).unwrap();
    assert_eq!(samples.len(), 4 * 4);
    assert!(samples.iter().all(|(_, s)| s.pixels.len() == 3 * 32 * 32));
    // the same images for every trial
    let idx = sm
        .clone()
        .lazy()
        .group_by([col(col::SAMPLE)])
        .agg([col(col::CLASS_INDEX).n_unique().alias("n")])
        .collect()
        .unwrap();
    assert!(idx
        .column("n")
        .unwrap()
        .u32()
        .unwrap()
        .iter()
        .all(|n| n == Some(1)));

    assert_eq!(read(&tables::FEATURE_MAPS).height(), 4 * 4 * 3 * 9);

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
