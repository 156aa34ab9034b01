//! Every table built from typed rows, written, scanned and read back: the same rows, the
//! documented columns in the documented order, and the errors a reader gets for a file that
//! does not follow the schema.

use std::collections::BTreeMap;
use std::path::Path;

use ablate_schema::tables::{self, ALL};
use ablate_schema::{
    classes_frame, col, epochs_frame, feature_maps_frame, gates_frame, iterations_frame,
    samples_frame, scan_table, trials_frame, write_table, AxisValue, ClassLine, ColumnReader,
    EpochLine, FeatureMap, GateBlock, IterationLine, SampleImage, SchemaError, TableDef, TrialRow,
    TrialState, SCHEMA_VERSION,
};
use polars::prelude::*;

fn trial(id: &str, axes: &[(&str, AxisValue)], status: TrialState) -> TrialRow {
    TrialRow {
        experiment: "t".into(),
        trial_id: id.into(),
        variant_id: format!("v{id}"),
        variant: format!("label {id}"),
        seed: 3,
        attention: "se".into(),
        axes: axes
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        status,
        attempts: 1,
        params: Some(10),
        macs: None,
        epochs_planned: 2,
        epochs_done: 1,
        final_test_acc: Some(0.5),
        best_test_acc: Some(0.5),
        final_test_loss: None,
        train_seconds: 1.5,
        images_per_sec: Some(100.0),
        device: Some("cuda:0".into()),
        device_name: Some("NVIDIA H200".into()),
        started_at: Some("2026-01-01T00:00:00Z".into()),
        ended_at: None,
        exit_code: Some(0),
        error: None,
        config: "[model]\n".into(),
    }
}

fn write(dir: &Path, table: &'static TableDef, df: DataFrame) {
    let mut df = df;
    write_table(dir, table, &mut df).unwrap();
}

/// The error of scanning `dir/<table>.parquet`.
fn scan_error(dir: &Path, table: &'static TableDef) -> SchemaError {
    match scan_table(dir, table) {
        Ok(_) => panic!("{} was accepted", table.name),
        Err(e) => e,
    }
}

fn collect(dir: &Path, table: &'static TableDef) -> DataFrame {
    scan_table(dir, table).unwrap().unwrap().collect().unwrap()
}

fn names(df: &DataFrame) -> Vec<String> {
    df.get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect()
}

fn documented(table: &TableDef) -> Vec<String> {
    table.columns.iter().map(|c| c.name.to_string()).collect()
}

#[test]
fn trials_round_trip_with_typed_axis_columns_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let rows = vec![
        trial(
            "a",
            &[
                ("model.reduction", AxisValue::Int(16)),
                ("model.placement", AxisValue::Str("post_bn".into())),
                ("train.amp", AxisValue::Bool(true)),
            ],
            TrialState::Completed,
        ),
        trial(
            "b",
            &[
                ("model.reduction", AxisValue::Float(0.5)),
                ("train.amp", AxisValue::Bool(false)),
            ],
            TrialState::Failed,
        ),
    ];
    write(dir.path(), &tables::TRIALS, trials_frame(&rows).unwrap());
    let df = collect(dir.path(), &tables::TRIALS);
    // The axis columns sit after `attention`, sorted by key.
    let mut want = documented(&tables::TRIALS);
    let at = want.iter().position(|c| c == col::ATTENTION).unwrap() + 1;
    for (i, k) in ["model.placement", "model.reduction", "train.amp"]
        .iter()
        .enumerate()
    {
        want.insert(at + i, format!("axis.{k}"));
    }
    assert_eq!(names(&df), want);
    let dtype = |c: &str| df.column(c).unwrap().dtype().clone();
    assert_eq!(
        dtype("axis.model.reduction"),
        DataType::Float64,
        "int and float mix"
    );
    assert_eq!(dtype("axis.model.placement"), DataType::String);
    assert_eq!(dtype("axis.train.amp"), DataType::Boolean);

    let back = ablate_schema::trials_from_frame(&df).unwrap();
    let mut expected = rows;
    expected[0]
        .axes
        .insert("model.reduction".into(), AxisValue::Float(16.0));
    assert_eq!(back, expected);
}

