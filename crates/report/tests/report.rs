//! End-to-end tests of `ablate_report::generate` on synthetic sweeps written in
//! the documented Parquet schema (tests/common).
//!
//! Snapshots live in tests/snapshots; run with `UPDATE_SNAPSHOTS=1` to rewrite
//! them after an intended change, then review the diff.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ablate_report::charts::stems;
use ablate_report::compare::compare_all;
use ablate_report::comparison::CompareOptions;
use ablate_report::stats::adjust::Adjust;
use ablate_report::{generate, load, settings, tables, ReportError, ReportOptions};
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
    let mut a = ablate_report::analysis::analyze(&trials, &timing);
    let settings = settings::settings_by_trial(&trials);
    compare_all(&mut a, &trials, &settings, &CompareOptions::default());
    let mut out = tables::variant_headers(Adjust::Holm).join(" | ");
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
    // Both SE variants are better after Holm's adjustment (paired); r=16 has the higher mean.
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
    assert_eq!(html.matches("<figure").count(), 10);
    assert!(html.matches("<svg").count() >= 10);
    for bad in ["<link", "<script", "src=\"http", "href=\"http", "url(http"] {
        assert!(!html.contains(bad), "index.html contains {bad}");
    }
    assert!(html.contains("class=\"best\""));
    assert!(html.contains("class=\"baseline\""));
    assert!(html.contains("<h2>Comparisons with the baseline</h2>"));
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

/// A clear effect survives the adjustment and is crowned, a null one is not; the headline
/// gives every verdict.
#[test]
fn a_clear_winner_is_the_best_and_every_variant_has_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = small_spec();
    spec.variants[1].effect = 0.05;
    spec.variants[2].effect = 0.0;
    spec.seeds = vec![1, 2, 3, 4, 5, 6];
    write_sweep(dir.path(), &spec);
    let s = generate(dir.path(), &ReportOptions::default()).unwrap();
    assert_eq!(
        s.best.as_deref(),
        Some("model.attention=se model.reduction=16")
    );
    let md = std::fs::read_to_string(s.out_dir.join("report.md")).unwrap();
    assert!(md.contains("★ best"));
    assert!(md.contains("- Verdicts (Holm, α = 0.05"));
    let verdicts: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("  - `model.attention=se"))
        .collect();
    assert_eq!(verdicts.len(), 2, "{md}");
    assert!(
        verdicts[0].contains(": better (p (Holm) = "),
        "{}",
        verdicts[0]
    );
    assert!(
        verdicts[0].contains("paired over 6 seeds"),
        "{}",
        verdicts[0]
    );
    assert!(verdicts[0].contains("95% CI ["));
    assert!(verdicts[0].contains("Decided with 6 seeds"));
    // SE r=4: 5 seeds completed (its seed 3 failed), paired with the baseline's other 5.
    assert!(
        verdicts[1].contains("paired over 5 seeds"),
        "{}",
        verdicts[1]
    );
    assert!(
        verdicts[1].contains(": no detectable difference ("),
        "{}",
        verdicts[1]
    );
    assert!(verdicts[1].contains("Underpowered"), "{}", verdicts[1]);
    assert!(verdicts[1].contains("more)."), "{}", verdicts[1]);
    assert!(md.contains("- Pairing: every comparison is paired"));
    assert!(md.contains("1 completed trial without a partner seed"));
    let csv = std::fs::read_to_string(s.out_dir.join("summary.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for col in [
        "p_adjusted",
        "verdict",
        "detectable_diff_points",
        "more_seeds_for_effect",
    ] {
        assert!(header.contains(&col), "summary.csv has no {col}");
    }
    let best_row = csv.lines().nth(1).unwrap();
    assert!(
        best_row.contains(",paired,") && best_row.contains(",better,"),
        "{best_row}"
    );
}

/// `--adjust bh` and `--effect` change the headers, the notes and the seed counts.
#[test]
fn adjustment_and_effect_options_reach_the_report() {
    let dir = fixture();
    let opts = ReportOptions {
        compare: CompareOptions {
            adjust: Adjust::BenjaminiHochberg,
            alpha: 0.1,
            effect_points: 2.0,
        },
        ..ReportOptions::default()
    };
    let s = generate(dir.path(), &opts).unwrap();
    let md = std::fs::read_to_string(s.out_dir.join("report.md")).unwrap();
    assert!(md.contains("| p (BH) |"));
    assert!(md.contains("Verdicts (Benjamini-Hochberg, α = 0.1"));
    assert!(md.contains("| Seeds for 2 pts |"));
    let csv = std::fs::read_to_string(s.out_dir.join("summary.csv")).unwrap();
    assert!(csv.lines().nth(1).unwrap().contains(",bh,"));
}

/// Rewrites trials.parquet's `config` column from each trial's variant label.
fn set_configs(dir: &Path, config_of: impl Fn(&str) -> String) {
    use polars::prelude::*;
    let path = dir.join("trials.parquet");
    let mut df = ParquetReader::new(std::fs::File::open(&path).unwrap())
        .finish()
        .unwrap();
    let configs: Vec<String> = df
        .column("variant")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| config_of(v.unwrap()))
        .collect();
    df.with_column(Column::new("config".into(), configs))
        .unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut df)
        .unwrap();
}

