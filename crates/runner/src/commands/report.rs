//! `ablate report DIR`: writes `DIR/report/` (tables and charts) from a sweep's Parquet files,
//! with `ablate_report::generate`. Also run at the end of every sweep unless `--no-report`.

use std::path::Path;

use ablate_report::{ReportOptions, ReportSummary};
use anyhow::Context;

use crate::cli::{ReportArgs, EXIT_OK};
use crate::results::parquet;

use super::CommandResult;

/// `ablate report DIR [--feature-maps N]`. When `DIR/trials/` exists but `DIR/trials.parquet` does
/// not (a sweep killed before its end) or was written in another schema version (an older
/// `ablate`), the Parquet files are rebuilt from the trial folders first.
pub fn run(args: ReportArgs) -> CommandResult {
    let dir = &args.dir;
    if !dir.is_dir() {
        anyhow::bail!("results folder {} does not exist", dir.display());
    }
    let stale = match ablate_schema::scan_table(dir, &ablate_schema::tables::TRIALS) {
        Ok(found) => found.is_none(),
        Err(e) => matches!(e, ablate_schema::SchemaError::Version { .. }),
    };
    if dir.join("trials").is_dir() && stale {
        parquet::rebuild(dir)
            .with_context(|| format!("cannot rebuild the Parquet files in {}", dir.display()))?;
    }
    let mut opts = ReportOptions::default();
    if let Some(n) = args.feature_maps {
        opts.feature_maps = n;
    }
    let summary = ablate_report::generate(dir, &opts)
        .with_context(|| format!("cannot write the report of {}", dir.display()))?;
    print_summary(&summary);
    Ok(EXIT_OK)
}

/// Runs the report at the end of a sweep; a failure is printed, not fatal (the sweep's results
/// are already written; `ablate report DIR` can retry).
pub fn generate_for_sweep(dir: &Path) {
    match ablate_report::generate(dir, &ReportOptions::default()) {
        Ok(summary) => print_summary(&summary),
        Err(e) => eprintln!(
            "warning: cannot write the report: {}; retry with `ablate report {}`",
            super::error_chain(&e),
            dir.display()
        ),
    }
}

fn print_summary(s: &ReportSummary) {
    println!(
        "report: {} ({} variants, {} trials: {} completed, {} failed or diverged, {} unfinished)",
        s.out_dir.join("report.md").display(),
        s.variants,
        s.trials,
        s.completed,
        s.failed,
        s.unfinished
    );
    if let (Some(base), Some(best)) = (&s.baseline, &s.best) {
        println!("  baseline: {base}; best: {best}");
    }
    for (chart, why) in &s.skipped_charts {
        println!("  skipped chart {chart}: {why}");
    }
}
