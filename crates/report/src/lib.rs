//! `ablate-report`: turns a sweep's Parquet files (docs/results.md, schema
//! version 1) into `report/report.md`, a self-contained `report/index.html`,
//! `report/summary.csv` and SVG/PNG charts.
//!
//! The report answers "did the attention module help, by how much, at what
//! cost, and how sure are we?": per-variant means with t-distribution
//! confidence intervals, a verdict on each variant against the baseline (paired
//! test when the design pairs the seeds, Welch's otherwise; p-values adjusted
//! across the comparisons; detectable effects and the seeds a decision takes;
//! probability of improvement), the split of the seed noise into its sources,
//! failures listed with their error, and the charts described in docs/report.md.
//!
//! This crate depends only on the Parquet schema, not on the runner or model
//! crates. Large files (4 million iteration rows for 100 trials) are reduced
//! with polars' lazy API before anything is plotted.

pub mod analysis;
pub mod charts;
pub mod compare;
mod error;
pub mod load;
pub mod noise;
mod page;
pub mod settings;
pub mod stats;
pub mod tables;
pub mod verdicts;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

pub use error::{DrawError, ReportError};

use analysis::{analyze, Analysis, Variant};
use charts::classes::{ClassChart, ClassSeries, ConfusionChart};
use charts::compare::{AccPoint, AxisChart, AxisGroup, CostChart, CostPoint, FinalAccChart};
use charts::curves::{smooth, EpochChart, Line, LossChart};
use charts::inside::{FeatureMapChart, FeatureSample, GateChart, MapRow};
use charts::{render, series_colour, Palette, Rendered};
use load::{AxisValue, ClassRow, Sources, Trial};

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
    /// How the comparisons with the baseline are judged (adjustment, level, effect).
    pub compare: compare::CompareOptions,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            feature_maps: 4,
            formats: ChartFormats::default(),
            feature_channels: 9,
            loss_points: 2000,
            compare: compare::CompareOptions::default(),
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
    /// The best variant's label: better than the baseline after the adjustment.
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
    pub noise: Option<noise::Noise>,
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
    let mut analysis = analyze(&trials, &timing);
    let settings = settings::read_settings(&src)?;
    compare::compare_all(&mut analysis, &trials, &settings, &opts.compare);
    let noise = noise::analyze_noise(&analysis, &trials, &settings, opts.compare.effect_points);
    let out_dir = results_dir.join("report");
    std::fs::create_dir_all(&out_dir).map_err(|source| ReportError::Write {
        path: out_dir.clone(),
        source,
    })?;

    let mut counts = Counts::default();
    for t in &trials {
        match t.status.as_str() {
            "completed" => counts.completed += 1,
            "failed" => counts.failed += 1,
            "diverged" => counts.diverged += 1,
            _ => counts.unfinished += 1,
        }
    }

    let (charts, skipped) = draw_charts(&src, &trials, &analysis, &out_dir, opts)?;
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
        noise,
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

/// Trials whose curves are plotted: everything that did not fail or diverge
/// (unfinished trials show how far they got).
fn curve_trials(trials: &[Trial]) -> Vec<(&str, &str)> {
    trials
        .iter()
        .filter(|t| t.status != "failed" && t.status != "diverged")
        .map(|t| (t.trial_id.as_str(), t.variant_id.as_str()))
        .collect()
}

fn completed_ids<'a>(trials: &'a [Trial], variant_id: &str) -> Vec<&'a Trial> {
    let mut v: Vec<&Trial> = trials
        .iter()
        .filter(|t| t.variant_id == variant_id && t.status == "completed")
        .collect();
    v.sort_by_key(|t| t.seed);
    v
}

/// Class names by index from classes.parquet rows.
fn class_names(rows: &[ClassRow]) -> Vec<String> {
    let mut names: BTreeMap<u32, String> = BTreeMap::new();
    for r in rows {
        names
            .entry(r.class_index)
            .or_insert_with(|| r.class.clone());
    }
    let n = names.keys().next_back().map_or(0, |k| *k as usize + 1);
    (0..n)
        .map(|i| {
            names
                .get(&(i as u32))
                .cloned()
                .unwrap_or_else(|| i.to_string())
        })
        .collect()
}

