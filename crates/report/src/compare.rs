//! The verdict on each variant against the baseline: which analysis is primary (paired when
//! the design pairs the seeds, Welch's otherwise), the difference with its confidence
//! interval, the p-value adjusted across every comparison of the report, the verdict in
//! words, what the seeds can detect, how many seeds a decision would take, and the
//! probability of improvement. docs/report.md gives the formulas. What a comparison holds is
//! `crate::comparison`'s.

use std::collections::{BTreeMap, HashMap};

use ablate_schema::TrialState;

use crate::analysis::{Analysis, Variant, CONFIDENCE};
use crate::comparison::{CompareOptions, Comparison, Method, Pairing, Verdict};
use crate::load::Trial;
use crate::settings::TrialSettings;
use crate::stats::adjust::adjust;
use crate::stats::bootstrap::{iqm_ci, prob_improvement_ci, prob_improvement_paired_ci};
use crate::stats::power::{detectable_effect, seeds_needed, Design};
use crate::stats::{paired_t_test, student_t_quantile, Sample};

/// Power the detectable effects and seed counts are computed for.
pub const POWER: f64 = 0.8;
/// Largest seed count searched for; beyond it the report says "more than".
pub const SEED_CAP: usize = 100_000;

/// Seed -> trial id of a variant's completed trials with a final accuracy.
fn completed_trials<'a>(trials: &'a [Trial], variant_id: &str) -> BTreeMap<u64, &'a str> {
    trials
        .iter()
        .filter(|t| {
            t.variant_id == variant_id
                && t.status == TrialState::Completed
                && t.final_test_acc.is_some()
        })
        .map(|t| (t.seed, t.trial_id.as_str()))
        .collect()
}

/// Pairs of (variant, baseline) final accuracies per common seed, and the pairing verdict.
fn pair_up(
    v: &Variant,
    base: &Variant,
    trials: &[Trial],
    settings: &HashMap<String, TrialSettings>,
) -> (Pairing, Vec<f64>) {
    let vt = completed_trials(trials, &v.id);
    let bt = completed_trials(trials, &base.id);
    let common: Vec<u64> = v
        .final_by_seed
        .keys()
        .filter(|s| base.final_by_seed.contains_key(s))
        .copied()
        .collect();
    let same_stream = common.iter().all(|s| {
        let key = |m: &BTreeMap<u64, &str>| {
            m.get(s)
                .and_then(|id| settings.get(*id))
                .map(|x| x.stream_key.clone())
        };
        matches!((key(&vt), key(&bt)), (Some(a), Some(b)) if a == b)
    });
    if !same_stream {
        return (Pairing::DifferentData, Vec::new());
    }
    if common.len() < 2 {
        return (
            Pairing::TooFewCommonSeeds {
                common: common.len(),
            },
            Vec::new(),
        );
    }
    let diffs = common
        .iter()
        .map(|s| (v.final_by_seed[s] - base.final_by_seed[s]) * 100.0)
        .collect();
    let unpaired = v.final_by_seed.len() + base.final_by_seed.len() - 2 * common.len();
    (
        Pairing::Holds {
            pairs: common.len(),
            unpaired,
        },
        diffs,
    )
}

/// Everything but the adjusted p-value and the verdict.
fn compare_one(
    v: &Variant,
    base: &Variant,
    trials: &[Trial],
    settings: &HashMap<String, TrialSettings>,
) -> Comparison {
    let (pairing, diffs) = pair_up(v, base, trials, settings);
    let t975 = |df: f64| student_t_quantile(0.5 + CONFIDENCE / 2.0, df);
    let mut c = Comparison {
        pairing: pairing.clone(),
        method: Method::Welch,
        n: v.final_acc.n,
        n_baseline: base.final_acc.n,
        diff_points: (v.final_acc.mean - base.final_acc.mean) * 100.0,
        ci_points: None,
        test: None,
        p_adjusted: None,
        verdict: Verdict::NotTestable,
        sd_points: None,
        power_level: f64::NAN,
        detectable_points: None,
        seeds_for_effect: None,
        prob_improvement: None,
        seed_diffs: Vec::new(),
    };
    if let Pairing::Holds { pairs, .. } = pairing {
        let s = Sample::of(&diffs);
        c.method = Method::Paired;
        c.n = pairs;
        c.n_baseline = pairs;
        c.diff_points = s.mean;
        c.test = paired_t_test(&diffs);
        c.sd_points = Some(s.std);
        c.ci_points = t975(s.n as f64 - 1.0).map(|t| {
            let h = t * s.std / (s.n as f64).sqrt();
            (s.mean - h, s.mean + h)
        });
        c.prob_improvement = prob_improvement_paired_ci(&diffs, CONFIDENCE);
        c.seed_diffs = diffs;
    } else {
        let (a, b) = (&v.final_acc, &base.final_acc);
        c.test = v.welch;
        if let Some(t) = v.welch {
            let se = (a.std * a.std / a.n as f64 + b.std * b.std / b.n as f64).sqrt() * 100.0;
            c.ci_points = t975(t.df).map(|q| (c.diff_points - q * se, c.diff_points + q * se));
        }
        if a.n >= 2 && b.n >= 2 {
            let pooled = ((a.n - 1) as f64 * a.std * a.std + (b.n - 1) as f64 * b.std * b.std)
                / (a.n + b.n - 2) as f64;
            c.sd_points = Some(pooled.sqrt() * 100.0);
        }
        let finals = |x: &Variant| x.final_by_seed.values().copied().collect::<Vec<_>>();
        c.prob_improvement = prob_improvement_ci(&finals(v), &finals(base), CONFIDENCE);
    }
    c
}

