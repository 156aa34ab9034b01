//! "Where the noise comes from": for a sweep whose variants vary one source of randomness at
//! a time (`train.seed_varies = "init" | "order" | "sample"`, docs/experiments.md), the
//! seed-to-seed standard deviation of the final test accuracy due to each source, with a
//! chi-square interval, its share of the variance, and the seeds a comparison on independent
//! seeds would need given the total spread. Variants that differ only in `seed_varies` (and
//! `fixed_seed`) form one group.
//!
//! With independent sources the variances add: `σ²_all ≈ σ²_init + σ²_order + σ²_sample`
//! (Bouthillier et al., 2021, section 3); a variant with `seed_varies = "all"` measures the
//! left side directly, otherwise the sum estimates it.

use std::collections::HashMap;

use ablate_schema::TrialState;

use crate::analysis::{Analysis, Variant, CONFIDENCE};
use crate::load::Trial;
use crate::settings::{TrialSettings, ALL_SOURCES};
use crate::stats::power::{seeds_needed, Design, SeedsNeeded};
use crate::stats::variance::sd_interval;
use crate::tables::{html_escape, md_table};

/// One source (one variant) of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    /// `init`, `order`, `sample` or `all`.
    pub source: String,
    /// The variant's label.
    pub variant: String,
    /// Completed seeds.
    pub n: usize,
    /// Standard deviation of the final test accuracy, in points.
    pub sd_points: f64,
    /// Its 95% interval.
    pub sd_ci: Option<(f64, f64)>,
}

/// Variants that differ only in which source their seeds varied.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseGroup {
    /// The configuration they share, as a label.
    pub label: String,
    /// One row per source, in the order `init`, `order`, `sample`, `all`.
    pub rows: Vec<SourceRow>,
    /// The total spread in points: measured (`all`) or the root of the summed variances.
    pub total_sd: Option<f64>,
    /// Whether `total_sd` was measured by an `all` variant.
    pub total_measured: bool,
    /// Seeds per variant to detect the effect with 80% power at α = 0.05 on independent seeds.
    pub seeds_for_effect: Option<SeedsNeeded>,
}

/// The section: one table per group.
#[derive(Debug, Clone, PartialEq)]
pub struct Noise {
    /// The groups with at least one single-source variant.
    pub groups: Vec<NoiseGroup>,
    /// The difference of interest, in points.
    pub effect_points: f64,
}

const ORDER: [&str; 4] = ["init", "order", "sample", ALL_SOURCES];

fn source_of<'a>(
    v: &Variant,
    trials: &[Trial],
    settings: &'a HashMap<String, TrialSettings>,
) -> Option<&'a TrialSettings> {
    trials
        .iter()
        .filter(|t| t.variant_id == v.id && t.status == TrialState::Completed)
        .find_map(|t| settings.get(&t.trial_id))
}

/// The label without its `seed_varies=` / `fixed_seed=` tokens.
fn group_label(label: &str) -> String {
    let kept: Vec<&str> = label
        .split_whitespace()
        .filter(|t| !t.starts_with("seed_varies=") && !t.starts_with("fixed_seed="))
        .collect();
    if kept.is_empty() {
        "the base configuration".into()
    } else {
        kept.join(" ")
    }
}

/// The section, or `None` when no completed variant varies a single source.
pub fn analyze_noise(
    a: &Analysis,
    trials: &[Trial],
    settings: &HashMap<String, TrialSettings>,
    effect_points: f64,
) -> Option<Noise> {
    let mut groups: Vec<(String, NoiseGroup)> = Vec::new();
    for v in a.variants.iter().filter(|v| v.completed() >= 2) {
        let Some(s) = source_of(v, trials, settings) else {
            continue;
        };
        let row = SourceRow {
            source: s.seed_varies.clone(),
            variant: v.label.clone(),
            n: v.final_acc.n,
            sd_points: v.final_acc.std * 100.0,
            sd_ci: sd_interval(v.final_acc.std * 100.0, v.final_acc.n, CONFIDENCE),
        };
        match groups.iter_mut().find(|(k, _)| *k == s.source_group) {
            Some((_, g)) => g.rows.push(row),
            None => groups.push((
                s.source_group.clone(),
                NoiseGroup {
                    label: group_label(&v.label),
                    rows: vec![row],
                    total_sd: None,
                    total_measured: false,
                    seeds_for_effect: None,
                },
            )),
        }
    }
    let mut out: Vec<NoiseGroup> = groups
        .into_iter()
        .map(|(_, g)| g)
        .filter(|g| g.rows.iter().any(|r| r.source != ALL_SOURCES))
        .collect();
    if out.is_empty() {
        return None;
    }
    for g in &mut out {
        g.rows
            .sort_by_key(|r| ORDER.iter().position(|o| *o == r.source).unwrap_or(9));
        let all = g.rows.iter().find(|r| r.source == ALL_SOURCES);
        g.total_measured = all.is_some();
        g.total_sd = match all {
            Some(r) => Some(r.sd_points),
            None => Some(
                g.rows
                    .iter()
                    .map(|r| r.sd_points * r.sd_points)
                    .sum::<f64>()
                    .sqrt(),
            ),
        };
        g.seeds_for_effect = g.total_sd.filter(|s| *s > 0.0).and_then(|sd| {
            let design = Design::TwoSample { n1: 2, n2: 2 };
            seeds_needed(effect_points / sd, design, 0.05, 0.8, 100_000)
        });
    }
    Some(Noise {
        groups: out,
        effect_points,
    })
}

