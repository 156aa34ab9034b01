//! The variant and problem tables, formatted once and written as Markdown,
//! HTML and CSV.

use std::collections::BTreeSet;

use ablate_schema::TrialState;

use crate::analysis::{Analysis, BaselineReason, Variant};
use crate::comparison::{Comparison, Method, Verdict};
use crate::load::Trial;
use crate::stats::adjust::Adjust;
use crate::stats::bootstrap::Estimate;

/// Column headers of the variant table; the adjusted p-value's names its method.
pub fn variant_headers(adjust: Adjust) -> Vec<String> {
    let mut h: Vec<String> = [
        "Variant",
        "Attention",
        "Seeds",
        "Params",
        "MACs/image",
        "Final test acc (%)",
        "95% CI (%)",
        "Best test acc (%)",
        "Δ vs baseline (pts)",
        "p",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    h.push(adjusted_header(adjust));
    h.extend(
        ["Verdict", "s/epoch", "images/s"]
            .iter()
            .map(|s| s.to_string()),
    );
    h
}

/// `p (Holm)`, `p (BH)` or `p (unadjusted)`: the header of the adjusted p-values.
pub fn adjusted_header(adjust: Adjust) -> String {
    match adjust {
        Adjust::Holm => "p (Holm)".into(),
        Adjust::BenjaminiHochberg => "p (BH)".into(),
        Adjust::None => "p (unadjusted)".into(),
    }
}

/// One formatted row of the variant table.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantRow {
    /// Cells in the order of [`variant_headers`] (the variant cell without markers).
    pub cells: Vec<String>,
    /// Baseline row.
    pub baseline: bool,
    /// Best row.
    pub best: bool,
    /// Fewer than two completed seeds.
    pub too_few: bool,
}

