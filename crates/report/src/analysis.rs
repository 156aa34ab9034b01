//! Grouping trials into variants and comparing each variant to the baseline.

use std::collections::{BTreeMap, HashMap};

use ablate_schema::TrialState;

use crate::load::{AxisValue, Trial};
use crate::stats::{paired_t_test, welch_t_test, Sample, TTest};

/// Confidence level of the intervals in the tables and charts.
pub const CONFIDENCE: f64 = 0.95;

/// Paired comparison with the baseline over the seeds both completed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    /// Number of common seeds.
    pub n: usize,
    /// Mean of the per-seed differences of final test accuracy, in points.
    pub mean_points: f64,
    /// Paired t-test; `None` with fewer than 2 pairs or identical differences.
    pub test: Option<TTest>,
}

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
    /// Paired comparison when the variant shares seeds with the baseline.
    pub paired: Option<Paired>,
    /// Mean training seconds per epoch over completed trials.
    pub seconds_per_epoch: Option<f64>,
    /// Mean training images per second over completed trials.
    pub images_per_sec: Option<f64>,
    /// This is the baseline.
    pub is_baseline: bool,
    /// This has the highest mean final test accuracy.
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
    /// Index into `variants` of the best variant.
    pub best: Option<usize>,
}

impl Analysis {
    /// The baseline variant.
    pub fn baseline(&self) -> Option<&Variant> {
        self.baseline.map(|i| &self.variants[i])
    }

    /// The best variant.
    pub fn best(&self) -> Option<&Variant> {
        self.best.map(|i| &self.variants[i])
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
        .map(|(i, id)| {
            let ts = &groups[id];
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
                paired: None,
                seconds_per_epoch,
                images_per_sec,
                is_baseline: false,
                is_best: false,
            }
        })
        .collect();

    // Baseline.
    let nones: Vec<usize> = (0..variants.len())
        .filter(|&i| variants[i].attention == "none")
        .collect();
    let (baseline, reason) = match nones.len() {
        0 if variants.is_empty() => (None, None),
        0 => (Some(0), Some(BaselineReason::NoNoneVariant)),
        1 => (Some(nones[0]), Some(BaselineReason::OnlyNone)),
        n => {
            // min_by_key keeps the first of equal keys: order of appearance.
            let b = nones
                .iter()
                .copied()
                .min_by_key(|&i| swept_keys(&variants[i].label))
                .unwrap_or(nones[0]);
            (
                Some(b),
                Some(BaselineReason::FewestSweptKeys { candidates: n }),
            )
        }
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
            let diffs: Vec<f64> = v
                .final_by_seed
                .iter()
                .filter_map(|(seed, a)| base.final_by_seed.get(seed).map(|b| (a - b) * 100.0))
                .collect();
            let same_seeds = v.final_by_seed.len() == base.final_by_seed.len()
                && v.final_by_seed
                    .keys()
                    .all(|s| base.final_by_seed.contains_key(s));
            if same_seeds && !diffs.is_empty() {
                v.paired = Some(Paired {
                    n: diffs.len(),
                    mean_points: diffs.iter().sum::<f64>() / diffs.len() as f64,
                    test: paired_t_test(&diffs),
                });
            }
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
    let best = variants.iter().position(|v| v.final_acc.n > 0);
    if let Some(b) = best {
        variants[b].is_best = true;
    }
    Analysis {
        variants,
        baseline,
        baseline_reason: reason,
        best,
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
        assert_eq!(a.best().unwrap().id, "c");
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
    fn paired_only_with_the_same_seeds() {
        let ts = vec![
            trial("b", "baseline", "none", 1, Some(0.50)),
            trial("b", "baseline", "none", 2, Some(0.52)),
            trial("s", "attention=se", "se", 1, Some(0.55)),
            trial("s", "attention=se", "se", 2, Some(0.56)),
            trial("e", "attention=eca", "eca", 1, Some(0.55)),
            trial("e", "attention=eca", "eca", 3, Some(0.56)),
        ];
        let a = analyze(&ts, &HashMap::new());
        let s = a.by_id("s").unwrap();
        let p = s.paired.unwrap();
        assert_eq!(p.n, 2);
        assert!((p.mean_points - 4.5).abs() < 1e-9);
        assert!((s.diff_points.unwrap() - 4.5).abs() < 1e-9);
        assert!(a.by_id("e").unwrap().paired.is_none());
        assert_eq!(s.seconds_per_epoch, Some(2.0));
    }
}
