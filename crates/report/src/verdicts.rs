//! The verdicts in words: the headline lines (one per variant, plus the best variant and
//! the pairing), the comparisons table, and its notes. Text uses backticks for labels, which
//! the HTML page turns into `<code>`.

use crate::analysis::{Analysis, Variant};
use crate::comparison::{Comparison, Method, Pairing, Verdict};
use crate::stats::adjust::Adjust;
use crate::stats::bootstrap::Estimate;
use crate::tables::{adjusted_header, p_value};

/// A difference in points with its sign.
fn pts(v: f64) -> String {
    format!("{v:+.2}")
}

fn interval(ci: Option<(f64, f64)>, f: impl Fn(f64) -> String) -> String {
    ci.map(|(lo, hi)| format!("[{}, {}]", f(lo), f(hi)))
        .unwrap_or_else(|| "—".into())
}

/// `0.67 [0.33, 1.00]`.
pub fn estimate(e: Option<Estimate>, scale: f64) -> String {
    match e {
        Some(e) => {
            let f = |x: f64| format!("{:.2}", x * scale);
            match e.ci {
                Some(ci) => format!("{} {}", f(e.value), interval(Some(ci), f)),
                None => f(e.value),
            }
        }
        None => "—".into(),
    }
}

/// `paired over 5 seeds` or `Welch, 3 vs 4 seeds`.
pub fn method_text(c: &Comparison) -> String {
    match c.method {
        Method::Paired => format!("paired over {} seed{}", c.n, plural(c.n)),
        Method::Welch => format!("Welch, {} vs {} seeds", c.n, c.n_baseline),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Column headers of the comparisons table.
pub fn comparison_headers(a: &Analysis) -> Vec<String> {
    let e = a.options.effect_points;
    vec![
        "Variant".into(),
        "Analysis".into(),
        "Δ (pts)".into(),
        "95% CI (pts)".into(),
        "p".into(),
        adjusted_header(a.options.adjust),
        "Verdict".into(),
        "P(> baseline)".into(),
        "Detectable Δ (pts)".into(),
        format!("Seeds for {e} pts"),
        "IQM (%)".into(),
    ]
}

/// One row per variant with a comparison, in the variant table's order.
pub fn comparison_rows(a: &Analysis) -> Vec<Vec<String>> {
    a.variants
        .iter()
        .filter_map(|v| {
            let c = v.comparison.as_ref()?;
            Some(vec![
                v.label.clone(),
                method_text(c),
                pts(c.diff_points),
                interval(c.ci_points, pts),
                c.test.map_or("n/a".into(), |t| p_value(t.p)),
                c.p_adjusted.map_or("n/a".into(), p_value),
                c.verdict.as_str().into(),
                estimate(c.prob_improvement, 1.0),
                c.detectable_points
                    .map_or("—".into(), |d| format!("{d:.2}")),
                match (c.seeds_for_effect, c.more_seeds()) {
                    (Some(n), Some(m)) => format!("{n} (+{m})"),
                    _ => "—".into(),
                },
                estimate(v.iqm, 100.0),
            ])
        })
        .collect()
}

/// The notes under the comparisons table.
pub fn comparison_notes(a: &Analysis) -> String {
    let o = a.options;
    format!(
        "Analysis: the primary test, paired over the seeds both completed when the design pairs them (see Pairing above), Welch's otherwise. \
Δ: the mean per-seed difference (paired) or the difference of the means (Welch), in points, with its 95% confidence interval (t distribution, per comparison). \
p: the primary test's two-sided p-value; {adj}: adjusted across the report's {m} comparison{s} ({how}). \
Verdict at α = {alpha} after the adjustment: better, worse, or no detectable difference. \
P(> baseline): the share of paired seeds on which the variant wins (ties count ½; Welch rows: over all pairs of seeds), with a 95% percentile bootstrap interval (10,000 resamples, fixed seed); Bouthillier et al. (2021) call an improvement meaningful when the lower end is above 0.75. \
Detectable Δ: the smallest difference these seeds detect with 80% power at level {level} (α / m, the level one real difference must reach after the adjustment), from the observed seed-to-seed spread. \
Seeds for {e} pts: the seeds (pairs, or per variant for Welch) needed to detect a {e}-point difference with 80% power, and in brackets how many more that is (0 once decided). \
IQM: interquartile mean of the final test accuracy (rliable's aggregate) with its bootstrap interval.",
        adj = adjusted_header(o.adjust),
        m = a.comparisons,
        s = plural(a.comparisons),
        how = match o.adjust {
            Adjust::Holm => "Holm's step-down method, family-wise error rate",
            Adjust::BenjaminiHochberg => "Benjamini-Hochberg, false discovery rate",
            Adjust::None => "no adjustment",
        },
        alpha = o.alpha,
        level = fmt_level(o.adjust.single_level(o.alpha, a.comparisons)),
        e = o.effect_points,
    )
}

fn fmt_level(l: f64) -> String {
    let s = format!("{l:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The headline's verdict sentence for one variant.
pub fn variant_line(v: &Variant, a: &Analysis) -> Option<String> {
    let c = v.comparison.as_ref()?;
    let o = a.options;
    if c.verdict == Verdict::NotTestable {
        return Some(format!(
            "`{}`: not testable ({}; a test needs 2 seeds on each side, with some spread).",
            v.label,
            method_text(c)
        ));
    }
    let mut s = format!(
        "`{}`: {} ({} = {}; raw p = {}, {}): {} points, 95% CI {}",
        v.label,
        c.verdict.as_str(),
        adjusted_header(o.adjust),
        c.p_adjusted.map_or("n/a".into(), p_value),
        c.test.map_or("n/a".into(), |t| p_value(t.p)),
        method_text(c),
        pts(c.diff_points),
        interval(c.ci_points, pts),
    );
    if let Some(e) = c.prob_improvement {
        s.push_str(&format!(", P(> baseline) = {}", estimate(Some(e), 1.0)));
    }
    s.push_str(". ");
    let e = o.effect_points;
    let det = c
        .detectable_points
        .map(|d| format!("{d:.2} points"))
        .unwrap_or_else(|| "no difference (no spread to estimate)".into());
    match c.verdict {
        Verdict::Better | Verdict::Worse => s.push_str(&format!(
            "Decided with {} seed{}; detectable with them: {det} (80% power).",
            c.n,
            plural(c.n)
        )),
        _ => {
            if c.underpowered(e) {
                s.push_str(&format!(
                    "Underpowered: {} seed{} detect {det} or more (80% power)",
                    c.n,
                    plural(c.n)
                ));
            } else {
                s.push_str(&format!(
                    "{} seed{} detect {det} or more (80% power), so a {e}-point difference would likely have shown: no more seeds needed at that effect",
                    c.n,
                    plural(c.n)
                ));
            }
            match (c.seeds_for_effect, c.more_seeds()) {
                (Some(n), Some(m)) if c.underpowered(e) => s.push_str(&format!(
                    "; detecting {e} points would take {n} seeds ({m} more)."
                )),
                _ => s.push('.'),
            }
        }
    }
    Some(s)
}

/// The headline's sentence on the best variant.
pub fn best_line(a: &Analysis) -> String {
    let o = a.options;
    let rule = format!(
        "{}, α = {}, {} comparison{}",
        o.adjust.name(),
        o.alpha,
        a.comparisons,
        plural(a.comparisons)
    );
    if let Some(b) = a.best() {
        let diff = b.comparison.as_ref().map_or(0.0, |c| c.diff_points);
        return format!(
            "`{}`: final test accuracy {:.2}% over {} seeds, {} points against the baseline, better after adjustment ({rule}).",
            b.label,
            b.final_acc.mean * 100.0,
            b.final_acc.n,
            pts(diff)
        );
    }
    if a.comparisons == 0 {
        return "none: no comparison with the baseline has a test yet (a test needs 2 completed seeds on each side).".into();
    }
    let mut s = format!("none: no variant is distinguishable from the baseline yet ({rule})");
    if let Some(t) = a.top().filter(|t| !t.is_baseline) {
        if let Some(c) = &t.comparison {
            s.push_str(&format!(
                "; the highest mean is `{}` ({} points, {} = {})",
                t.label,
                pts(c.diff_points),
                adjusted_header(o.adjust),
                c.p_adjusted.map_or("n/a".into(), p_value)
            ));
        }
    }
    let open: Vec<&Comparison> = a
        .variants
        .iter()
        .filter_map(|v| v.comparison.as_ref())
        .filter(|c| c.verdict == Verdict::NoDetectableDifference)
        .collect();
    let under = open
        .iter()
        .filter(|c| c.underpowered(o.effect_points))
        .count();
    if under > 0 {
        s.push_str(&format!(
            ". The sweep is underpowered: {under} of the {} undecided comparison{} cannot detect a {}-point difference with the seeds {}",
            open.len(),
            plural(open.len()),
            o.effect_points,
            if open.len() == 1 { "it has" } else { "they have" }
        ));
    }
    s.push('.');
    s
}

/// The headline's sentence on the pairing of the comparisons.
pub fn pairing_line(a: &Analysis) -> Option<String> {
    let cs: Vec<(&Variant, &Comparison)> = a
        .variants
        .iter()
        .filter_map(|v| Some((v, v.comparison.as_ref()?)))
        .collect();
    if cs.is_empty() {
        return None;
    }
    let paired = cs
        .iter()
        .filter(|(_, c)| c.method == Method::Paired)
        .count();
    let left_out: usize = cs
        .iter()
        .map(|(_, c)| match c.pairing {
            Pairing::Holds { unpaired, .. } => unpaired,
            _ => 0,
        })
        .sum();
    let why = "the same seed gives the same data order, crops, flips and jitter in every variant with the same data settings";
    let mut s = if paired == cs.len() {
        format!("every comparison is paired ({why}), so the paired t-test over the seeds both sides completed is the primary analysis")
    } else if paired == 0 {
        "no comparison is paired, so Welch's test is the primary analysis: ".to_string()
    } else {
        format!("{paired} of {} comparisons are paired ({why}) and use the paired t-test; Welch's test for ", cs.len())
    };
    if paired < cs.len() {
        let reasons: Vec<String> = cs
            .iter()
            .filter(|(_, c)| c.method == Method::Welch)
            .map(|(v, c)| {
                let r = match c.pairing {
                    Pairing::DifferentData => "its data, batch or seed-source settings differ from the baseline's, so a seed does not give the same batches".to_string(),
                    Pairing::TooFewCommonSeeds { common } => {
                        format!("{common} seed{} completed by both", plural(common))
                    }
                    Pairing::Holds { .. } => String::new(),
                };
                format!("`{}` ({r})", v.label)
            })
            .collect();
        s.push_str(&reasons.join(", "));
    }
    if left_out > 0 {
        s.push_str(&format!(
            "; {left_out} completed trial{} without a partner seed on the other side {} left out of the paired analyses",
            plural(left_out),
            if left_out == 1 { "is" } else { "are" }
        ));
    }
    s.push('.');
    Some(s)
}
