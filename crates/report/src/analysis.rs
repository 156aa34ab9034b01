//! Grouping trials into variants and comparing each variant to the baseline (the verdicts
//! themselves are `crate::compare`'s).

use std::collections::{BTreeMap, HashMap};

use ablate_schema::TrialState;

use crate::comparison::{CompareOptions, Comparison};
use crate::load::{AxisValue, Trial};
use crate::stats::bootstrap::Estimate;
use crate::stats::{welch_t_test, Sample, TTest};

/// Confidence level of the intervals in the tables and charts.
pub const CONFIDENCE: f64 = 0.95;

/// One variant (a configuration without the seed) and its statistics.
#[derive(Debug, Clone)]
pub struct Variant {
    /// `variant_id` from trials.parquet.
    pub id: String,
    /// Human label (`variant` column).
    pub label: String,
    /// `model.attention`.
    pub attention: String,
    /// Swept axes of the variant (key, value), from its first trial.
    pub axes: BTreeMap<String, AxisValue>,
    /// Position of first appearance in trials.parquet: stable colour index.
    pub order: usize,
    /// All trials of the variant.
    pub trials: usize,
    /// Seeds of completed trials with a final accuracy, with that accuracy.
    pub final_by_seed: BTreeMap<u64, f64>,
    /// Parameters (from the first trial that has them).
    pub params: Option<u64>,
    /// MACs per image.
    pub macs: Option<u64>,
    /// Final test accuracy across completed seeds (fraction).
    pub final_acc: Sample,
    /// 95% t interval of the mean final test accuracy.
    pub final_ci: Option<(f64, f64)>,
    /// Best test accuracy over epochs across completed seeds.
    pub best_acc: Sample,
    /// Mean final accuracy minus the baseline's, in percentage points.
    pub diff_points: Option<f64>,
    /// Welch's t-test of final accuracy against the baseline.
    pub welch: Option<TTest>,
    /// The comparison with the baseline (`crate::compare::compare_all`; `None` for the
    /// baseline and for variants without a completed seed).
    pub comparison: Option<Comparison>,
    /// Interquartile mean of the final test accuracy with its bootstrap interval.
    pub iqm: Option<Estimate>,
    /// Mean training seconds per epoch over completed trials.
    pub seconds_per_epoch: Option<f64>,
    /// Mean training images per second over completed trials.
    pub images_per_sec: Option<f64>,
    /// This is the baseline.
    pub is_baseline: bool,
    /// Better than the baseline after the multiple-comparison adjustment, with the highest
    /// mean final test accuracy among those that are.
    pub is_best: bool,
}

impl Variant {
    /// Completed seeds.
    pub fn completed(&self) -> usize {
        self.final_acc.n
    }

    /// Fewer than two completed seeds: no interval, no test.
    pub fn too_few_seeds(&self) -> bool {
        self.final_acc.n < 2
    }
}

/// Why a variant was chosen as the baseline.
#[derive(Debug, Clone, PartialEq)]
pub enum BaselineReason {
    /// The only variant with `attention = none`.
    OnlyNone,
    /// Several have `attention = none`: the one with the fewest swept keys away from base.
    FewestSweptKeys { candidates: usize },
    /// No variant has `attention = none`: the first variant.
    NoNoneVariant,
}

/// All variants, the baseline and the best.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Variants sorted for the table: by mean final test accuracy, highest
    /// first; variants without a completed seed last, in order of appearance.
    pub variants: Vec<Variant>,
    /// Index into `variants` of the baseline (none only without trials).
    pub baseline: Option<usize>,
    /// Why the baseline was chosen.
    pub baseline_reason: Option<BaselineReason>,
    /// Index into `variants` of the best variant: better than the baseline after the
    /// adjustment (set by `crate::compare::compare_all`; `None` when no variant is).
    pub best: Option<usize>,
    /// Index into `variants` of the variant with the highest mean final test accuracy,
    /// whether or not it is distinguishable from the baseline.
    pub top: Option<usize>,
    /// Comparisons with a test (the `m` of the adjustment).
    pub comparisons: usize,
    /// How the comparisons were judged.
    pub options: CompareOptions,
}

impl Analysis {
    /// The baseline variant.
    pub fn baseline(&self) -> Option<&Variant> {
        self.baseline.map(|i| &self.variants[i])
    }

    /// The best variant (better than the baseline after adjustment).
    pub fn best(&self) -> Option<&Variant> {
        self.best.map(|i| &self.variants[i])
    }

