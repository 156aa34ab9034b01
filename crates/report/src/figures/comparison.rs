//! How the variants compare: final test accuracy per variant, against each swept numeric key,
//! and against its cost (parameters, multiply-accumulates).

use std::collections::{BTreeSet, HashSet};

use super::Figures;
use crate::analysis::Variant;
use crate::charts::compare::{AccPoint, AxisChart, AxisGroup, CostChart, CostPoint, FinalAccChart};
use crate::charts::series_colour;
use crate::charts::stems;
use crate::error::ReportError;

/// Variants with at least one completed trial.
fn with_results<'a>(f: &Figures<'a>) -> Vec<&'a Variant> {
    f.a.variants.iter().filter(|v| v.completed() > 0).collect()
}

/// The baseline's mean final accuracy, when it has a completed trial.
fn baseline_mean(f: &Figures<'_>) -> Option<f64> {
    f.a.baseline()
        .filter(|b| b.completed() > 0)
        .map(|b| b.final_acc.mean)
}

/// `final_accuracy`: mean, confidence interval and seeds of every variant.
pub(super) fn final_accuracy_chart(f: &mut Figures<'_>) -> Result<(), ReportError> {
    if with_results(f).is_empty() {
        f.skip("Final test accuracy per variant", "no completed trial");
        return Ok(());
    }
    let rows =
        f.a.variants
            .iter()
            .map(|v| AccPoint {
                label: v.label.clone(),
                colour: f.palette.get(&v.id),
                mean: (v.completed() > 0).then_some(v.final_acc.mean),
                ci: v.final_ci,
                seeds: v.final_by_seed.values().copied().collect(),
                is_baseline: v.is_baseline,
            })
            .collect();
    f.draw(
        &FinalAccChart { rows },
        stems::FINAL_ACCURACY,
        "Final test accuracy per variant",
        "Filled dot: mean final test accuracy over seeds; bar: 95% confidence interval of the mean (t distribution, shown with 2 or more seeds); small circles: the individual seeds; dashed line: the baseline's mean.",
    )
}

/// The points of the chart against `key`: one group per combination of the other swept values.
fn axis_groups(variants: &[&Variant], key: &str) -> Vec<AxisGroup> {
    let mut groups: Vec<AxisGroup> = Vec::new();
    for v in variants {
        let Some(x) = v.axes.get(key).and_then(|x| x.as_f64()) else {
            continue;
        };
        let others: Vec<String> = v
            .axes
            .iter()
            .filter(|(k, _)| *k != key)
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
    groups
}

/// `axis_<key>`: final accuracy against each swept numeric key with two or more values among
/// the variants with results.
pub(super) fn axis_charts(f: &mut Figures<'_>) -> Result<(), ReportError> {
    let with_results = with_results(f);
    // In column order (trials.parquet sorts its axis columns by key).
    let keys: BTreeSet<&String> = f.a.variants.iter().flat_map(|v| v.axes.keys()).collect();
    let mut any = false;
    for key in keys {
        let distinct: HashSet<u64> = with_results
            .iter()
            .filter_map(|v| v.axes.get(key)?.as_f64())
            .map(f64::to_bits)
            .collect();
        if distinct.len() < 2 {
            continue;
        }
        any = true;
        let groups = axis_groups(&with_results, key);
        let xs = || groups.iter().flat_map(|g| g.points.iter().map(|p| p.0));
        let min = xs().fold(f64::INFINITY, f64::min);
        let max = xs().fold(f64::NEG_INFINITY, f64::max);
        let chart = AxisChart {
            key: key.clone(),
            log2: min > 0.0 && max / min >= 8.0,
            groups,
            baseline: baseline_mean(f),
        };
        f.draw(
            &chart,
            &stems::axis(key),
            &format!("Final test accuracy against {key}"),
            &format!("Mean final test accuracy (with 95% CI) for each value of the swept key `{key}`; one line per combination of the other swept values; dashed: the baseline's mean."),
        )?;
    }
    if !any {
        f.skip(
            "Accuracy against swept numeric axes",
            "no swept numeric key with two or more values among completed variants",
        );
    }
    Ok(())
}

/// `cost_benefit`: accuracy against parameters and multiply-accumulates.
pub(super) fn cost_chart(f: &mut Figures<'_>) -> Result<(), ReportError> {
    let points: Vec<CostPoint> = with_results(f)
        .iter()
        .filter(|v| v.params.is_some() || v.macs.is_some())
        .map(|v| CostPoint {
            label: Figures::label(v),
            colour: f.palette.get(&v.id),
            params: v.params,
            macs: v.macs,
            mean: v.final_acc.mean,
            ci: v.final_ci,
        })
        .collect();
    if points.is_empty() {
        f.skip(
            "Cost and benefit",
            "no completed trial with parameter or MAC counts",
        );
        return Ok(());
    }
    let chart = CostChart {
        points,
        baseline: baseline_mean(f),
    };
    f.draw(
        &chart,
        stems::COST_BENEFIT,
        "Cost and benefit",
        "Mean final test accuracy (with 95% CI) against trainable parameters (left) and multiply-accumulates per image (right): up and to the left is better.",
    )
}
