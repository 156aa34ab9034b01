//! What the final models do: per-class accuracy and the confusion matrix, feature maps on the
//! sample images, and what the channel attention learned (mean gates per class).

use std::collections::{BTreeMap, HashMap, HashSet};

use ablate_schema::tables::{FEATURE_MAPS, GATES};
use ablate_schema::ClassLine;

use super::class_pick::{self, Shown};
use super::Figures;
use crate::analysis::Variant;
use crate::charts::classes::{ClassChart, ClassSeries, ConfusionChart};
use crate::charts::inside::{FeatureMapChart, FeatureSample, GateChart, MapRow};
use crate::charts::stems;
use crate::error::ReportError;
use crate::load::{self, ClassRow, Trial};

/// Class names by index from classes.parquet rows.
fn class_names(rows: &[ClassRow]) -> Vec<String> {
    let mut names: BTreeMap<u32, String> = BTreeMap::new();
    for (_, c) in rows {
        names
            .entry(c.class_index)
            .or_insert_with(|| c.class.clone());
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

/// `per_class` and `confusion`: the baseline against the best attention variant, and the
/// confusion matrix of the variant with the highest mean. Returns the class names (empty without classes.parquet rows).
pub(super) fn class_charts(f: &mut Figures<'_>) -> Result<Vec<String>, ReportError> {
    let baseline = f.a.baseline().filter(|b| b.completed() > 0);
    let contender = f.a.best_contender();
    let mut compared: Vec<&Variant> = baseline.into_iter().chain(contender).collect();
    if let Some(top) = f.a.top() {
        if !compared.iter().any(|v| v.id == top.id) {
            compared.push(top);
        }
    }
    let class_trials: Vec<&str> = compared
        .iter()
        .flat_map(|v| f.completed_trials(&v.id))
        .map(|t| t.trial_id.as_str())
        .collect();
    let rows = load::read_classes(f.src, &class_trials)?;
    let names = class_names(&rows);
    if rows.is_empty() || names.is_empty() {
        f.skip(
            "Per-class accuracy and confusion matrix",
            "no classes.parquet rows for completed trials",
        );
        return Ok(names);
    }
    let variant_of: HashMap<&str, &str> = f
        .trials
        .iter()
        .map(|t| (t.trial_id.as_str(), t.variant_id.as_str()))
        .collect();
    let of_variant = |v: &Variant| -> Vec<&ClassLine> {
        rows.iter()
            .filter(|(t, _)| variant_of.get(t.as_str()) == Some(&v.id.as_str()))
            .map(|(_, c)| c)
            .collect()
    };
    let series: Vec<ClassSeries> = compared
        .iter()
        .filter(|v| v.is_baseline || contender.is_some_and(|c| c.id == v.id))
        .map(|v| ClassSeries {
            label: Figures::label(v),
            colour: f.palette.get(&v.id),
            accuracy: mean_class_accuracy(&of_variant(v), names.len()),
        })
        .collect();
    let shown = pick_classes(&series);
    let series = series
        .into_iter()
        .map(|s| ClassSeries {
            accuracy: shown.select(&s.accuracy),
            ..s
        })
        .collect();
    f.draw(
        &ClassChart {
            classes: shown.select(&names),
            series,
        },
        stems::PER_CLASS,
        "Per-class test accuracy",
        &shown.caption("Test accuracy of each true class for the baseline and the best attention variant, mean over their completed seeds."),
    )?;
    confusion_chart(f, &names, &of_variant)?;
    Ok(names)
}

/// Each class's accuracy, the mean over a variant's classes.parquet rows (NaN for a class
/// without rows).
fn mean_class_accuracy(rows: &[&ClassLine], classes: usize) -> Vec<f64> {
    let mut acc = vec![(0.0, 0usize); classes];
    for c in rows {
        let e = &mut acc[c.class_index as usize];
        e.0 += c.accuracy();
        e.1 += 1;
    }
    acc.iter()
        .map(|(s, n)| if *n > 0 { s / *n as f64 } else { f64::NAN })
        .collect()
}

/// The classes the per-class chart shows (all of them up to 20): ranked by the best
/// variant's gain over the baseline when both are there, else by accuracy.
fn pick_classes(series: &[ClassSeries]) -> class_pick::Shown {
    match series {
        [base, best] => class_pick::pick(
            &base
                .accuracy
                .iter()
                .zip(&best.accuracy)
                .map(|(b, v)| v - b)
                .collect::<Vec<_>>(),
            "gain of the best attention variant over the baseline",
        ),
        [one, ..] => class_pick::pick(&one.accuracy, "accuracy"),
        [] => class_pick::pick(&[], ""),
    }
}

/// `confusion`: the confusion matrix of the variant with the highest mean final test accuracy
/// (whether or not it beats the baseline), summed over its completed seeds. `of_variant`: a
/// variant's classes.parquet rows.
fn confusion_chart<'r>(
    f: &mut Figures<'_>,
    names: &[String],
    of_variant: &dyn Fn(&Variant) -> Vec<&'r ClassLine>,
) -> Result<(), ReportError> {
    let Some(top) = f.a.top() else {
        return Ok(());
    };
    let n = names.len();
    let mut counts = vec![vec![0u64; n]; n];
    let mut any = false;
    for c in of_variant(top) {
        for (p, k) in c.confusion.iter().enumerate().take(n) {
            counts[c.class_index as usize][p] += k;
            any = true;
        }
    }
    if !any {
        return Ok(());
    }
    let totals: Vec<u64> = counts.iter().map(|row| row.iter().sum()).collect();
    let accuracy: Vec<f64> = (0..n)
        .map(|t| counts[t][t] as f64 / totals[t] as f64)
        .collect();
    let shown = class_pick::pick(&accuracy, "accuracy");
    let mut caption = "Rows: true class; columns: predicted class; each cell is the share of the true class's test images (in %), summed over the completed seeds of the variant with the highest mean final test accuracy.".to_string();
    if shown.note.is_some() {
        caption.push_str(" A row's shares count every prediction, also of the classes not shown, so the cells shown need not add up to 100.");
    }
    let chart = ConfusionChart {
        label: top.label.clone(),
        classes: shown.select(names),
        counts: shown
            .select(&counts)
            .iter()
            .map(|row| shown.select(row))
            .collect(),
        row_totals: shown.select(&totals),
    };
    f.draw(
        &chart,
        stems::CONFUSION,
        "Confusion matrix of the variant with the highest mean",
        &shown.caption(&caption),
    )
}

/// `feature_maps`: the sample images and the first channels of each block's conv output, for
/// the baseline and the best attention variant side by side.
pub(super) fn feature_map_chart(f: &mut Figures<'_>, names: &[String]) -> Result<(), ReportError> {
    const TITLE: &str = "Feature maps";
    if f.opts.feature_maps == 0 {
        f.skip(TITLE, "disabled (--feature-maps 0)");
        return Ok(());
    }
    match feature_maps(f, names)? {
        Ok(chart) => f.draw(
            &chart,
            stems::FEATURE_MAPS,
            TITLE,
            "For a few fixed test images: the image with its class, and the first channels of each block's convolution output (before batch norm), for the baseline and the best attention variant side by side.",
        ),
        Err(reason) => {
            f.skip(TITLE, reason);
            Ok(())
        }
    }
}

/// The baseline's trial and the best attention variant's (same seed when it can) that have
/// feature maps.
fn feature_map_trials<'a>(
    f: &Figures<'a>,
    with_maps: &HashSet<String>,
) -> Vec<(&'a Variant, &'a Trial)> {
    let pick = |v: &Variant, prefer_seed: Option<u64>| -> Option<&'a Trial> {
        let ts: Vec<&Trial> = f
            .completed_trials(&v.id)
            .into_iter()
            .filter(|t| with_maps.contains(&t.trial_id))
            .collect();
        ts.iter()
            .find(|t| Some(t.seed) == prefer_seed)
            .or(ts.first())
            .copied()
    };
    let mut chosen: Vec<(&Variant, &Trial)> = Vec::new();
    if let Some(b) = f.a.baseline() {
        if let Some(t) = pick(b, None) {
            chosen.push((b, t));
        }
    }
    let prefer = chosen.first().map(|c| c.1.seed);
    if let Some((v, t)) =
        f.a.variants
            .iter()
            .filter(|v| !v.is_baseline && v.attention != "none" && v.completed() > 0)
            .find_map(|v| pick(v, prefer).map(|t| (v, t)))
    {
        chosen.push((v, t));
    }
    chosen
}