impl VariantRow {
    /// The cells with the text markers used in Markdown and CSV-free views:
    /// `(baseline)`, `best` and `†`.
    pub fn marked_cells(&self) -> Vec<String> {
        let mut cells = self.cells.clone();
        cells[0] = crate::charts::baseline_label(&cells[0], self.baseline);
        if self.best {
            cells[0].push_str(" ★ best");
        }
        if self.too_few {
            cells[2].push_str(" †");
        }
        cells
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn pct(v: f64) -> String {
    format!("{:.2}", v * 100.0)
}

fn mean_std(s: &crate::stats::Sample) -> String {
    match s.n {
        0 => "—".into(),
        1 => pct(s.mean),
        _ => format!("{} ± {}", pct(s.mean), pct(s.std)),
    }
}

/// A p-value to three decimals, `<0.001` below that.
pub fn p_value(p: f64) -> String {
    if p < 0.001 {
        "<0.001".into()
    } else {
        format!("{p:.3}")
    }
}

fn signed(v: f64) -> String {
    format!("{v:+.2}")
}

/// Formats one variant. The difference, p-values and verdict are the primary analysis'
/// (`crate::compare`): paired when the seeds pair, Welch's otherwise.
pub fn variant_row(v: &Variant, have_baseline_results: bool) -> VariantRow {
    let c = v.comparison.as_ref();
    let diff = if v.is_baseline {
        "reference".to_string()
    } else {
        c.map(|c| c.diff_points)
            .or(v.diff_points)
            .map(signed)
            .unwrap_or_else(|| "—".into())
    };
    // "n/a": too few seeds on one side, or no variance at all; "—": nothing to compare.
    let none = if !v.is_baseline && v.completed() > 0 && have_baseline_results {
        "n/a"
    } else {
        "—"
    };
    let p = c
        .and_then(|c| c.test)
        .map_or(none.to_string(), |t| p_value(t.p));
    let p_adj = c
        .and_then(|c| c.p_adjusted)
        .map_or(none.to_string(), p_value);
    let verdict = match c {
        Some(c) if c.method == Method::Paired || c.verdict == Verdict::NotTestable => {
            c.verdict.as_str().to_string()
        }
        Some(c) => format!("{} (Welch)", c.verdict.as_str()),
        None => "—".into(),
    };
    VariantRow {
        cells: vec![
            v.label.clone(),
            v.attention.clone(),
            format!("{}/{}", v.completed(), v.trials),
            v.params.map(thousands).unwrap_or_else(|| "—".into()),
            v.macs
                .map(|m| format!("{:.2} M", m as f64 / 1e6))
                .unwrap_or_else(|| "—".into()),
            mean_std(&v.final_acc),
            v.final_ci
                .map(|(lo, hi)| format!("[{}, {}]", pct(lo), pct(hi)))
                .unwrap_or_else(|| "—".into()),
            mean_std(&v.best_acc),
            diff,
            p,
            p_adj,
            verdict,
            v.seconds_per_epoch
                .map(|s| format!("{s:.1}"))
                .unwrap_or_else(|| "—".into()),
            v.images_per_sec
                .map(|s| thousands(s.round().max(0.0) as u64))
                .unwrap_or_else(|| "—".into()),
        ],
        baseline: v.is_baseline,
        best: v.is_best,
        too_few: v.too_few_seeds(),
    }
}

/// All rows of the variant table, in the analysis' order.
pub fn variant_rows(a: &Analysis) -> Vec<VariantRow> {
    let have_base = a.baseline().is_some_and(|b| b.completed() > 0);
    a.variants
        .iter()
        .map(|v| variant_row(v, have_base))
        .collect()
}

/// Column headers of the problem table.
pub const PROBLEM_HEADERS: [&str; 8] = [
    "Trial",
    "Variant",
    "Seed",
    "Status",
    "Attempts",
    "Epochs",
    "Exit code",
    "Error",
];

/// Statuses listed as problems (everything but `completed`).
pub fn is_problem(status: TrialState) -> bool {
    status != TrialState::Completed
}

/// Failed, diverged and unfinished trials, failures first, as cells; the
/// last cell holds the full error text.
pub fn problem_rows(trials: &[Trial]) -> Vec<Vec<String>> {
    let rank = |s: TrialState| match s {
        TrialState::Failed => 0,
        TrialState::Diverged => 1,
        TrialState::Interrupted => 2,
        TrialState::Running => 3,
        TrialState::Pending => 4,
        TrialState::Completed => 5,
    };
    let mut ts: Vec<&Trial> = trials.iter().filter(|t| is_problem(t.status)).collect();
    ts.sort_by(|a, b| {
        rank(a.status)
            .cmp(&rank(b.status))
            .then_with(|| a.variant.cmp(&b.variant))
            .then(a.seed.cmp(&b.seed))
    });
    ts.iter()
        .map(|t| {
            vec![
                t.trial_id.clone(),
                t.variant.clone(),
                t.seed.to_string(),
                t.status.to_string(),
                t.attempts.to_string(),
                format!("{}/{}", t.epochs_done, t.epochs_planned),
                t.exit_code.map_or("—".into(), |c| c.to_string()),
                t.error.clone().unwrap_or_default(),
            ]
        })
        .collect()
}

/// One line of an error for a table cell: whitespace collapsed, cut at `max` characters.
pub fn one_line(s: &str, max: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.is_empty() {
        return "—".into();
    }
    crate::charts::shorten(&s, max)
}

/// Escapes a Markdown table cell.
pub fn md_cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
}

/// A Markdown table.
pub fn md_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    out.push_str("| ");
    out.push_str(&headers.join(" | "));
    out.push_str(" |\n|");
    for _ in headers {
        out.push_str(" --- |");
    }
    out.push('\n');
    for r in rows {
        out.push_str("| ");
        out.push_str(&r.iter().map(|c| md_cell(c)).collect::<Vec<_>>().join(" | "));
        out.push_str(" |\n");
    }
    out
}

/// The variant table in Markdown: baseline marked, best in bold.
pub fn variant_table_md(headers: &[String], rows: &[VariantRow]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut c: Vec<String> = r.marked_cells().iter().map(|s| md_cell(s)).collect();
            if r.best {
                for x in c.iter_mut() {
                    *x = format!("**{x}**");
                }
            }
            c
        })
        .collect();
    // Cells are already escaped: build the table by hand.
    let mut out = String::new();
    out.push_str("| ");
    out.push_str(&headers.join(" | "));
    out.push_str(" |\n|");
    for (i, _) in headers.iter().enumerate() {
        out.push_str(if i < 2 { " --- |" } else { " ---: |" });
    }
    out.push('\n');
    for r in cells {
        out.push_str("| ");
        out.push_str(&r.join(" | "));
        out.push_str(" |\n");
    }
    out
}

