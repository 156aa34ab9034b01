//! End to end: what a real sweep writes is what the report reads. A tiny sweep on synthetic data
//! runs through the `ablate` binary (the baseline and SE at two reductions, two seeds), then
//! `ablate_report::generate` reads its Parquet files: its tables list every variant with its
//! seeds, and every chart whose input the sweep wrote is drawn.

mod sweep_common;

use std::collections::BTreeSet;

use ablate_report::charts::stems;
use ablate_report::{generate, ReportOptions};
use sweep_common::{explain, Sandbox};

const GRID: &str =
    "[[grid]]\n\n[[grid]]\n\"model.attention\" = [\"se\"]\n\"model.reduction\" = [4, 8]\n";

#[test]
fn the_report_reads_what_a_real_sweep_writes() {
    let sb = Sandbox::with_grid("e2e", &[0, 1], GRID, 2, 2);
    let out = sb.sweep(&["--jobs-per-device", "3"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let dir = sb.results();
    let summary = generate(&dir, &ReportOptions::default()).unwrap_or_else(|e| panic!("{e:?}"));

    assert_eq!(
        (
            summary.variants,
            summary.trials,
            summary.completed,
            summary.failed
        ),
        (3, 6, 6, 0)
    );
    assert_eq!(summary.baseline.as_deref(), Some("baseline"));
    assert!(
        summary.skipped_charts.is_empty(),
        "every chart's input exists: {:?}",
        summary.skipped_charts
    );
    // Every chart kind: training curves, comparisons (the swept reduction is numeric with two
    // values), cost, per-class results, feature maps (baseline and SE), SE gates; the confusion
    // matrix is the best variant's, drawn when the report names one.
    let axis = stems::axis("model.reduction");
    let drawn: Vec<&str> = stems::FIXED
        .iter()
        .copied()
        .filter(|s| *s != stems::CONFUSION || summary.best.is_some())
        .chain([axis.as_str()])
        .collect();
    let written: BTreeSet<String> = summary
        .files
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
        .collect();
    for stem in &drawn {
        for ext in ["svg", "png"] {
            let name = format!("{stem}.{ext}");
            assert!(written.contains(&name), "{name} not written: {written:?}");
            let len = std::fs::metadata(summary.out_dir.join(&name))
                .unwrap()
                .len();
            assert!(len > 1000, "{name}: {len} bytes");
        }
    }
    assert_eq!(
        written.len(),
        3 + 2 * drawn.len(),
        "report.md, index.html, summary.csv and the charts: {written:?}"
    );

    let md = std::fs::read_to_string(summary.out_dir.join("report.md")).unwrap();
    assert!(md.starts_with("# Ablation report: e2e"), "{md}");
    assert!(md.contains("3 variants, 6 trials: 6 completed"), "{md}");
    // Each variant's row: its attention and both seeds completed.
    for (label, attention) in [
        ("baseline", "none"),
        ("attention=se reduction=4", "se"),
        ("attention=se reduction=8", "se"),
    ] {
        let cells: Vec<&str> = md
            .lines()
            .filter(|l| l.starts_with("| "))
            .map(|l| {
                l.split('|')
                    .map(|c| c.trim().trim_matches('*'))
                    .collect::<Vec<_>>()
            })
            .find(|c| c.len() > 3 && c[1].trim_end_matches(" ★ best") == label)
            .unwrap_or_else(|| panic!("no variant row for {label}:\n{md}"));
        assert_eq!((cells[2], cells[3]), (attention, "2/2"), "{label}");
    }
    assert!(!md.contains("Charts not drawn"), "{md}");
    assert!(md.contains("None: every trial completed."), "{md}");

    let csv = std::fs::read_to_string(summary.out_dir.join("summary.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(
        header.ends_with(",axis.model.attention,axis.model.reduction"),
        "{header}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows.iter().any(|r| r.ends_with(",se,4")), "{csv}");
    assert!(rows.iter().any(|r| r.ends_with(",se,8")), "{csv}");
}

/// `ablate report` on a results folder whose Parquet files an older `ablate` wrote (another
/// schema version) rebuilds them from the trial folders, then reports.
#[test]
fn report_rebuilds_files_of_another_schema_version() {
    use ablate_schema::{col, tables, SCHEMA_VERSION};
    use polars::prelude::*;

    let sb = Sandbox::new("old", &[0], false, 1, 2);
    let out = sb.sweep(&[], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let path = sb.results().join(tables::TRIALS.file_name());
    let mut old = LazyFrame::scan_parquet(
        PlRefPath::try_from_path(&path).unwrap(),
        ScanArgsParquet::default(),
    )
    .unwrap()
    .with_column(
        lit(SCHEMA_VERSION - 1)
            .cast(DataType::UInt32)
            .alias(col::SCHEMA_VERSION),
    )
    .collect()
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut old)
        .unwrap();
    assert!(ablate_schema::scan_table(&sb.results(), &tables::TRIALS).is_err());

    let out = sweep_common::ablate()
        .arg("report")
        .arg(sb.results())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let df = ablate_schema::scan_table(&sb.results(), &tables::TRIALS)
        .unwrap()
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(ablate_schema::trials_from_frame(&df).unwrap().len(), 1);
    assert!(sb.results().join("report/report.md").is_file());
}
