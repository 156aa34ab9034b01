//! What a comparison of a variant with the baseline is: how comparisons are judged
//! ([`CompareOptions`]: `ablate report --adjust --alpha --effect`), which analysis is primary
//! ([`Method`]), whether the seeds pair ([`Pairing`]), the verdict ([`Verdict`]) and every
//! figure of one comparison ([`Comparison`]). `crate::compare` computes them, `crate::verdicts`
//! puts them in words.

use crate::stats::adjust::Adjust;
use crate::stats::bootstrap::Estimate;
use crate::stats::power::SeedsNeeded;
use crate::stats::TTest;

/// How the comparisons are judged (`ablate report --adjust --alpha --effect`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompareOptions {
    /// Multiple-comparison adjustment of the p-values.
    pub adjust: Adjust,
    /// Level of the verdicts (family-wise with Holm, false discovery rate with BH).
    pub alpha: f64,
    /// The difference the user wants to be able to detect, in points of test accuracy.
    pub effect_points: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            adjust: Adjust::Holm,
            alpha: 0.05,
            effect_points: 0.5,
        }
    }
}

/// Which test a comparison's verdict rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Paired t-test over the seeds both completed.
    Paired,
    /// Welch's unequal-variance t-test of the two samples.
    Welch,
}

impl Method {
    /// `paired` or `Welch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Paired => "paired",
            Method::Welch => "Welch",
        }
    }
}

/// Whether the seeds of a variant and the baseline are paired by design.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pairing {
    /// Same seeds, same data stream: `pairs` seeds in common; `unpaired` completed seeds of
    /// either side that the other lacks (left out of the paired analysis).
    Holds { pairs: usize, unpaired: usize },
    /// Fewer than two seeds completed by both.
    TooFewCommonSeeds { common: usize },
    /// The same seed does not give the same data stream (different `[data]` settings, batch
    /// size, random streams or seed source), or a configuration could not be read.
    DifferentData,
}

/// The verdict in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Better than the baseline at the chosen level, after adjustment.
    Better,
    /// Worse than the baseline at the chosen level, after adjustment.
    Worse,
    /// Not distinguishable from the baseline at the chosen level.
    NoDetectableDifference,
    /// No test possible (fewer than two seeds on a side, or no spread at all).
    NotTestable,
}

impl Verdict {
    /// The words of the tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Better => "better",
            Verdict::Worse => "worse",
            Verdict::NoDetectableDifference => "no detectable difference",
            Verdict::NotTestable => "not testable",
        }
    }
}

/// One variant against the baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Whether the seeds pair, and why not.
    pub pairing: Pairing,
    /// The primary analysis.
    pub method: Method,
    /// Seeds the primary analysis uses: pairs, or the variant's completed seeds (Welch).
    pub n: usize,
    /// The baseline's seeds in a Welch comparison (equal to `n` when paired).
    pub n_baseline: usize,
    /// The difference in points: the mean per-seed difference (paired) or the difference of
    /// the means (Welch).
    pub diff_points: f64,
    /// Its 95% confidence interval (t distribution), per comparison.
    pub ci_points: Option<(f64, f64)>,
    /// The primary test (raw p-value).
    pub test: Option<TTest>,
    /// The p-value adjusted across the report's comparisons.
    pub p_adjusted: Option<f64>,
    /// The verdict at the chosen level, after adjustment.
    pub verdict: Verdict,
    /// The seed-to-seed spread the power figures use, in points: the standard deviation of
    /// the paired differences, or the pooled standard deviation (Welch).
    pub sd_points: Option<f64>,
    /// The per-comparison level of the power figures (`Adjust::single_level`).
    pub power_level: f64,
    /// The smallest difference these seeds detect with 80% power, in points.
    pub detectable_points: Option<f64>,
    /// Seeds (pairs, or per variant) needed to detect `effect_points` with 80% power.
    pub seeds_for_effect: Option<SeedsNeeded>,
    /// P(variant > baseline) with its bootstrap interval.
    pub prob_improvement: Option<Estimate>,
    /// The per-seed differences in points (paired comparisons; empty for Welch).
    pub seed_diffs: Vec<f64>,
}

impl Comparison {
    /// Seeds to add before `effect_points` is detectable (0 when already decided or enough).
    pub fn more_seeds(&self) -> Option<SeedsNeeded> {
        if matches!(self.verdict, Verdict::Better | Verdict::Worse) {
            return Some(SeedsNeeded::Exactly(0));
        }
        match self.seeds_for_effect? {
            SeedsNeeded::Exactly(k) => Some(SeedsNeeded::Exactly(k.saturating_sub(self.n))),
            SeedsNeeded::MoreThan(k) => Some(SeedsNeeded::MoreThan(k.saturating_sub(self.n))),
        }
    }

    /// Whether these seeds cannot detect `effect` points with 80% power.
    pub fn underpowered(&self, effect: f64) -> bool {
        match self.detectable_points {
            Some(d) => d > effect,
            None => true,
        }
    }
}