/// Sentence explaining the baseline choice.
pub fn baseline_sentence(a: &Analysis) -> String {
    match (a.baseline(), &a.baseline_reason) {
        (Some(b), Some(BaselineReason::OnlyNone)) => {
            format!("`{}` (the variant with `attention = none`)", b.label)
        }
        (Some(b), Some(BaselineReason::FewestSweptKeys { candidates })) => format!(
            "`{}` ({candidates} variants have `attention = none`; this one sets the fewest swept keys away from the base configuration)",
            b.label
        ),
        (Some(b), Some(BaselineReason::NoNoneVariant)) => format!(
            "`{}` (no variant has `attention = none`, so the first variant of the sweep is the reference)",
            b.label
        ),
        _ => "none (no trials)".into(),
    }
}

/// Quotes a CSV field when needed (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x}"),
        _ => String::new(),
    }
}

/// What the cells of a summary.csv row are computed from.
struct RowContext<'a> {
    a: &'a Analysis,
    v: &'a Variant,
    /// The primary comparison with the baseline.
    c: Option<&'a Comparison>,
    /// The comparison, when it is the paired one.
    paired: Option<&'a Comparison>,
    pi: Option<Estimate>,
}

/// A summary.csv cell.
type Cell = fn(&RowContext) -> String;

/// summary.csv's fixed columns, in order, each with its cell: the one definition of the file's
/// layout (the axis columns `axis.KEY` follow).
const SUMMARY_COLUMNS: &[(&str, Cell)] = &[
    ("variant_id", |r| r.v.id.clone()),
    ("variant", |r| r.v.label.clone()),
    ("attention", |r| r.v.attention.clone()),
    ("is_baseline", |r| r.v.is_baseline.to_string()),
    ("is_best", |r| r.v.is_best.to_string()),
    ("trials", |r| r.v.trials.to_string()),
    ("seeds_completed", |r| r.v.completed().to_string()),
    ("params", |r| {
        r.v.params.map(|p| p.to_string()).unwrap_or_default()
    }),
    ("macs", |r| {
        r.v.macs.map(|p| p.to_string()).unwrap_or_default()
    }),
    ("final_test_acc_mean", |r| {
        num(nonempty(&r.v.final_acc, r.v.final_acc.mean))
    }),
    ("final_test_acc_std", |r| num(Some(r.v.final_acc.std))),
    ("final_test_acc_ci95_low", |r| {
        num(r.v.final_ci.map(|c| c.0))
    }),
    ("final_test_acc_ci95_high", |r| {
        num(r.v.final_ci.map(|c| c.1))
    }),
    ("best_test_acc_mean", |r| {
        num(nonempty(&r.v.best_acc, r.v.best_acc.mean))
    }),
    ("best_test_acc_std", |r| num(Some(r.v.best_acc.std))),
    ("diff_vs_baseline_points", |r| num(r.v.diff_points)),
    ("welch_t", |r| num(r.v.welch.map(|t| t.t))),
    ("welch_df", |r| num(r.v.welch.map(|t| t.df))),
    ("welch_p", |r| num(r.v.welch.map(|t| t.p))),
    ("paired_n", |r| {
        r.paired.map(|p| p.n.to_string()).unwrap_or_default()
    }),
    ("paired_diff_points", |r| {
        num(r.paired.map(|p| p.diff_points))
    }),
    ("paired_p", |r| {
        num(r.paired.and_then(|p| p.test).map(|t| t.p))
    }),
    ("primary_analysis", |r| {
        r.c.map(|c| c.method.as_str().to_string())
            .unwrap_or_default()
    }),
    ("diff_points", |r| num(r.c.map(|c| c.diff_points))),
    ("diff_ci95_low_points", |r| {
        num(r.c.and_then(|c| c.ci_points).map(|x| x.0))
    }),
    ("diff_ci95_high_points", |r| {
        num(r.c.and_then(|c| c.ci_points).map(|x| x.1))
    }),
    ("p", |r| num(r.c.and_then(|c| c.test).map(|t| t.p))),
    ("p_adjusted", |r| num(r.c.and_then(|c| c.p_adjusted))),
    ("adjust", |r| {
        r.c.map(|_| r.a.options.adjust.as_str().to_string())
            .unwrap_or_default()
    }),
    ("verdict", |r| {
        r.c.map(|c| c.verdict.as_str().to_string())
            .unwrap_or_default()
    }),
    ("prob_improvement", |r| num(r.pi.map(|e| e.value))),
    ("prob_improvement_ci95_low", |r| {
        num(r.pi.and_then(|e| e.ci).map(|x| x.0))
    }),
    ("prob_improvement_ci95_high", |r| {
        num(r.pi.and_then(|e| e.ci).map(|x| x.1))
    }),
    ("spread_points", |r| num(r.c.and_then(|c| c.sd_points))),
    ("detectable_diff_points", |r| {
        num(r.c.and_then(|c| c.detectable_points))
    }),
    ("power_level", |r| num(r.c.map(|c| c.power_level))),
    ("effect_points", |r| {
        num(r.c.map(|_| r.a.options.effect_points))
    }),
    ("seeds_for_effect", |r| {
        seeds(r.c.and_then(|c| c.seeds_for_effect))
    }),
    ("more_seeds_for_effect", |r| {
        seeds(r.c.and_then(|c| c.more_seeds()))
    }),
    ("iqm", |r| num(r.v.iqm.map(|e| e.value))),
    ("iqm_ci95_low", |r| {
        num(r.v.iqm.and_then(|e| e.ci).map(|x| x.0))
    }),
    ("iqm_ci95_high", |r| {
        num(r.v.iqm.and_then(|e| e.ci).map(|x| x.1))
    }),
    ("seconds_per_epoch", |r| num(r.v.seconds_per_epoch)),
    ("images_per_sec", |r| num(r.v.images_per_sec)),
];