    /// The variant with the highest mean final test accuracy.
    pub fn top(&self) -> Option<&Variant> {
        self.top.map(|i| &self.variants[i])
    }

    /// The best variant that is not the baseline and has a completed seed.
    pub fn best_contender(&self) -> Option<&Variant> {
        self.variants
            .iter()
            .find(|v| !v.is_baseline && v.completed() > 0)
    }

    /// Variant by id.
    pub fn by_id(&self, id: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.id == id)
    }
}

/// Chooses the baseline among variants given as `(attention, label)` in sweep order: the
/// only `attention = none` variant; among several, the one whose label sets the fewest swept
/// keys (the first on a tie); without any, the first variant. The runner's seed rounds use
/// the same rule.
pub fn choose_baseline<'a>(
    variants: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<(usize, BaselineReason)> {
    let variants: Vec<(&str, &str)> = variants.into_iter().collect();
    let nones: Vec<usize> = (0..variants.len())
        .filter(|&i| variants[i].0 == "none")
        .collect();
    match nones.len() {
        0 if variants.is_empty() => None,
        0 => Some((0, BaselineReason::NoNoneVariant)),
        1 => Some((nones[0], BaselineReason::OnlyNone)),
        n => {
            // min_by_key keeps the first of equal keys: order of appearance.
            let b = nones
                .iter()
                .copied()
                .min_by_key(|&i| swept_keys(variants[i].1))
                .unwrap_or(nones[0]);
            Some((b, BaselineReason::FewestSweptKeys { candidates: n }))
        }
    }
}