fn feature_maps(
    f: &Figures<'_>,
    names: &[String],
) -> Result<Result<FeatureMapChart, String>, ReportError> {
    let with_maps: HashSet<String> = load::trials_with_rows(f.src, &FEATURE_MAPS)?
        .into_iter()
        .collect();
    if with_maps.is_empty() {
        return Ok(Err("no feature_maps.parquet rows".into()));
    }
    let chosen = feature_map_trials(f, &with_maps);
    let Some((_, first)) = chosen.first() else {
        return Ok(Err(
            "no completed baseline or attention trial with feature maps".into(),
        ));
    };
    let n = f.opts.feature_maps;
    let images = load::read_samples(f.src, &first.trial_id, n)?;
    if images.is_empty() {
        return Ok(Err("no samples.parquet rows for the chosen trials".into()));
    }
    let mut per_trial = Vec::new();
    for (v, t) in &chosen {
        let maps = load::read_feature_maps(f.src, &t.trial_id, n, f.opts.feature_channels)?;
        let preds: HashMap<u32, u32> = load::read_samples(f.src, &t.trial_id, n)?
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
        names
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| i.to_string())
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
                    colour: f.palette.get(&v.id),
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

/// `gates`: mean gate per class and channel of the best SE variant (else the best variant with
/// gates), per block.
pub(super) fn gate_chart(f: &mut Figures<'_>, names: &[String]) -> Result<(), ReportError> {
    match gates(f, names)? {
        Ok((chart, shown)) => f.draw(
            &chart,
            stems::GATES,
            "What the channel attention learned",
            &shown.caption("Mean excitation (gate value) of each channel over the test images of each class, per block, averaged over the variant's completed seeds. Lines that coincide mean class-agnostic gating; lines that spread apart mean class-specific gating (Hu et al., SE networks, section 7.2)."),
        ),
        Err(reason) => {
            f.skip("Channel-attention gates", reason);
            Ok(())
        }
    }
}

fn gates(
    f: &Figures<'_>,
    names: &[String],
) -> Result<Result<(GateChart, Shown), String>, ReportError> {
    let with_gates: HashSet<String> = load::trials_with_rows(f.src, &GATES)?.into_iter().collect();
    if with_gates.is_empty() {
        return Ok(Err(
            "no gates.parquet rows (no channel-attention trial)".into()
        ));
    }
    let candidates: Vec<(&Variant, Vec<&str>)> =
        f.a.variants
            .iter()
            .filter(|v| v.completed() > 0)
            .map(|v| {
                let ids = f
                    .completed_trials(&v.id)
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
    let rows = load::read_gates(f.src, ids)?;
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
    let classes: Vec<String> = (0..n_classes)
        .map(|i| names.get(i).cloned().unwrap_or_else(|| i.to_string()))
        .collect();
    let last = blocks.values().next_back().map_or(&[][..], |g| &g[..]);
    let shown = class_pick::pick(
        &gate_distinctness(last),
        "distance of their last block's gates from the mean over classes",
    );
    let chart = GateChart {
        label: format!("{} ({} seeds)", v.label, ids.len()),
        classes: shown.select(&classes),
        blocks: blocks
            .into_iter()
            .map(|(b, g)| (b, shown.select(&g)))
            .collect(),
    };
    Ok(Ok((chart, shown)))
}

/// Per class: the mean absolute difference between its gates and the mean over classes, per
/// channel (`gates[class][channel]`, NaN where missing); NaN for a class without gates.
fn gate_distinctness(gates: &[Vec<f64>]) -> Vec<f64> {
    let channels = gates.iter().map(Vec::len).max().unwrap_or(0);
    let mean: Vec<f64> = (0..channels)
        .map(|ch| {
            let v: Vec<f64> = gates
                .iter()
                .filter_map(|g| g.get(ch).copied().filter(|x| x.is_finite()))
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        })
        .collect();
    gates
        .iter()
        .map(|g| {
            let d: Vec<f64> = g
                .iter()
                .zip(&mean)
                .filter(|(x, m)| x.is_finite() && m.is_finite())
                .map(|(x, m)| (x - m).abs())
                .collect();
            d.iter().sum::<f64>() / d.len() as f64
        })
        .collect()
}