#[test]
fn per_trial_tables_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let epochs = [EpochLine {
        epoch: 1,
        train_loss: 1.0,
        train_acc: 0.5,
        test_loss: f64::NAN,
        test_acc: 0.25,
        lr: 0.1,
        seconds: 2.0,
        images_per_sec: 30.0,
    }];
    let its: Vec<IterationLine> = (0..3)
        .map(|i| IterationLine {
            epoch: 1,
            step: i,
            iteration: i as u64,
            loss: 2.0 - i as f32,
        })
        .collect();
    let classes = [ClassLine {
        class_index: 1,
        class: "cat".into(),
        correct: 3,
        total: 4,
        confusion: vec![1, 3],
    }];
    let gates = [GateBlock {
        block: 2,
        mean_gate: vec![vec![0.25, 0.5, 0.75]; 2],
    }];
    let samples = [SampleImage {
        sample: 0,
        class_index: 1,
        class: "cat".into(),
        predicted: 0,
        height: 2,
        width: 1,
        pixels: vec![1, 2, 3, 4, 5, 6],
    }];
    let maps = [FeatureMap {
        sample: 0,
        block: 1,
        channel: 4,
        height: 1,
        width: 2,
        values: vec![0.5, -1.0],
    }];
    write(d, &tables::EPOCHS, epochs_frame(&[("a", &epochs)]).unwrap());
    write(
        d,
        &tables::ITERATIONS,
        iterations_frame(&[("a", &its), ("b", &its)]).unwrap(),
    );
    write(
        d,
        &tables::CLASSES,
        classes_frame(&[("a", &classes)]).unwrap(),
    );
    write(d, &tables::GATES, gates_frame(&[("a", &gates)]).unwrap());
    write(
        d,
        &tables::SAMPLES,
        samples_frame(&[("a", &samples)]).unwrap(),
    );
    write(
        d,
        &tables::FEATURE_MAPS,
        feature_maps_frame(&[("a", &maps)]).unwrap(),
    );
    for table in &ALL[1..] {
        let df = collect(d, table);
        assert_eq!(names(&df), documented(table), "{}", table.name);
        for c in table.columns {
            assert_eq!(
                df.column(c.name).unwrap().dtype(),
                &c.ty.dtype(),
                "{}",
                c.name
            );
        }
        let v = ColumnReader::new(table, &df)
            .required_values::<UInt32Type>(col::SCHEMA_VERSION)
            .unwrap();
        assert!(v.iter().all(|v| *v == SCHEMA_VERSION));
    }
    assert_eq!(collect(d, &tables::ITERATIONS).height(), 6);
    let g = collect(d, &tables::GATES);
    assert_eq!(g.height(), 6, "2 classes x 3 channels");
    let r = ColumnReader::new(&tables::GATES, &g);
    assert_eq!(
        r.required_values::<Float32Type>(col::MEAN_GATE).unwrap(),
        [0.25, 0.5, 0.75, 0.25, 0.5, 0.75]
    );
    let e = collect(d, &tables::EPOCHS);
    let test_loss = ColumnReader::new(&tables::EPOCHS, &e)
        .required_values::<Float64Type>(col::TEST_LOSS)
        .unwrap();
    assert!(test_loss[0].is_nan(), "a diverged epoch's NaN is kept");

    let c = collect(d, &tables::CLASSES);
    let acc = ColumnReader::new(&tables::CLASSES, &c)
        .required_values::<Float64Type>(col::ACCURACY)
        .unwrap();
    assert_eq!(acc, [0.75]);
    assert_eq!(
        ablate_schema::classes_from_frame(&c).unwrap(),
        vec![("a".to_string(), classes[0].clone())]
    );
    assert_eq!(
        ablate_schema::samples_from_frame(&collect(d, &tables::SAMPLES)).unwrap(),
        vec![("a".to_string(), samples[0].clone())]
    );
    assert_eq!(
        ablate_schema::feature_maps_from_frame(&collect(d, &tables::FEATURE_MAPS)).unwrap(),
        vec![("a".to_string(), maps[0].clone())]
    );
}