/// Number of swept keys a label sets away from base (`baseline` is zero).
fn swept_keys(label: &str) -> usize {
    if label == "baseline" {
        0
    } else {
        label.split_whitespace().filter(|t| t.contains('=')).count()
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// Groups trials into variants and computes the table's statistics.
///
/// `epoch_timing` maps a trial id to its mean seconds per epoch and images/s
/// from epochs.parquet; trials.parquet's `train_seconds / epochs_done` and
/// `images_per_sec` are used where it has no entry.
pub fn analyze(
    trials: &[Trial],
    epoch_timing: &HashMap<String, (Option<f64>, Option<f64>)>,
) -> Analysis {
    let mut order: Vec<&str> = Vec::new();
    let mut groups: HashMap<&str, Vec<&Trial>> = HashMap::new();
    for t in trials {
        let e = groups.entry(t.variant_id.as_str()).or_default();
        if e.is_empty() {
            order.push(t.variant_id.as_str());
        }
        e.push(t);
    }
    let mut variants: Vec<Variant> = order
        .iter()
        .enumerate()
        .map(|(i, id)| variant_of(i, id, &groups[id], epoch_timing))
        .collect();

    // Baseline.
    let (baseline, reason) = match choose_baseline(
        variants
            .iter()
            .map(|v| (v.attention.as_str(), v.label.as_str())),
    ) {
        Some((b, r)) => (Some(b), Some(r)),
        None => (None, None),
    };

    if let Some(b) = baseline {
        variants[b].is_baseline = true;
        let base = variants[b].clone();
        for v in variants.iter_mut() {
            if v.is_baseline || v.final_acc.n == 0 || base.final_acc.n == 0 {
                continue;
            }
            v.diff_points = Some((v.final_acc.mean - base.final_acc.mean) * 100.0);
            v.welch = welch_t_test(&v.final_acc, &base.final_acc);
        }
    }

    // Sort: highest mean final accuracy first, variants without results last.
    variants.sort_by(|a, b| match (a.final_acc.n > 0, b.final_acc.n > 0) {
        (true, true) => b
            .final_acc
            .mean
            .total_cmp(&a.final_acc.mean)
            .then(a.order.cmp(&b.order)),
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.order.cmp(&b.order),
    });
    let baseline = variants.iter().position(|v| v.is_baseline);
    let top = variants.iter().position(|v| v.final_acc.n > 0);
    Analysis {
        variants,
        baseline,
        baseline_reason: reason,
        best: None,
        top,
        comparisons: 0,
        options: CompareOptions::default(),
    }
}

/// One variant's row of the table from its trials `ts` (in file order; `order`: the variant's
/// position in the files), before the comparisons with the baseline.
fn variant_of(
    i: usize,
    id: &str,
    ts: &[&Trial],
    epoch_timing: &HashMap<String, (Option<f64>, Option<f64>)>,
) -> Variant {
    let first = ts[0];
    let done: Vec<&Trial> = ts
        .iter()
        .copied()
        .filter(|t| t.status == TrialState::Completed && t.final_test_acc.is_some())
        .collect();
    let finals: Vec<f64> = done.iter().filter_map(|t| t.final_test_acc).collect();
    let bests: Vec<f64> = done.iter().filter_map(|t| t.best_test_acc).collect();
    let final_acc = Sample::of(&finals);
    let seconds_per_epoch = mean(done.iter().filter_map(|t| {
        epoch_timing.get(&t.trial_id).and_then(|x| x.0).or_else(|| {
            let (s, e) = (t.train_seconds, t.epochs_done);
            (e > 0 && s > 0.0).then(|| s / e as f64)
        })
    }));
    let images_per_sec = mean(done.iter().filter_map(|t| {
        t.images_per_sec
            .or_else(|| epoch_timing.get(&t.trial_id).and_then(|x| x.1))
    }));
    Variant {
        id: id.to_string(),
        label: first.variant.clone(),
        attention: first.attention.clone(),
        axes: first.axes.clone(),
        order: i,
        trials: ts.len(),
        final_by_seed: done
            .iter()
            .filter_map(|t| Some((t.seed, t.final_test_acc?)))
            .collect(),
        params: ts.iter().find_map(|t| t.params),
        macs: ts.iter().find_map(|t| t.macs),
        final_ci: final_acc.confidence_interval(CONFIDENCE),
        final_acc,
        best_acc: Sample::of(&bests),
        diff_points: None,
        welch: None,
        comparison: None,
        iqm: None,
        seconds_per_epoch,
        images_per_sec,
        is_baseline: false,
        is_best: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(variant: &str, label: &str, attention: &str, seed: u64, acc: Option<f64>) -> Trial {
        Trial {
            experiment: "x".into(),
            trial_id: format!("{variant}-{seed}"),
            variant_id: variant.into(),
            variant: label.into(),
            seed,
            attention: attention.into(),
            axes: BTreeMap::new(),
            status: if acc.is_some() {
                TrialState::Completed
            } else {
                TrialState::Failed
            },
            attempts: 1,
            params: Some(10),
            macs: Some(20),
            epochs_planned: 2,
            epochs_done: 2,
            final_test_acc: acc,
            best_test_acc: acc,
            final_test_loss: None,
            train_seconds: 4.0,
            images_per_sec: Some(100.0),
            device: None,
            device_name: None,
            started_at: None,
            ended_at: None,
            exit_code: Some(0),
            error: None,
            config: String::new(),
        }
    }

    #[test]
    fn baseline_prefers_fewest_swept_keys() {
        let ts = vec![
            trial("a", "attention=none width=2", "none", 1, Some(0.5)),
            trial("b", "baseline", "none", 1, Some(0.4)),
            trial("c", "attention=se", "se", 1, Some(0.6)),
        ];
        let a = analyze(&ts, &HashMap::new());
        assert_eq!(a.baseline().unwrap().id, "b");
        assert_eq!(
            a.baseline_reason,
            Some(BaselineReason::FewestSweptKeys { candidates: 2 })
        );
        assert_eq!(a.top().unwrap().id, "c");
        assert!(a.best().is_none(), "best is the verdicts' (compare_all)");
        let order: Vec<&str> = a.variants.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(order, ["c", "a", "b"]);
    }

    #[test]
    fn no_none_variant_takes_the_first() {
        let ts = vec![
            trial("x", "attention=eca", "eca", 1, None),
            trial("y", "attention=se", "se", 1, Some(0.6)),
        ];
        let a = analyze(&ts, &HashMap::new());
        assert_eq!(a.baseline().unwrap().id, "x");
        assert_eq!(a.baseline_reason, Some(BaselineReason::NoNoneVariant));
        // Without baseline results there is nothing to compare.
        assert_eq!(a.by_id("y").unwrap().diff_points, None);
        // Variants without results sort last.
        assert_eq!(a.variants.last().unwrap().id, "x");
    }

    #[test]
    fn differences_and_timing() {
        let ts = vec![
            trial("b", "baseline", "none", 1, Some(0.50)),
            trial("b", "baseline", "none", 2, Some(0.52)),
            trial("s", "attention=se", "se", 1, Some(0.55)),
            trial("s", "attention=se", "se", 2, Some(0.56)),
        ];
        let a = analyze(&ts, &HashMap::new());
        let s = a.by_id("s").unwrap();
        assert!((s.diff_points.unwrap() - 4.5).abs() < 1e-9);
        assert!(s.welch.is_some());
        assert_eq!(s.seconds_per_epoch, Some(2.0));
    }
}
