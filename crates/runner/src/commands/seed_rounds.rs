//! Seeds by precision (`[seeds] start, max, ci_half_width`; docs/experiments.md): the sweep
//! runs in rounds. Every variant starts with seeds `0..start`; after each round, each
//! variant whose 95% confidence interval of the difference with the baseline is wider than
//! `± ci_half_width` points gets more seeds, up to `max`; the baseline runs every seed any
//! variant runs, so the pairs stay complete. The sweep stops when no variant gets more.
//!
//! The rule looks at the precision only, never at the p-value: stopping when a test turns
//! significant inflates false positives, while stopping on the width of an interval barely
//! biases the estimate (docs/report.md has the caveat). The interval is the report's
//! primary analysis' (`ablate_report::compare`): paired over the seeds both completed when
//! the same seed gives the same data stream, Welch's otherwise.
//!
//! How many seeds to add: the seeds that would bring the half-width `t(n-1) sd / √n` to
//! the target at the spread seen so far, but at least one and at most doubling the
//! variant's seeds per round (the spread of a few seeds is a rough estimate).
//!
//! The decisions are a function of the results on disk, so a resumed sweep replays the
//! finished rounds ([`resume`]) and continues where it stopped; the added trials are
//! ordinary trials (same ids, folders, Slurm tasks).
//!
//! [`load_experiment_with_flags`] reads the experiment with the command line's precision flags
//! (`--ci-half-width`, `--seeds-start`, `--seeds-max`) for `ablate sweep` and its `--dry-run`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use ablate_report::analysis::choose_baseline;
use ablate_report::settings::TrialSettings;
use ablate_report::stats::power::{half_width, seeds_for_half_width, SeedsNeeded};
use ablate_report::stats::{student_t_quantile, welch_t_test, Sample};
use anyhow::Context;

use crate::cli::SweepArgs;
use crate::config::seeds::Precision;
use crate::config::{load_experiment, ConfigError, Experiment, TrialFile};
use crate::results::records::{files, read_json_opt, FinalJson, TrialState, TrialStatus};

/// Confidence level of the intervals the rule measures.
const LEVEL: f64 = 0.95;

/// The experiment with the command line's precision flags applied.
pub fn load_experiment_with_flags(args: &SweepArgs) -> anyhow::Result<Experiment> {
    let mut experiment = load_experiment(&args.file, &args.overrides)?;
    let plan = crate::config::seeds::apply_flags(
        experiment.seed_plan(),
        args.ci_half_width,
        args.seeds_start,
        args.seeds_max,
    )?;
    if &plan != experiment.seed_plan() {
        experiment.set_seed_plan(plan);
    }
    Ok(experiment)
}

/// Why a variant gets more seeds or not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// Its interval is within the target.
    Precise,
    /// It has `max` seeds.
    AtMax,
    /// Its interval is wider than the target (or there is none yet): more seeds.
    TooWide,
    /// The baseline: it runs every seed a variant runs.
    Baseline,
}

/// One variant's decision after a round.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The variant's label.
    pub label: String,
    /// Its seeds this round.
    pub seeds: usize,
    /// Seeds (pairs, or the variant's for Welch) the interval used.
    pub used: usize,
    /// The half-width of its interval, in points (`None`: fewer than two seeds).
    pub half_width: Option<f64>,
    /// Its seeds next round.
    pub next: usize,
    /// Why.
    pub reason: Reason,
}

/// The decisions of one round: the next seed counts, one per variant.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    /// Each variant's seed count for the next round.
    pub next: Vec<usize>,
    /// The decisions, in variant order.
    pub decisions: Vec<Decision>,
}

impl Round {
    /// Whether no variant gets more seeds.
    pub fn done(&self, current: &[usize]) -> bool {
        self.next == current
    }
}

/// Each variant's completed seeds and final accuracies, and whether any trial of the
/// current assignment has not ended (pending, running, interrupted).
type Results = (Vec<BTreeMap<u64, f64>>, bool);

