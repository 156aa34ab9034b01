//! End-to-end tests of `ablate_report::generate` on synthetic sweeps written in
//! the documented Parquet schema (tests/common).
//!
//! Snapshots live in tests/snapshots; run with `UPDATE_SNAPSHOTS=1` to rewrite
//! them after an intended change, then review the diff.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ablate_report::charts::stems;
use ablate_report::{generate, load, tables, ReportError, ReportOptions};
use ablate_schema::{SchemaError, SCHEMA_VERSION};
use common::{small_spec, write_sweep};

fn snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {}: run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "snapshot {name} differs at line {}:\n expected: {:?}\n actual:   {:?}\n(UPDATE_SNAPSHOTS=1 rewrites it)",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &small_spec());
    dir
}

fn rows_text(dir: &Path) -> String {
    let src = load::Sources {
        dir: dir.to_path_buf(),
    };
    let trials = load::read_trials(&src).unwrap();
    let timing = load::read_epoch_timing(&src).unwrap();
    let a = ablate_report::analysis::analyze(&trials, &timing);
    let mut out = tables::VARIANT_HEADERS.join(" | ");
    out.push('\n');
    for r in tables::variant_rows(&a) {
        out.push_str(&r.marked_cells().join(" | "));
        out.push('\n');
    }
    out
}

#[test]
fn variant_table_rows_match_snapshot() {
    let dir = fixture();
    snapshot("variant_rows.txt", &rows_text(dir.path()));
}

#[test]
fn report_md_and_csv_match_snapshot() {
    let dir = fixture();
    let s = generate(dir.path(), &ReportOptions::default()).unwrap();
    assert_eq!(s.variants, 3);
    assert_eq!(s.trials, 9);
    assert_eq!(s.completed, 8);
    assert_eq!(s.failed, 1);
    assert_eq!(s.baseline.as_deref(), Some("baseline"));
    assert_eq!(
        s.best.as_deref(),
        Some("model.attention=se model.reduction=16")
    );
    let md = std::fs::read_to_string(s.out_dir.join("report.md")).unwrap();
    snapshot("report.md", &md);
    let csv = std::fs::read_to_string(s.out_dir.join("summary.csv")).unwrap();
    snapshot("summary.csv", &csv);
}

#[test]
fn every_chart_file_is_written_and_non_empty() {
    let dir = fixture();
    let s = generate(dir.path(), &ReportOptions::default()).unwrap();
    assert!(s.skipped_charts.is_empty(), "{:?}", s.skipped_charts);
    let axis = stems::axis("model.reduction");
    let all = stems::FIXED.iter().copied().chain([axis.as_str()]);
    for stem in all {
        let svg = s.out_dir.join(format!("{stem}.svg"));
        let png = s.out_dir.join(format!("{stem}.png"));
        let svg_text = std::fs::read_to_string(&svg).unwrap_or_else(|_| panic!("{stem}.svg"));
        assert!(
            svg_text.contains("<svg") && svg_text.len() > 1000,
            "{stem}.svg"
        );
        let png_bytes = std::fs::read(&png).unwrap_or_else(|_| panic!("{stem}.png"));
        assert!(png_bytes.len() > 1000, "{stem}.png");
        assert_eq!(
            &png_bytes[..8],
            b"\x89PNG\r\n\x1a\n",
            "{stem}.png signature"
        );
        assert!(s.files.contains(&svg) && s.files.contains(&png));
    }
    for f in ["report.md", "index.html", "summary.csv"] {
        let p = s.out_dir.join(f);
        assert!(std::fs::metadata(&p).unwrap().len() > 100, "{f}");
    }
}