#[test]
fn empty_tables_keep_their_types() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &tables::TRIALS, trials_frame(&[]).unwrap());
    write(dir.path(), &tables::CLASSES, classes_frame(&[]).unwrap());
    let c = collect(dir.path(), &tables::CLASSES);
    assert_eq!(c.height(), 0);
    assert_eq!(
        c.column(col::CONFUSION).unwrap().dtype(),
        &DataType::List(Box::new(DataType::UInt64))
    );
    assert!(
        ablate_schema::trials_from_frame(&collect(dir.path(), &tables::TRIALS))
            .unwrap()
            .is_empty()
    );
    assert!(scan_table(dir.path(), &tables::GATES).unwrap().is_none());
}

/// Rewrites `dir/<table>.parquet` through `edit`, bypassing the schema.
fn tamper(dir: &Path, table: &'static TableDef, edit: impl FnOnce(LazyFrame) -> LazyFrame) {
    let df = edit(scan_table(dir, table).unwrap().unwrap())
        .collect()
        .unwrap();
    let mut df = df;
    let f = std::fs::File::create(dir.join(table.file_name())).unwrap();
    ParquetWriter::new(f).finish(&mut df).unwrap();
}

fn epochs_file(dir: &Path) {
    let e = [EpochLine {
        epoch: 1,
        train_loss: 1.0,
        train_acc: 0.5,
        test_loss: 1.0,
        test_acc: 0.5,
        lr: 0.1,
        seconds: 2.0,
        images_per_sec: 30.0,
    }];
    write(dir, &tables::EPOCHS, epochs_frame(&[("a", &e)]).unwrap());
}

#[test]
fn another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    epochs_file(dir.path());
    tamper(dir.path(), &tables::EPOCHS, |lf| {
        lf.with_column(
            lit(SCHEMA_VERSION + 1)
                .cast(DataType::UInt32)
                .alias(col::SCHEMA_VERSION),
        )
    });
    match scan_error(dir.path(), &tables::EPOCHS) {
        SchemaError::Version {
            table,
            found,
            expected,
        } => assert_eq!(
            (table, found, expected),
            ("epochs", SCHEMA_VERSION + 1, SCHEMA_VERSION)
        ),
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn a_missing_or_retyped_column_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    epochs_file(dir.path());
    tamper(dir.path(), &tables::EPOCHS, |lf| {
        lf.with_column(col(col::EPOCH).cast(DataType::Int64))
    });
    let err = scan_error(dir.path(), &tables::EPOCHS).to_string();
    assert!(err.contains("`epoch`") && err.contains("UInt32"), "{err}");

    epochs_file(dir.path());
    tamper(dir.path(), &tables::EPOCHS, |lf| {
        lf.drop(by_name([col::LR], true, false))
    });
    let err = scan_error(dir.path(), &tables::EPOCHS).to_string();
    assert!(err.contains("`lr`") && err.contains("missing"), "{err}");

    // An extra column is ignored by a reader.
    epochs_file(dir.path());
    tamper(dir.path(), &tables::EPOCHS, |lf| {
        lf.with_column(lit(1i32).alias("note"))
    });
    assert!(scan_table(dir.path(), &tables::EPOCHS).unwrap().is_some());
}

#[test]
fn a_null_where_none_is_allowed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &tables::TRIALS,
        trials_frame(&[trial("a", &[], TrialState::Running)]).unwrap(),
    );
    tamper(dir.path(), &tables::TRIALS, |lf| {
        lf.with_column(lit(NULL).cast(DataType::String).alias(col::VARIANT))
    });
    let df = collect(dir.path(), &tables::TRIALS);
    let err = ablate_schema::trials_from_frame(&df)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`variant`") && err.contains("null"), "{err}");
}

#[test]
fn a_sample_with_the_wrong_pixel_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = [SampleImage {
        sample: 0,
        class_index: 0,
        class: "a".into(),
        predicted: 0,
        height: 2,
        width: 2,
        pixels: vec![0; 5],
    }];
    write(
        dir.path(),
        &tables::SAMPLES,
        samples_frame(&[("t", &s)]).unwrap(),
    );
    let err = ablate_schema::samples_from_frame(&collect(dir.path(), &tables::SAMPLES))
        .unwrap_err()
        .to_string();
    assert!(err.contains("5 values for a 3x2x2 image"), "{err}");
}
