//! `ablate-report`: turns a sweep's Parquet files (docs/results.md, read through the results
//! schema `ablate_schema`) into `report/report.md`, a self-contained `report/index.html`,
//! `report/summary.csv` and SVG/PNG charts.
//!
//! The report answers "did the attention module help, by how much, at what
//! cost, and how sure are we?": per-variant means with t-distribution
//! confidence intervals, Welch's t-test against the baseline (and a paired
//! test when the seeds match), failures listed with their error, and the
//! charts described in docs/report.md.
//!
//! This crate depends only on the Parquet schema (`ablate-schema`), not on the runner or model
//! crates. Large files (4 million iteration rows for 100 trials) are reduced
//! with polars' lazy API before anything is plotted.
//!
//! | module | what |
//! | --- | --- |
//! | [`load`] | the Parquet files read and reduced (trials, curves, per-class results, gates, samples) |
//! | [`analysis`] | trials grouped into variants, each compared with the baseline |
//! | [`stats`] | means, confidence intervals, t-tests |
//! | [`tables`] | the report's tables and `summary.csv` |
//! | `figures` | which charts the report gets, from what data |
//! | [`charts`] | how each chart draws (plotters), SVG and PNG |
//! | `page` | `report.md` and `index.html` |
//! | `error` | [`ReportError`] |

pub mod analysis;
pub mod charts;
mod error;
mod figures;
pub mod load;
mod page;
pub mod stats;
pub mod tables;

use std::path::{Path, PathBuf};

use ablate_schema::TrialState;

pub use error::{DrawError, ReportError};

use analysis::{analyze, Analysis};
use charts::Rendered;
use load::{Sources, Trial};

/// Which chart files to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChartFormats {
    /// Write `<chart>.svg`.
    pub svg: bool,
    /// Write `<chart>.png`.
    pub png: bool,
}

impl Default for ChartFormats {
    fn default() -> Self {
        Self {
            svg: true,
            png: true,
        }
    }
}

/// Options of [`generate`].
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Test images shown in the feature-map chart (0: no feature-map chart).
    pub feature_maps: usize,
    /// Chart formats written (the HTML page inlines SVG, or PNG when only PNG is written).
    pub formats: ChartFormats,
    /// Channels per block shown in the feature-map chart (a 3x3 grid shows 9).
    pub feature_channels: u32,
    /// Most points per variant in the loss-per-iteration chart; iterations
    /// are averaged in bins of equal width to get there.
    pub loss_points: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            feature_maps: 4,
            formats: ChartFormats::default(),
            feature_channels: 9,
            loss_points: 2000,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct ReportSummary {
    /// `results_dir/report`.
    pub out_dir: PathBuf,
    /// Every file written, report.md, index.html and summary.csv first.
    pub files: Vec<PathBuf>,
    /// Number of variants.
    pub variants: usize,
    /// Number of trials.
    pub trials: usize,
    /// Trials completed.
    pub completed: usize,
    /// Trials failed or diverged.
    pub failed: usize,
    /// Trials running, pending or interrupted.
    pub unfinished: usize,
    /// The baseline variant's label.
    pub baseline: Option<String>,
    /// The best variant's label.
    pub best: Option<String>,
    /// Charts not drawn, each with the reason.
    pub skipped_charts: Vec<(String, String)>,
}

/// Everything the page writers need.
pub(crate) struct Report<'a> {
    pub experiment: String,
    pub trials: &'a [Trial],
    pub analysis: &'a Analysis,
    pub charts: Vec<Rendered>,
    pub skipped: Vec<(String, String)>,
    pub counts: Counts,
}

/// Trial counts by outcome.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub completed: usize,
    pub failed: usize,
    pub diverged: usize,
    pub unfinished: usize,
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Builds the report of the sweep in `results_dir` into `results_dir/report/`.
///
/// Only `trials.parquet` is required; charts whose input file is missing or
/// empty are skipped and listed in the report. A partial sweep (running,
/// failed or single-seed trials) still gets a report.
pub fn generate(results_dir: &Path, opts: &ReportOptions) -> Result<ReportSummary, ReportError> {
    let src = Sources {
        dir: results_dir.to_path_buf(),
    };
    let trials = load::read_trials(&src)?;
    let timing = load::read_epoch_timing(&src)?;
    let analysis = analyze(&trials, &timing);
    let out_dir = results_dir.join("report");
    std::fs::create_dir_all(&out_dir).map_err(|source| ReportError::Write {
        path: out_dir.clone(),
        source,
    })?;

    let mut counts = Counts::default();
    for t in &trials {
        match t.status {
            TrialState::Completed => counts.completed += 1,
            TrialState::Failed => counts.failed += 1,
            TrialState::Diverged => counts.diverged += 1,
            _ => counts.unfinished += 1,
        }
    }

    let (charts, skipped) = figures::draw_charts(&src, &trials, &analysis, &out_dir, opts)?;
    let report = Report {
        experiment: trials
            .first()
            .map(|t| t.experiment.clone())
            .unwrap_or_default(),
        trials: &trials,
        analysis: &analysis,
        charts,
        skipped,
        counts,
    };

    let md_path = out_dir.join("report.md");
    write(&md_path, &page::markdown(&report))?;
    let html_path = out_dir.join("index.html");
    write(&html_path, &page::html(&report))?;
    let csv_path = out_dir.join("summary.csv");
    write(&csv_path, &tables::summary_csv(&analysis))?;

    let mut files = vec![md_path, html_path, csv_path];
    for c in &report.charts {
        files.extend(c.files.iter().cloned());
    }
    tracing::info!(
        dir = %out_dir.display(),
        variants = analysis.variants.len(),
        trials = trials.len(),
        "report written"
    );
    Ok(ReportSummary {
        out_dir,
        files,
        variants: analysis.variants.len(),
        trials: trials.len(),
        completed: counts.completed,
        failed: counts.failed + counts.diverged,
        unfinished: counts.unfinished,
        baseline: analysis.baseline().map(|v| v.label.clone()),
        best: analysis.best().map(|v| v.label.clone()),
        skipped_charts: report.skipped,
    })
}