#[test]
fn html_is_self_contained() {
    let dir = fixture();
    let s = generate(dir.path(), &ReportOptions::default()).unwrap();
    let html = std::fs::read_to_string(s.out_dir.join("index.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // One inline SVG per chart, nothing fetched from elsewhere.
    assert_eq!(html.matches("<figure").count(), 9);
    assert!(html.matches("<svg").count() >= 9);
    for bad in ["<link", "<script", "src=\"http", "href=\"http", "url(http"] {
        assert!(!html.contains(bad), "index.html contains {bad}");
    }
    assert!(html.contains("class=\"best\""));
    assert!(html.contains("out of memory"));
}

#[test]
fn png_only_report_inlines_base64_images() {
    let dir = fixture();
    let opts = ReportOptions {
        formats: ablate_report::ChartFormats {
            svg: false,
            png: true,
        },
        feature_maps: 2,
        ..Default::default()
    };
    let s = generate(dir.path(), &opts).unwrap();
    assert!(!s.out_dir.join("epochs.svg").exists());
    let html = std::fs::read_to_string(s.out_dir.join("index.html")).unwrap();
    assert!(html.contains("data:image/png;base64,iVBORw0KGgo"));
    assert!(!html.contains("<svg"));
}

#[test]
fn only_failed_trials_still_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = small_spec();
    spec.seeds = vec![1];
    spec.overrides = (0..spec.variants.len())
        .map(|v| (v, 1, "failed".to_string(), Some(format!("error: boom {v}"))))
        .collect();
    write_sweep(dir.path(), &spec);
    let s = generate(dir.path(), &ReportOptions::default()).unwrap();
    assert_eq!(s.completed, 0);
    assert_eq!(s.failed, 3);
    assert_eq!(s.best, None);
    let md = std::fs::read_to_string(s.out_dir.join("report.md")).unwrap();
    assert!(md.contains("Best: none yet"));
    for v in 0..3 {
        assert!(md.contains(&format!("error: boom {v}")));
    }
    assert!(md.contains("Charts not drawn"));
    assert!(md.contains("Final test accuracy per variant: no completed trial"));
    // Every variant is still listed, with 0 completed seeds.
    assert_eq!(md.matches("| 0/1 †").count(), 3, "{md}");
}

#[test]
fn one_seed_sweep_marks_too_few_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = small_spec();
    spec.seeds = vec![7];
    spec.overrides.clear();
    write_sweep(dir.path(), &spec);
    let s = generate(dir.path(), &ReportOptions::default()).unwrap();
    assert_eq!(s.completed, 3);
    let md = std::fs::read_to_string(s.out_dir.join("report.md")).unwrap();
    assert_eq!(md.matches("1/1 †").count(), 3, "{md}");
    // No test with one seed per side, but the difference is reported.
    assert!(md.contains("| n/a |"));
    // Charts that need only means are still drawn.
    assert!(s.out_dir.join("final_accuracy.png").exists());
    assert!(s.out_dir.join("cost_benefit.png").exists());
}

#[test]
fn unfinished_trials_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = small_spec();
    spec.overrides = vec![
        (1, 2, "running".into(), None),
        (
            2,
            1,
            "diverged".into(),
            Some("loss is NaN at epoch 1".into()),
        ),
        (0, 3, "pending".into(), None),
    ];
    write_sweep(dir.path(), &spec);
    let s = generate(dir.path(), &ReportOptions::default()).unwrap();
    assert_eq!(s.unfinished, 2);
    assert_eq!(s.failed, 1);
    let md = std::fs::read_to_string(s.out_dir.join("report.md")).unwrap();
    let problems = md
        .split("## Failed, diverged and unfinished trials")
        .nth(1)
        .unwrap();
    // Diverged first, then running, then pending.
    let d = problems.find("| diverged |").unwrap();
    let r = problems.find("| running |").unwrap();
    let p = problems.find("| pending |").unwrap();
    assert!(d < r && r < p);
    assert!(problems.contains("loss is NaN at epoch 1"));
}

#[test]
fn missing_trials_parquet_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = generate(dir.path(), &ReportOptions::default()).unwrap_err();
    assert!(matches!(err, ReportError::MissingTrials { .. }), "{err}");
    assert!(err.to_string().contains("no trials.parquet"));
}

#[test]
fn unknown_schema_version_is_rejected() {
    use polars::prelude::*;
    let dir = fixture();
    let path = dir.path().join("epochs.parquet");
    let mut df = LazyFrame::scan_parquet(
        PlRefPath::try_from_path(&path).unwrap(),
        ScanArgsParquet::default(),
    )
    .unwrap()
    .with_column(
        lit(SCHEMA_VERSION + 1)
            .cast(DataType::UInt32)
            .alias(ablate_schema::col::SCHEMA_VERSION),
    )
    .collect()
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut df)
        .unwrap();
    let err = generate(dir.path(), &ReportOptions::default()).unwrap_err();
    match err {
        ReportError::Schema {
            source: SchemaError::Version {
                found, expected, ..
            },
            ..
        } => assert_eq!((found, expected), (SCHEMA_VERSION + 1, SCHEMA_VERSION)),
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn epoch_timing_comes_from_epochs_parquet() {
    let dir = fixture();
    let src = load::Sources {
        dir: dir.path().to_path_buf(),
    };
    let timing: HashMap<String, (Option<f64>, Option<f64>)> =
        load::read_epoch_timing(&src).unwrap();
    // The fixture's epochs take 10 s + variant index.
    let t = &timing["000010000001"];
    assert_eq!(t.0, Some(10.0));
    assert_eq!(t.1, Some(5000.0));
}