fn read_results(experiment: &Experiment, dir: &Path) -> anyhow::Result<Results> {
    let index: HashMap<&str, usize> = experiment
        .variants()
        .iter()
        .enumerate()
        .map(|(i, v)| (v.variant_id.as_str(), i))
        .collect();
    let mut finals = vec![BTreeMap::new(); experiment.variants().len()];
    let mut unfinished = false;
    for t in experiment.trials() {
        let d = dir.join("trials").join(t.id.as_str());
        let status: Option<TrialStatus> = read_json_opt(&d.join(files::STATUS))
            .with_context(|| format!("cannot read the status of trial {}", t.id))?;
        match status.map(|s| s.status) {
            Some(TrialState::Completed) => {
                let f: Option<FinalJson> = read_json_opt(&d.join(files::FINAL))
                    .with_context(|| format!("cannot read the results of trial {}", t.id))?;
                if let Some(acc) = f.and_then(|f| f.final_test_acc).filter(|a| a.is_finite()) {
                    finals[index[t.variant_id.as_str()]].insert(t.seed, acc);
                }
            }
            Some(TrialState::Failed | TrialState::Diverged) => {}
            _ => unfinished = true,
        }
    }
    Ok((finals, unfinished))
}

/// The interval's half-width in points, the seeds it used, and the spread (points) that
/// plans the next round (for Welch, `√2` times the pooled spread: the difference of two
/// means of `n` seeds each).
fn precision_of(
    v: &BTreeMap<u64, f64>,
    base: &BTreeMap<u64, f64>,
    paired: bool,
) -> (Option<f64>, usize, Option<f64>) {
    if paired {
        let diffs: Vec<f64> = v
            .iter()
            .filter_map(|(s, a)| base.get(s).map(|b| (a - b) * 100.0))
            .collect();
        let s = Sample::of(&diffs);
        return (
            half_width(s.std, s.n, LEVEL),
            s.n,
            (s.n >= 2).then_some(s.std),
        );
    }
    let a = Sample::of(&v.values().copied().collect::<Vec<_>>());
    let b = Sample::of(&base.values().copied().collect::<Vec<_>>());
    let Some(t) = welch_t_test(&a, &b) else {
        return (None, a.n, None);
    };
    let se = (a.std * a.std / a.n as f64 + b.std * b.std / b.n as f64).sqrt() * 100.0;
    let pooled = (((a.n - 1) as f64 * a.std * a.std + (b.n - 1) as f64 * b.std * b.std)
        / (a.n + b.n - 2) as f64)
        .sqrt()
        * 100.0;
    let hw = student_t_quantile(0.5 + LEVEL / 2.0, t.df).map(|q| q * se);
    (hw, a.n, Some(pooled * std::f64::consts::SQRT_2))
}

/// The next seed count of a variant with `k` seeds whose interval is too wide.
fn grow(k: usize, used: usize, spread: Option<f64>, p: &Precision) -> usize {
    let max = p.max as usize;
    let missing = match spread.filter(|s| *s > 0.0) {
        Some(sd) => match seeds_for_half_width(sd, p.ci_half_width, LEVEL, max.max(2)) {
            Some(SeedsNeeded::Exactly(n)) => n.saturating_sub(used),
            _ => max,
        },
        None => 1,
    };
    (k + missing.clamp(1, k.max(1))).min(max)
}

/// The data stream of each variant, as the report reads it from the trial's configuration
/// (equal keys: the same seed gives the same batches, so the seeds pair).
fn stream_keys(experiment: &Experiment) -> Result<Vec<Option<String>>, ConfigError> {
    let variants = experiment.variants();
    let mut stream: Vec<Option<String>> = vec![None; variants.len()];
    for t in experiment.trials() {
        let Some(i) = variants.iter().position(|v| v.variant_id == t.variant_id) else {
            continue;
        };
        if stream[i].is_none() {
            let text = TrialFile::new(experiment.name(), &t).to_toml_string()?;
            stream[i] = TrialSettings::from_config_toml(&text).map(|s| s.stream_key);
        }
    }
    Ok(stream)
}