/// Identifier-safe file stem for an axis key.
fn stem_for(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

type Drawn = (Vec<Rendered>, Vec<(String, String)>);

fn draw_charts(
    src: &Sources,
    trials: &[Trial],
    a: &Analysis,
    out: &Path,
    opts: &ReportOptions,
) -> Result<Drawn, ReportError> {
    let fmt = opts.formats;
    let palette = Palette::new(
        a.variants
            .iter()
            .map(|v| (v.id.as_str(), v.order, v.is_baseline)),
    );
    let mut charts = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    let label_of = |v: &Variant| charts::baseline_label(&v.label, v.is_baseline);
    let curve_map = curve_trials(trials);

    // 1. Loss per iteration.
    let loss = load::read_loss_curves(src, &curve_map, opts.loss_points)?;
    if loss.is_empty() {
        skipped.push((
            "Training loss per iteration".into(),
            "no iteration rows for trials that did not fail".into(),
        ));
    } else {
        let lines: Vec<Line<Vec<(f64, f64)>>> = a
            .variants
            .iter()
            .filter_map(|v| {
                let pts = loss.get(&v.id)?;
                Some(Line {
                    label: label_of(v),
                    colour: palette.get(&v.id),
                    data: smooth(pts, pts.len() / 200),
                })
            })
            .collect();
        let chart = LossChart { lines };
        charts.push(render(
            &chart,
            out,
            "loss_iterations",
            "Training loss per iteration",
            "Mean training loss over the seeds of each variant, averaged over bins of consecutive iterations and smoothed with a centered moving average (about 1% of the run). Failed and diverged trials are left out.",
            fmt,
        )?);
    }

    // 2. Per-epoch curves.
    let epochs = load::read_epoch_curves(src, &curve_map)?;
    if epochs.is_empty() {
        skipped.push((
            "Per-epoch curves".into(),
            "no epoch rows for trials that did not fail".into(),
        ));
    } else {
        let lines = a
            .variants
            .iter()
            .filter_map(|v| {
                Some(Line {
                    label: label_of(v),
                    colour: palette.get(&v.id),
                    data: epochs.get(&v.id)?.clone(),
                })
            })
            .collect();
        charts.push(render(
            &EpochChart { lines },
            out,
            "epochs",
            "Per-epoch train and test curves",
            "Train and test loss and accuracy after each epoch: the line is the mean over seeds, the shaded band spans the lowest and highest seed.",
            fmt,
        )?);
    }

    let with_results: Vec<&Variant> = a.variants.iter().filter(|v| v.completed() > 0).collect();
    let base_mean = a
        .baseline()
        .filter(|b| b.completed() > 0)
        .map(|b| b.final_acc.mean);

    // 3. Final accuracy per variant.
    if with_results.is_empty() {
        skipped.push((
            "Final test accuracy per variant".into(),
            "no completed trial".into(),
        ));
    } else {
        let rows = a
            .variants
            .iter()
            .map(|v| AccPoint {
                label: v.label.clone(),
                colour: palette.get(&v.id),
                mean: (v.completed() > 0).then_some(v.final_acc.mean),
                ci: v.final_ci,
                seeds: v.final_by_seed.values().copied().collect(),
                is_baseline: v.is_baseline,
            })
            .collect();
        charts.push(render(
            &FinalAccChart { rows },
            out,
            "final_accuracy",
            "Final test accuracy per variant",
            "Filled dot: mean final test accuracy over seeds; bar: 95% confidence interval of the mean (t distribution, shown with 2 or more seeds); small circles: the individual seeds; dashed line: the baseline's mean.",
            fmt,
        )?);
    }

    // 3b. The difference with the baseline, as the verdicts see it.
    if let Some(chart) = charts::differences::DiffChart::from_analysis(a, |id| palette.get(id)) {
        charts.push(render(
            &chart,
            out,
            "differences",
            "Difference with the baseline",
            "Each variant's difference of final test accuracy with the baseline, in points, as the verdicts compute it: the filled dot is the primary analysis' difference (paired mean, or difference of means for Welch), the bar its 95% confidence interval, the small circles the per-seed differences (paired only); the dashed line is zero, the dotted lines ± the difference of interest (--effect). The label gives the analysis, the seeds and the adjusted verdict.",
            fmt,
        )?);
    }

    // 4. Accuracy against each swept numeric axis.
    let mut axis_keys: Vec<String> = Vec::new();
    for v in &a.variants {
        for (k, _) in &v.axes {
            if !axis_keys.contains(k) {
                axis_keys.push(k.clone());
            }
        }
    }
    let mut any_axis = false;
    for key in &axis_keys {
        let value = |v: &Variant| {
            v.axes
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, x)| x.as_f64())
        };
        let distinct: HashSet<u64> = with_results
            .iter()
            .filter_map(|v| value(v))
            .map(f64::to_bits)
            .collect();
        if distinct.len() < 2 {
            continue;
        }
        any_axis = true;
        let mut groups: Vec<AxisGroup> = Vec::new();
        for v in &with_results {
            let Some(x) = value(v) else { continue };
            let others: Vec<String> = v
                .axes
                .iter()
                .filter(|(k, val)| k != key && *val != AxisValue::Null)
                .map(|(k, val)| format!("{k}={val}"))
                .collect();
            let label = if others.is_empty() {
                "all variants".to_string()
            } else {
                others.join(" ")
            };
            let gi = match groups.iter().position(|g| g.label == label) {
                Some(i) => i,
                None => {
                    groups.push(AxisGroup {
                        label,
                        colour: series_colour(groups.len()),
                        points: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            groups[gi].points.push((x, v.final_acc.mean, v.final_ci));
        }
        for g in &mut groups {
            g.points.sort_by(|p, q| p.0.total_cmp(&q.0));
        }
        let xs: Vec<f64> = groups
            .iter()
            .flat_map(|g| g.points.iter().map(|p| p.0))
            .collect();
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log2 = min > 0.0 && max / min >= 8.0;
        let stem = format!("axis_{}", stem_for(key));
        charts.push(render(
            &AxisChart {
                key: key.clone(),
                log2,
                groups,
                baseline: base_mean,
            },
            out,
            &stem,
            &format!("Final test accuracy against {key}"),
            &format!("Mean final test accuracy (with 95% CI) for each value of the swept key `{key}`; one line per combination of the other swept values; dashed: the baseline's mean."),
            fmt,
        )?);
    }
    if !any_axis {
        skipped.push((
            "Accuracy against swept numeric axes".into(),
            "no swept numeric key with two or more values among completed variants".into(),
        ));
    }

    // 5. Cost-benefit.
    let cost: Vec<CostPoint> = with_results
        .iter()
        .filter(|v| v.params.is_some() || v.macs.is_some())
        .map(|v| CostPoint {
            label: label_of(v),
            colour: palette.get(&v.id),
            params: v.params,
            macs: v.macs,
            mean: v.final_acc.mean,
            ci: v.final_ci,
        })
        .collect();
    if cost.is_empty() {
        skipped.push((
            "Cost and benefit".into(),
            "no completed trial with parameter or MAC counts".into(),
        ));
    } else {
        charts.push(render(
            &CostChart {
                points: cost,
                baseline: base_mean,
            },
            out,
            "cost_benefit",
            "Cost and benefit",
            "Mean final test accuracy (with 95% CI) against trainable parameters (left) and multiply-accumulates per image (right): up and to the left is better.",
            fmt,
        )?);
    }

    // 6. Per-class accuracy and confusion matrix.
    let baseline = a.baseline().filter(|b| b.completed() > 0);
    let contender = a.best_contender();
    let mut compared: Vec<&Variant> = baseline.into_iter().chain(contender).collect();
    if let Some(best) = a.top() {
        if !compared.iter().any(|v| v.id == best.id) {
            compared.push(best);
        }
    }
    let class_trials: Vec<&str> = compared
        .iter()
        .flat_map(|v| completed_ids(trials, &v.id))
        .map(|t| t.trial_id.as_str())
        .collect();
    let class_rows = load::read_classes(src, &class_trials)?;
    let names = class_names(&class_rows);
    if class_rows.is_empty() || names.is_empty() {
        skipped.push((
            "Per-class accuracy and confusion matrix".into(),
            "no classes.parquet rows for completed trials".into(),
        ));
    } else {
        let variant_of: HashMap<&str, &str> = trials
            .iter()
            .map(|t| (t.trial_id.as_str(), t.variant_id.as_str()))
            .collect();
        let series: Vec<ClassSeries> = compared
            .iter()
            .filter(|v| v.is_baseline || contender.is_some_and(|c| c.id == v.id))
            .map(|v| {
                let mut acc = vec![(0.0, 0usize); names.len()];
                for r in class_rows
                    .iter()
                    .filter(|r| variant_of.get(r.trial_id.as_str()) == Some(&v.id.as_str()))
                {
                    let e = &mut acc[r.class_index as usize];
                    e.0 += r.accuracy;
                    e.1 += 1;
                }
                ClassSeries {
                    label: label_of(v),
                    colour: palette.get(&v.id),
                    accuracy: acc
                        .iter()
                        .map(|(s, n)| if *n > 0 { s / *n as f64 } else { f64::NAN })
                        .collect(),
                }
            })
            .collect();
        charts.push(render(
            &ClassChart {
                classes: names.clone(),
                series,
            },
            out,
            "per_class",
            "Per-class test accuracy",
            "Test accuracy of each true class for the baseline and the best attention variant, mean over their completed seeds.",
            fmt,
        )?);
        if let Some(best) = a.top() {
            let n = names.len();
            let mut counts = vec![vec![0u64; n]; n];
            let mut any = false;
            for r in class_rows
                .iter()
                .filter(|r| variant_of.get(r.trial_id.as_str()) == Some(&best.id.as_str()))
            {
                for (p, c) in r.confusion.iter().enumerate().take(n) {
                    counts[r.class_index as usize][p] += c;
                    any = true;
                }
            }
            if any {
                charts.push(render(
                    &ConfusionChart {
                        label: best.label.clone(),
                        classes: names.clone(),
                        counts,
                    },
                    out,
                    "confusion",
                    "Confusion matrix of the variant with the highest mean",
                    "Rows: true class; columns: predicted class; each cell is the share of the true class's test images (in %), summed over the completed seeds of the variant with the highest mean final test accuracy.",
                    fmt,
                )?);
            }
        }
    }

    // 7. Feature maps.
    if opts.feature_maps == 0 {
        skipped.push(("Feature maps".into(), "disabled (--feature-maps 0)".into()));
    } else {
        match feature_map_chart(src, trials, a, &palette, &names, opts)? {
            Ok(chart) => charts.push(render(
                &chart,
                out,
                "feature_maps",
                "Feature maps",
                "For a few fixed test images: the image with its class, and the first channels of each block's convolution output (before batch norm), for the baseline and the best attention variant side by side.",
                fmt,
            )?),
            Err(reason) => skipped.push(("Feature maps".into(), reason)),
        }
    }

    // 8. SE gates.
    match gate_chart(src, trials, a, &names)? {
        Ok(chart) => charts.push(render(
            &chart,
            out,
            "gates",
            "What the channel attention learned",
            "Mean excitation (gate value) of each channel over the test images of each class, per block, averaged over the variant's completed seeds. Lines that coincide mean class-agnostic gating; lines that spread apart mean class-specific gating (Hu et al., SE networks, section 7.2).",
            fmt,
        )?),
        Err(reason) => skipped.push(("Channel-attention gates".into(), reason)),
    }

    Ok((charts, skipped))
}

fn feature_map_chart(
    src: &Sources,
    trials: &[Trial],
    a: &Analysis,
    palette: &Palette,
    names: &[String],
    opts: &ReportOptions,
) -> Result<Result<FeatureMapChart, String>, ReportError> {
    let with_maps: HashSet<String> = load::trials_with_rows(src, "feature_maps")?
        .into_iter()
        .collect();
    if with_maps.is_empty() {
        return Ok(Err("no feature_maps.parquet rows".into()));
    }
    let pick = |v: &Variant, prefer_seed: Option<u64>| -> Option<Trial> {
        let ts: Vec<&Trial> = completed_ids(trials, &v.id)
            .into_iter()
            .filter(|t| with_maps.contains(&t.trial_id))
            .collect();
        ts.iter()
            .find(|t| Some(t.seed) == prefer_seed)
            .or(ts.first())
            .map(|t| (*t).clone())
    };
    let mut chosen: Vec<(&Variant, Trial)> = Vec::new();
    if let Some(b) = a.baseline() {
        if let Some(t) = pick(b, None) {
            chosen.push((b, t));
        }
    }
    // The best attention variant that has maps.
    let prefer = chosen.first().map(|c| c.1.seed);
    if let Some((v, t)) = a
        .variants
        .iter()
        .filter(|v| !v.is_baseline && v.attention != "none" && v.completed() > 0)
        .find_map(|v| pick(v, prefer).map(|t| (v, t)))
    {
        chosen.push((v, t));
    }
    if chosen.is_empty() {
        return Ok(Err(
            "no completed baseline or attention trial with feature maps".into(),
        ));
    }
    let n = opts.feature_maps;
    let images = load::read_samples(src, &chosen[0].1.trial_id, n)?;
    if images.is_empty() {
        return Ok(Err("no samples.parquet rows for the chosen trials".into()));
    }
    let mut per_trial = Vec::new();
    for (v, t) in &chosen {
        let maps = load::read_feature_maps(src, &t.trial_id, n, opts.feature_channels)?;
        let preds: HashMap<u32, u32> = load::read_samples(src, &t.trial_id, n)?
            .into_iter()
            .map(|s| (s.sample, s.predicted))
            .collect();
        per_trial.push((*v, t.seed, maps, preds));
    }
    let mut blocks: Vec<u32> = per_trial
        .iter()
        .flat_map(|p| p.2.iter().map(|m| m.block))
        .collect();
    blocks.sort_unstable();
    blocks.dedup();
    let name_of = |i: u32| {
        names.get(i as usize).cloned().unwrap_or_else(|| {
            if i == u32::MAX {
                "?".into()
            } else {
                i.to_string()
            }
        })
    };
    let samples = images
        .into_iter()
        .map(|image| {
            let rows = per_trial
                .iter()
                .map(|(v, seed, maps, preds)| MapRow {
                    label: if v.is_baseline {
                        format!("baseline, seed {seed}")
                    } else {
                        format!("{}, seed {seed}", v.label)
                    },
                    colour: palette.get(&v.id),
                    predicted: preds.get(&image.sample).map_or("?".into(), |p| name_of(*p)),
                    maps: maps
                        .iter()
                        .filter(|m| m.sample == image.sample)
                        .cloned()
                        .collect(),
                })
                .collect();
            FeatureSample { image, rows }
        })
        .collect();
    Ok(Ok(FeatureMapChart { samples, blocks }))
}

fn gate_chart(
    src: &Sources,
    trials: &[Trial],
    a: &Analysis,
    names: &[String],
) -> Result<Result<GateChart, String>, ReportError> {
    let with_gates: HashSet<String> = load::trials_with_rows(src, "gates")?.into_iter().collect();
    if with_gates.is_empty() {
        return Ok(Err(
            "no gates.parquet rows (no channel-attention trial)".into()
        ));
    }
    // Prefer the best SE variant, else the best variant with gates.
    let candidates: Vec<(&Variant, Vec<&str>)> = a
        .variants
        .iter()
        .filter(|v| v.completed() > 0)
        .map(|v| {
            let ids = completed_ids(trials, &v.id)
                .into_iter()
                .filter(|t| with_gates.contains(&t.trial_id))
                .map(|t| t.trial_id.as_str())
                .collect::<Vec<_>>();
            (v, ids)
        })
        .filter(|(_, ids)| !ids.is_empty())
        .collect();
    let Some((v, ids)) = candidates
        .iter()
        .find(|(v, _)| v.attention == "se")
        .or(candidates.first())
    else {
        return Ok(Err("no completed trial with gates".into()));
    };
    let rows = load::read_gates(src, ids)?;
    let n_classes = rows
        .iter()
        .map(|r| r.class_index as usize + 1)
        .max()
        .unwrap_or(0)
        .max(names.len());
    let mut blocks: BTreeMap<u32, Vec<Vec<f64>>> = BTreeMap::new();
    for r in &rows {
        let g = blocks
            .entry(r.block)
            .or_insert_with(|| vec![Vec::new(); n_classes]);
        let row = &mut g[r.class_index as usize];
        if row.len() <= r.channel as usize {
            row.resize(r.channel as usize + 1, f64::NAN);
        }
        row[r.channel as usize] = r.mean_gate;
    }
    let classes = (0..n_classes)
        .map(|i| names.get(i).cloned().unwrap_or_else(|| i.to_string()))
        .collect();
    Ok(Ok(GateChart {
        label: format!("{} ({} seeds)", v.label, ids.len()),
        classes,
        blocks: blocks.into_iter().collect(),
    }))
}