impl NoiseGroup {
    fn single_variance(&self) -> f64 {
        self.rows
            .iter()
            .filter(|r| r.source != ALL_SOURCES)
            .map(|r| r.sd_points * r.sd_points)
            .sum()
    }

    fn headers() -> [&'static str; 6] {
        [
            "Source",
            "Variant",
            "Seeds",
            "SD (pts)",
            "95% CI of SD",
            "Share of variance",
        ]
    }

    fn rows(&self) -> Vec<Vec<String>> {
        let sum = self.single_variance();
        self.rows
            .iter()
            .map(|r| {
                let share = if r.source == ALL_SOURCES || sum <= 0.0 || sum.is_nan() {
                    "—".to_string()
                } else {
                    format!("{:.0}%", 100.0 * r.sd_points * r.sd_points / sum)
                };
                vec![
                    describe(&r.source).to_string(),
                    r.variant.clone(),
                    r.n.to_string(),
                    format!("{:.2}", r.sd_points),
                    r.sd_ci
                        .map_or("—".into(), |(lo, hi)| format!("[{lo:.2}, {hi:.2}]")),
                    share,
                ]
            })
            .collect()
    }

    fn summary(&self, effect: f64) -> String {
        let dominant = self
            .rows
            .iter()
            .filter(|r| r.source != ALL_SOURCES)
            .max_by(|a, b| a.sd_points.total_cmp(&b.sd_points));
        let mut s = String::new();
        if let Some(d) = dominant {
            s.push_str(&format!(
                "The largest source is {} (SD {:.2} points).",
                describe(&d.source),
                d.sd_points
            ));
        }
        if let Some(total) = self.total_sd {
            let singles = self.single_variance().sqrt();
            if self.total_measured {
                s.push_str(&format!(
                    " With every source varying the SD is {total:.2} points (the single sources' variances add up to an SD of {singles:.2})."
                ));
            } else {
                s.push_str(&format!(
                    " Together (variances added) they give an SD of about {total:.2} points."
                ));
            }
            if let Some(n) = self.seeds_for_effect {
                s.push_str(&format!(
                    " At that spread, telling apart two variants {effect} points apart on independent seeds (Welch, α = 0.05, 80% power) takes {n} seeds per variant; a paired design (same seeds in every variant) cancels the noise the variants share and needs fewer."
                ));
            }
        }
        s
    }

    fn title(&self) -> String {
        format!("`{}`", self.label)
    }
}

fn describe(source: &str) -> &str {
    match source {
        "init" => "weight init",
        "order" => "data order, augmentation and dropout",
        "sample" => "training-data sample",
        ALL_SOURCES => "all sources",
        other => other,
    }
}

const NOTES: &str = "Each row is a variant whose seeds varied one source of randomness (`train.seed_varies`), the others held at `train.fixed_seed`: SD is the standard deviation of its final test accuracy over seeds, with a chi-square 95% interval; share: its variance over the sum of the single sources' variances. Few seeds give wide intervals: a share is a rough guide until each source has about 10 seeds.";

impl Noise {
    /// The section in Markdown.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        for g in &self.groups {
            md.push_str(&format!("### {}\n\n", g.title()));
            md.push_str(&md_table(&NoiseGroup::headers(), &g.rows()));
            md.push('\n');
            md.push_str(&g.summary(self.effect_points));
            md.push_str("\n\n");
        }
        md.push_str(NOTES);
        md.push('\n');
        md
    }

    /// The section in HTML.
    pub fn html(&self) -> String {
        let mut h = String::new();
        let headers: Vec<String> = NoiseGroup::headers()
            .iter()
            .map(|s| s.to_string())
            .collect();
        for g in &self.groups {
            h.push_str(&format!("<h3>{}</h3>\n", html_escape(&g.title())));
            h.push_str(&crate::page::html_table(&headers, &g.rows(), 2));
            h.push_str(&format!(
                "<p>{}</p>\n",
                html_escape(&g.summary(self.effect_points))
            ));
        }
        h.push_str(&format!("<p class=\"notes\">{}</p>\n", html_escape(NOTES)));
        h
    }
}