/// The decisions after the round `experiment.assigned()` (every trial of it ended).
pub fn decide(experiment: &Experiment, dir: &Path, p: &Precision) -> anyhow::Result<Round> {
    let variants = experiment.variants();
    let current: Vec<usize> = match experiment.assigned() {
        Some(c) => c.to_vec(),
        None => vec![p.start as usize; variants.len()],
    };
    let (finals, _) = read_results(experiment, dir)?;
    let Some((b, _)) = choose_baseline(
        variants
            .iter()
            .map(|v| (v.config.model.attention.as_str(), v.label.as_str())),
    ) else {
        return Ok(Round {
            next: current,
            decisions: Vec::new(),
        });
    };
    let stream = stream_keys(experiment)?;
    let alone = variants.len() == 1;
    let mut decisions = Vec::with_capacity(variants.len());
    let mut next = current.clone();
    for (i, v) in variants.iter().enumerate() {
        let k = current[i];
        if i == b && !alone {
            decisions.push(Decision {
                label: v.label.clone(),
                seeds: k,
                used: finals[i].len(),
                half_width: None,
                next: k,
                reason: Reason::Baseline,
            });
            continue;
        }
        let (hw, used, spread) = if alone {
            // No comparison: the target applies to the variant's own mean.
            let s = Sample::of(&finals[i].values().map(|a| a * 100.0).collect::<Vec<_>>());
            (
                half_width(s.std, s.n, LEVEL),
                s.n,
                (s.n >= 2).then_some(s.std),
            )
        } else {
            let paired = stream[i].is_some() && stream[i] == stream[b];
            precision_of(&finals[i], &finals[b], paired)
        };
        let (n, reason) = if hw.is_some_and(|h| h <= p.ci_half_width) {
            (k, Reason::Precise)
        } else if k >= p.max as usize {
            (k, Reason::AtMax)
        } else {
            (grow(k, used, spread, p), Reason::TooWide)
        };
        next[i] = n;
        decisions.push(Decision {
            label: v.label.clone(),
            seeds: k,
            used,
            half_width: hw,
            next: n,
            reason,
        });
    }
    if !alone {
        next[b] = next
            .iter()
            .copied()
            .max()
            .unwrap_or(current[b])
            .max(current[b]);
        decisions[b].next = next[b];
    }
    Ok(Round { next, decisions })
}

/// Replays the rounds whose trials have all ended, so a resumed sweep continues at the
/// first round with work left (or at the end). Sets `experiment`'s assignment.
pub fn resume(experiment: &mut Experiment, dir: &Path, p: &Precision) -> anyhow::Result<()> {
    experiment.set_assigned(vec![p.start as usize; experiment.variants().len()]);
    loop {
        let (_, unfinished) = read_results(experiment, dir)?;
        if unfinished {
            return Ok(());
        }
        let round = decide(experiment, dir, p)?;
        let current = experiment
            .assigned()
            .map(<[usize]>::to_vec)
            .unwrap_or_default();
        if round.done(&current) {
            return Ok(());
        }
        experiment.set_assigned(round.next);
    }
}