/// The power figures at the per-comparison level `level`.
fn add_power(c: &mut Comparison, level: f64, effect_points: f64) {
    c.power_level = level;
    let design = match c.method {
        Method::Paired => Design::Paired { n: c.n },
        Method::Welch => Design::TwoSample {
            n1: c.n,
            n2: c.n_baseline,
        },
    };
    let Some(sd) = c.sd_points.filter(|s| *s > 0.0 && s.is_finite()) else {
        return;
    };
    c.detectable_points = detectable_effect(design, level, POWER).map(|d| d * sd);
    c.seeds_for_effect = seeds_needed(effect_points / sd, design, level, POWER, SEED_CAP);
}

/// Fills every variant's comparison with the baseline and its IQM, adjusts the p-values
/// across the comparisons, gives the verdicts, and marks the best variant: the one with the
/// highest mean among those better than the baseline after adjustment (none otherwise).
pub fn compare_all(
    a: &mut Analysis,
    trials: &[Trial],
    settings: &HashMap<String, TrialSettings>,
    opts: &CompareOptions,
) {
    for v in a.variants.iter_mut() {
        let finals: Vec<f64> = v.final_by_seed.values().copied().collect();
        v.iqm = iqm_ci(&finals, CONFIDENCE);
    }
    let Some(bi) = a.baseline else { return };
    let base = a.variants[bi].clone();
    if base.completed() == 0 {
        return;
    }
    let mut comparisons: Vec<(usize, Comparison)> = a
        .variants
        .iter()
        .enumerate()
        .filter(|(i, v)| *i != bi && v.completed() > 0)
        .map(|(i, v)| (i, compare_one(v, &base, trials, settings)))
        .collect();
    let raw: Vec<Option<f64>> = comparisons
        .iter()
        .map(|(_, c)| c.test.map(|t| t.p))
        .collect();
    let m = raw.iter().flatten().count();
    let adjusted = adjust(&raw, opts.adjust);
    let level = opts.adjust.single_level(opts.alpha, m);
    for ((_, c), p) in comparisons.iter_mut().zip(adjusted) {
        c.p_adjusted = p;
        c.verdict = match p {
            None => Verdict::NotTestable,
            Some(p) if p < opts.alpha && c.diff_points > 0.0 => Verdict::Better,
            Some(p) if p < opts.alpha && c.diff_points < 0.0 => Verdict::Worse,
            Some(_) => Verdict::NoDetectableDifference,
        };
        add_power(c, level, opts.effect_points);
    }
    for (i, c) in comparisons {
        a.variants[i].comparison = Some(c);
    }
    // The table is sorted by mean: the first "better" variant is the best.
    for v in a.variants.iter_mut() {
        v.is_best = false;
    }
    a.best = a.variants.iter().position(|v| {
        v.comparison
            .as_ref()
            .is_some_and(|c| c.verdict == Verdict::Better)
    });
    if let Some(b) = a.best {
        a.variants[b].is_best = true;
    }
    a.comparisons = m;
    a.options = *opts;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze;
    use crate::stats::adjust::Adjust;
    use crate::stats::power::SeedsNeeded;

    // Printed by `scripts/stats-reference.py compare` (scipy 1.17.1, statsmodels 0.15.0) for
    // the fixture below: `ttest_rel`, `multipletests`, `ttest_ind(equal_var=False)`,
    // `mannwhitneyu`; detectable differences as roots of the power (quadrature), seeds as the
    // smallest n whose statsmodels `TTestPower().power` reaches 0.8.
    const RAW_P: [f64; 3] = [
        9.297384636666865e-06,
        0.03994196807171883,
        0.0299180522127316,
    ];
    const HOLM_P: [f64; 3] = [
        2.7892153910000592e-05,
        0.0598361044254632,
        0.0598361044254632,
    ];
    const BH_P: [f64; 3] = [
        2.7892153910000596e-05,
        0.03994196807171883,
        0.03994196807171883,
    ];
    const CI_0: (f64, f64) = (1.803675683852246, 2.1963243161477575);
    const DETECTABLE_0: f64 = 0.3623415543064245;
    const SEEDS_FOR_HALF_POINT_1: usize = 6;
    const WELCH_P: f64 = 0.02143581623569574;
    const WELCH_CI: (f64, f64) = (0.2603423241993372, 2.2796576758006717);
    const WELCH_DETECTABLE: f64 = 1.3465128054738384;
    const WELCH_PI: f64 = 0.95;

    const BASE: [f64; 5] = [0.700, 0.712, 0.705, 0.698, 0.709];
    const D: [[f64; 5]; 3] = [
        [0.020, 0.018, 0.022, 0.019, 0.021],
        [0.004, 0.0, 0.006, 0.002, 0.003],
        [0.004, 0.001, 0.006, 0.001, 0.004],
    ];
    const WELCH: [f64; 4] = [0.71, 0.725, 0.715, 0.72];

    fn trial(variant: &str, attention: &str, seed: u64, acc: f64) -> Trial {
        Trial {
            experiment: "x".into(),
            trial_id: format!("{variant}-{seed}"),
            variant_id: variant.into(),
            variant: if variant == "b" {
                "baseline".into()
            } else {
                format!("attention={attention} v={variant}")
            },
            seed,
            attention: attention.into(),
            axes: Default::default(),
            status: TrialState::Completed,
            attempts: 1,
            params: None,
            macs: None,
            epochs_planned: 1,
            epochs_done: 1,
            final_test_acc: Some(acc),
            best_test_acc: Some(acc),
            final_test_loss: None,
            train_seconds: 0.0,
            images_per_sec: None,
            device: None,
            device_name: None,
            started_at: None,
            ended_at: None,
            exit_code: Some(0),
            error: None,
            config: String::new(),
        }
    }

    fn settings(trials: &[Trial], other_stream: &str) -> HashMap<String, TrialSettings> {
        trials
            .iter()
            .map(|t| {
                let stream = if t.variant_id == other_stream {
                    "data.augment=[\"crop\"]\n"
                } else {
                    "data.augment=[\"crop\", \"flip\"]\n"
                };
                (
                    t.trial_id.clone(),
                    TrialSettings {
                        stream_key: stream.into(),
                        seed_varies: "all".into(),
                        source_group: String::new(),
                    },
                )
            })
            .collect()
    }

    fn paired_fixture() -> Vec<Trial> {
        let mut ts: Vec<Trial> = BASE
            .iter()
            .enumerate()
            .map(|(s, &a)| trial("b", "none", s as u64, a))
            .collect();
        for (k, d) in D.iter().enumerate() {
            let id = format!("v{k}");
            for s in 0..5 {
                ts.push(trial(&id, "se", s as u64, BASE[s] + d[s]));
            }
        }
        ts
    }

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol * b.abs().max(1e-12), "{a} != {b}");
    }

    fn run(ts: &[Trial], other_stream: &str, opts: CompareOptions) -> Analysis {
        let mut a = analyze(ts, &HashMap::new());
        compare_all(&mut a, ts, &settings(ts, other_stream), &opts);
        a
    }

    #[test]
    fn paired_verdicts_with_holm_match_scipy_and_statsmodels() {
        let a = run(&paired_fixture(), "", CompareOptions::default());
        assert_eq!(a.comparisons, 3);
        for (k, (raw, holm)) in RAW_P.iter().zip(HOLM_P).enumerate() {
            let c = a
                .by_id(&format!("v{k}"))
                .unwrap()
                .comparison
                .clone()
                .unwrap();
            assert_eq!(c.method, Method::Paired);
            assert_eq!(
                c.pairing,
                Pairing::Holds {
                    pairs: 5,
                    unpaired: 0
                }
            );
            close(c.test.unwrap().p, *raw, 1e-8);
            close(c.p_adjusted.unwrap(), holm, 1e-8);
            close(c.power_level, 0.05 / 3.0, 1e-15);
        }
        let c0 = a.by_id("v0").unwrap().comparison.clone().unwrap();
        close(c0.diff_points, 2.0, 1e-9);
        let (lo, hi) = c0.ci_points.unwrap();
        close(lo, CI_0.0, 1e-9);
        close(hi, CI_0.1, 1e-9);
        close(c0.detectable_points.unwrap(), DETECTABLE_0, 1e-8);
        assert_eq!(c0.verdict, Verdict::Better);
        assert_eq!(c0.more_seeds(), Some(SeedsNeeded::Exactly(0)));
        // Every seed wins: P(> baseline) = 1.
        assert_eq!(c0.prob_improvement.unwrap().value, 1.0);
        // Raw p below 0.05, but not after Holm's adjustment.
        for k in [1, 2] {
            let c = a
                .by_id(&format!("v{k}"))
                .unwrap()
                .comparison
                .clone()
                .unwrap();
            assert!(c.test.unwrap().p < 0.05);
            assert_eq!(c.verdict, Verdict::NoDetectableDifference);
        }
        let c1 = a.by_id("v1").unwrap().comparison.clone().unwrap();
        assert_eq!(
            c1.seeds_for_effect,
            Some(SeedsNeeded::Exactly(SEEDS_FOR_HALF_POINT_1))
        );
        assert_eq!(
            c1.more_seeds(),
            Some(SeedsNeeded::Exactly(SEEDS_FOR_HALF_POINT_1 - 5))
        );
        // The best survives the adjustment.
        assert_eq!(a.best().unwrap().id, "v0");
        assert!(a.variants.iter().filter(|v| v.is_best).count() == 1);
    }

    #[test]
    fn benjamini_hochberg_is_less_strict() {
        let opts = CompareOptions {
            adjust: Adjust::BenjaminiHochberg,
            ..CompareOptions::default()
        };
        let a = run(&paired_fixture(), "", opts);
        for (k, bh) in BH_P.iter().enumerate() {
            let c = a
                .by_id(&format!("v{k}"))
                .unwrap()
                .comparison
                .clone()
                .unwrap();
            close(c.p_adjusted.unwrap(), *bh, 1e-8);
            assert_eq!(c.verdict, Verdict::Better, "v{k}");
        }
    }

    #[test]
    fn no_best_unless_it_survives_the_adjustment() {
        // Only the two weak variants: Holm keeps both above 0.05.
        let ts: Vec<Trial> = paired_fixture()
            .into_iter()
            .filter(|t| t.variant_id != "v0")
            .collect();
        let a = run(&ts, "", CompareOptions::default());
        assert!(a.best().is_none());
        assert!(a.variants.iter().all(|v| !v.is_best));
        // v2 has the higher mean (+0.32 against +0.30 points), but it is not crowned.
        assert!(a.top().is_some_and(|t| t.id == "v2"));
        let unadjusted = CompareOptions {
            adjust: Adjust::None,
            ..CompareOptions::default()
        };
        let a = run(&ts, "", unadjusted);
        assert_eq!(a.best().unwrap().id, "v2", "unadjusted, both raw p < 0.05");
    }

    #[test]
    fn different_data_settings_fall_back_to_welch() {
        let mut ts: Vec<Trial> = BASE
            .iter()
            .enumerate()
            .map(|(s, &a)| trial("b", "none", s as u64, a))
            .collect();
        for (s, &a) in WELCH.iter().enumerate() {
            ts.push(trial("w", "se", s as u64, a));
        }
        let a = run(&ts, "w", CompareOptions::default());
        let c = a.by_id("w").unwrap().comparison.clone().unwrap();
        assert_eq!(c.pairing, Pairing::DifferentData);
        assert_eq!(c.method, Method::Welch);
        close(c.test.unwrap().p, WELCH_P, 1e-8);
        let (lo, hi) = c.ci_points.unwrap();
        close(lo, WELCH_CI.0, 1e-8);
        close(hi, WELCH_CI.1, 1e-8);
        close(c.detectable_points.unwrap(), WELCH_DETECTABLE, 1e-8);
        close(c.prob_improvement.unwrap().value, WELCH_PI, 1e-12);
        // The same data: paired over the 4 common seeds, the baseline's fifth left out.
        let a = run(&ts, "", CompareOptions::default());
        let c = a.by_id("w").unwrap().comparison.clone().unwrap();
        assert_eq!(
            c.pairing,
            Pairing::Holds {
                pairs: 4,
                unpaired: 1
            }
        );
    }

    #[test]
    fn too_few_seeds_are_not_testable() {
        let ts = vec![
            trial("b", "none", 0, 0.70),
            trial("b", "none", 1, 0.71),
            trial("s", "se", 0, 0.72),
        ];
        let a = run(&ts, "", CompareOptions::default());
        let c = a.by_id("s").unwrap().comparison.clone().unwrap();
        assert_eq!(c.pairing, Pairing::TooFewCommonSeeds { common: 1 });
        assert_eq!(c.verdict, Verdict::NotTestable);
        assert_eq!(a.comparisons, 0);
        assert!(a.best().is_none());
    }
}