/// A mean, empty when the sample is.
fn nonempty(s: &crate::stats::Sample, x: f64) -> Option<f64> {
    (s.n > 0).then_some(x)
}

/// A seed count, empty when unknown.
fn seeds(x: Option<crate::stats::power::SeedsNeeded>) -> String {
    x.map(|n| n.to_string()).unwrap_or_default()
}

/// summary.csv: one row per variant, numbers unformatted (fractions for
/// accuracies, points for differences), empty cells for missing values.
pub fn summary_csv(a: &Analysis) -> String {
    // In column order (trials.parquet sorts its axis columns by key).
    let axis_keys: BTreeSet<&String> = a.variants.iter().flat_map(|v| v.axes.keys()).collect();
    let headers = SUMMARY_COLUMNS
        .iter()
        .map(|(name, _)| name.to_string())
        .chain(axis_keys.iter().map(|k| format!("axis.{k}")));
    let mut out = csv_line(headers);
    for v in &a.variants {
        let c = v.comparison.as_ref();
        let r = RowContext {
            a,
            v,
            c,
            paired: c.filter(|c| c.method == Method::Paired),
            pi: c.and_then(|c| c.prob_improvement),
        };
        let cells = SUMMARY_COLUMNS.iter().map(|(_, cell)| cell(&r));
        let axes = axis_keys.iter().map(|k| {
            v.axes
                .get(*k)
                .map(|val| val.to_string())
                .unwrap_or_default()
        });
        out.push_str(&csv_line(cells.chain(axes)));
    }
    out
}

/// One CSV line of `fields`, quoted where needed, with its newline.
fn csv_line(fields: impl Iterator<Item = String>) -> String {
    let mut line = fields.map(|f| csv_field(&f)).collect::<Vec<_>>().join(",");
    line.push('\n');
    line
}

/// Escapes text for HTML.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_helpers() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(p_value(0.0004), "<0.001");
        assert_eq!(p_value(0.01434), "0.014");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(md_cell("a|b"), "a\\|b");
        assert_eq!(one_line("  x \n  y ", 10), "x y");
        assert_eq!(one_line("abcdefghijkl", 5), "abcd…");
        assert_eq!(html_escape("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
    }
}