/// One line per variant: its interval against the target and what the round decided.
pub fn describe(round: &Round, p: &Precision) -> Vec<String> {
    round
        .decisions
        .iter()
        .map(|d| {
            let hw = d
                .half_width
                .map_or("no interval yet".to_string(), |h| format!("±{h:.2} pts"));
            let what = match d.reason {
                Reason::Baseline => {
                    format!(
                        "the reference: runs {} seeds (every seed a variant runs)",
                        d.next
                    )
                }
                Reason::Precise => format!("{hw} over {} seeds: precise", d.used),
                Reason::AtMax => format!("{hw} over {} seeds: at the maximum ({})", d.used, p.max),
                Reason::TooWide => format!(
                    "{hw} over {} seeds, wider than ±{} pts: {} -> {} seeds",
                    d.used, p.ci_half_width, d.seeds, d.next
                ),
            };
            format!("{}: {what}", d.label)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::records::write_json_atomic;

    /// Writes a completed trial with final accuracy `acc` (or a failed one for `None`).
    fn record(dir: &Path, id: &str, acc: Option<f64>) {
        let d = dir.join("trials").join(id);
        std::fs::create_dir_all(&d).unwrap();
        let mut status = TrialStatus::pending();
        status.status = if acc.is_some() {
            TrialState::Completed
        } else {
            TrialState::Failed
        };
        write_json_atomic(&d.join(files::STATUS), &status).unwrap();
        if let Some(acc) = acc {
            let f = FinalJson {
                outcome: TrialState::Completed,
                epochs_done: 1,
                final_test_acc: Some(acc),
                final_test_loss: Some(1.0),
                best_test_acc: Some(acc),
                params: 1,
                macs: 1,
                classes: vec![],
                error: None,
            };
            write_json_atomic(&d.join(files::FINAL), &f).unwrap();
        }
    }

    fn experiment(extra_grid: &str) -> Experiment {
        let text = format!(
            "name = \"rounds\"\n[seeds]\nstart = 3\nmax = 8\nci_half_width = 0.3\n\
             [data]\ndataset = \"synthetic\"\n[train]\nepochs = 1\n\
             [[grid]]\n\"model.attention\" = [\"none\", \"se\", \"eca\"]\n{extra_grid}"
        );
        Experiment::parse(Path::new("rounds.toml"), &text, &[]).unwrap()
    }

    /// Only the imprecise variant gets seeds; the baseline follows it; a precise one stops.
    #[test]
    fn only_imprecise_variants_get_seeds() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = experiment("");
        let p = e.seed_plan().precision().unwrap();
        resume(&mut e, dir.path(), &p).unwrap();
        assert_eq!(e.assigned(), Some(&[3, 3, 3][..]));
        let base = [0.700, 0.712, 0.705];
        // SE: the same +1 point on every seed (zero spread: precise); ECA: differences of
        // 0, +2, -1 points (sd 1.5: far from +-0.3).
        let se = [1.0, 1.0, 1.0];
        let eca = [0.0, 2.0, -1.0];
        for t in e.trials() {
            let s = t.seed as usize;
            let acc = match t.config.model.attention.as_str() {
                "none" => base[s],
                "se" => base[s] + se[s] / 100.0,
                _ => base[s] + eca[s] / 100.0,
            };
            record(dir.path(), t.id.as_str(), Some(acc));
        }
        let round = decide(&e, dir.path(), &p).unwrap();
        let reasons: Vec<Reason> = round.decisions.iter().map(|d| d.reason).collect();
        assert_eq!(
            reasons,
            [Reason::Baseline, Reason::Precise, Reason::TooWide]
        );
        // ECA doubles (the spread asks for far more), the baseline follows, SE stays.
        assert_eq!(round.next, vec![6, 3, 6]);
        assert!(!round.done(&[3, 3, 3]));
        let lines = describe(&round, &p);
        assert!(lines[2].contains("3 -> 6 seeds"), "{lines:?}");
        // The next round's trials: ECA and the baseline get seeds 3..6, SE none.
        e.set_assigned(round.next.clone());
        let new: Vec<(String, u64)> = e
            .trials()
            .into_iter()
            .filter(|t| t.seed >= 3)
            .map(|t| (t.variant.clone(), t.seed))
            .collect();
        assert_eq!(new.len(), 6);
        assert!(new.iter().all(|(v, _)| v != "attention=se"), "{new:?}");
        // Resuming replays the finished round and stops at the unfinished one.
        let mut again = experiment("");
        resume(&mut again, dir.path(), &p).unwrap();
        assert_eq!(again.assigned(), Some(&[6, 3, 6][..]));
    }

    /// A failed trial counts as ended: the round is decided on the completed ones.
    #[test]
    fn failed_trials_do_not_block_a_round() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = experiment("");
        let p = e.seed_plan().precision().unwrap();
        e.set_assigned(vec![3, 3, 3]);
        for t in e.trials() {
            let failed = t.seed == 2 && t.config.model.attention.as_str() == "eca";
            record(dir.path(), t.id.as_str(), (!failed).then_some(0.7));
        }
        let mut again = experiment("");
        resume(&mut again, dir.path(), &p).unwrap();
        // ECA has 2 identical results (no spread): precise; nothing grows.
        assert_eq!(again.assigned(), Some(&[3, 3, 3][..]));
    }

    fn p() -> Precision {
        Precision {
            start: 3,
            max: 20,
            ci_half_width: 0.3,
        }
    }

    #[test]
    fn growth_is_at_least_one_and_at_most_double() {
        // sd 1 point needs 46 pairs for +-0.3 (scripts/stats-reference.py power): capped at
        // doubling.
        assert_eq!(grow(3, 3, Some(1.0), &p()), 6);
        // sd 0.2 needs 5: two more.
        assert_eq!(grow(3, 3, Some(0.2), &p()), 5);
        // No spread known yet: one more.
        assert_eq!(grow(3, 1, None, &p()), 4);
        // Never beyond the maximum.
        assert_eq!(grow(15, 15, Some(1.0), &p()), 20);
    }

    #[test]
    fn paired_precision_uses_common_seeds() {
        let base: BTreeMap<u64, f64> = [(0, 0.50), (1, 0.52), (2, 0.51)].into();
        let v: BTreeMap<u64, f64> = [(0, 0.51), (1, 0.53), (2, 0.52)].into();
        // Identical differences of 1 point: zero spread, zero width.
        let (hw, used, sd) = precision_of(&v, &base, true);
        assert_eq!(used, 3);
        assert!(hw.unwrap() < 1e-9, "{hw:?}");
        assert!(sd.unwrap() < 1e-9);
        // Unpaired: Welch's interval of the difference of means is wide.
        let (hw, used, _) = precision_of(&v, &base, false);
        assert_eq!(used, 3);
        assert!(hw.unwrap() > 1.0, "{hw:?}");
    }
}