/// A sweep that varied one source of randomness per variant gets the noise section, with
/// each source's standard deviation and its chi-square interval.
#[test]
fn variance_sources_are_split() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = small_spec();
    spec.overrides.clear();
    spec.seeds = vec![1, 2, 3, 4, 5, 6];
    let sources = ["init", "order", "sample", "all"];
    spec.variants = sources
        .iter()
        .map(|s| common::VariantSpec {
            label: format!("seed_varies={s}"),
            attention: "none".into(),
            reduction: None,
            effect: 0.0,
            extra_params: 0,
        })
        .collect();
    write_sweep(dir.path(), &spec);
    set_configs(dir.path(), |label| {
        let source = label.trim_start_matches("seed_varies=");
        format!("[data]\nresample = \"bootstrap\"\n[model]\n[train]\nseed_varies = \"{source}\"\nfixed_seed = 1\n")
    });
    let s = generate(dir.path(), &ReportOptions::default()).unwrap();
    let md = std::fs::read_to_string(s.out_dir.join("report.md")).unwrap();
    let section = md
        .split("## Where the noise comes from")
        .nth(1)
        .unwrap_or_else(|| panic!("no noise section:\n{md}"));
    // The standard deviation of each variant's final accuracies, in points.
    let src = load::Sources {
        dir: dir.path().to_path_buf(),
    };
    let trials = load::read_trials(&src).unwrap();
    for (i, source) in [
        "weight init",
        "data order",
        "training-data sample",
        "all sources",
    ]
    .iter()
    .enumerate()
    {
        let label = format!("seed_varies={}", sources[i]);
        let finals: Vec<f64> = trials
            .iter()
            .filter(|t| t.variant == label)
            .map(|t| t.final_test_acc.unwrap() * 100.0)
            .collect();
        let sd = ablate_report::stats::Sample::of(&finals).std;
        let (lo, hi) = ablate_report::stats::variance::sd_interval(sd, 6, 0.95).unwrap();
        let row = section
            .lines()
            .find(|l| l.starts_with(&format!("| {source}")))
            .unwrap_or_else(|| panic!("no row for {source}:\n{section}"));
        assert!(
            row.contains(&format!("| {sd:.2} | [{lo:.2}, {hi:.2}] |")),
            "{row}"
        );
    }
    assert!(section.contains("The largest source is"));
    assert!(section.contains("With every source varying the SD is"));
    // Without single-source variants there is no such section.
    let plain = fixture();
    let s = generate(plain.path(), &ReportOptions::default()).unwrap();
    let md = std::fs::read_to_string(s.out_dir.join("report.md")).unwrap();
    assert!(!md.contains("Where the noise comes from"));
}

/// Raw p-values below 0.05 that do not survive the adjustment crown nobody.
#[test]
fn no_best_when_nothing_survives_the_adjustment() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = small_spec();
    spec.variants[1].effect = 0.0;
    spec.variants[2].effect = 0.0;
    spec.seeds = vec![1, 2, 3, 4, 5, 6];
    write_sweep(dir.path(), &spec);
    let s = generate(dir.path(), &ReportOptions::default()).unwrap();
    assert_eq!(s.best, None);
    let md = std::fs::read_to_string(s.out_dir.join("report.md")).unwrap();
    assert!(md.contains("- Best: none: no variant is distinguishable from the baseline yet (Holm, α = 0.05, 2 comparisons); the highest mean is `"), "{md}");
    assert!(!md.contains("★ best**"), "{md}");
    let best = md.lines().find(|l| l.starts_with("- Best:")).unwrap();
    assert!(
        best.contains("The sweep is underpowered: 2 of the 2 undecided comparisons cannot detect a 0.5-point difference"),
        "{best}"
    );
}

#[test]
fn hundred_classes_show_the_top_and_bottom_ten() {
    let mut spec = small_spec();
    spec.classes = 100;
    let dir = tempfile::tempdir().unwrap();
    write_sweep(dir.path(), &spec);
    let s = generate(dir.path(), &ReportOptions::default()).unwrap();
    assert!(s.skipped_charts.is_empty(), "{:?}", s.skipped_charts);
    let md = std::fs::read_to_string(s.out_dir.join("report.md")).unwrap();
    let notes = md
        .matches("With 100 classes the chart shows only the 10")
        .count();
    assert_eq!(notes, 3, "per-class, confusion and gates captions:\n{md}");
    assert!(
        md.contains("the 10 with the highest gain of the best attention variant over the baseline")
    );
    assert!(md.contains("need not add up to 100"));
    // The best contender (SE r=16, variant 1) gains class_gain(ci) on class ci over the
    // baseline (variant 0): the top 10 gain 0.090..0.099, the bottom 10 0.000..0.009.
    let shown = |stem: &str| -> Vec<usize> {
        let svg = std::fs::read_to_string(s.out_dir.join(format!("{stem}.svg"))).unwrap();
        (0..100)
            // `classNN`: no name is the start of another.
            .filter(|&ci| svg.contains(&spec.class_name(ci)))
            .collect()
    };
    let want: Vec<usize> = (0..100)
        .filter(|&ci| !(0.0095..0.0895).contains(&common::class_gain(ci)))
        .collect();
    assert_eq!(want.len(), 20);
    assert_eq!(shown(stems::PER_CLASS), want);
    assert_eq!(shown(stems::CONFUSION).len(), 20);
    assert_eq!(shown(stems::GATES).len(), 20);
    // Ten classes: every class, no note (the snapshot of report.md checks the captions).
    let dir = fixture();
    let s = generate(dir.path(), &ReportOptions::default()).unwrap();
    let md = std::fs::read_to_string(s.out_dir.join("report.md")).unwrap();
    assert!(!md.contains("classes the chart shows only"));
}
