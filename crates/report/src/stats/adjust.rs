//! Adjusting p-values for multiple comparisons: when a report compares many variants with the
//! baseline, some raw p-values fall below 0.05 by chance alone (one comparison in twenty when
//! nothing differs). The adjusted p-values keep the chance of a false "better" or "worse"
//! under control across the whole report.
//!
//! With `m` p-values sorted ascending, `p(1) <= ... <= p(m)`:
//!
//! - Holm (1979), controls the family-wise error rate (the chance of even one false verdict):
//!   `adj(i) = max_{j <= i} min(1, (m - j + 1) p(j))`;
//! - Benjamini-Hochberg (1995), controls the false discovery rate (the expected share of false
//!   verdicts among the verdicts), less strict:
//!   `adj(i) = min_{j >= i} min(1, m p(j) / j)`;
//!
//! as R's `p.adjust(p, "holm")` / `p.adjust(p, "BH")` and statsmodels' `multipletests`.

/// How the p-values of a report are adjusted (`ablate report --adjust`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Adjust {
    /// Holm's step-down method (the default): family-wise error rate.
    #[default]
    Holm,
    /// Benjamini-Hochberg: false discovery rate.
    BenjaminiHochberg,
    /// No adjustment: each comparison at the level on its own.
    None,
}

impl Adjust {
    /// The command-line spelling: `holm`, `bh`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Adjust::Holm => "holm",
            Adjust::BenjaminiHochberg => "bh",
            Adjust::None => "none",
        }
    }

    /// The name a reader sees: `Holm`, `Benjamini-Hochberg`, `unadjusted`.
    pub fn name(self) -> &'static str {
        match self {
            Adjust::Holm => "Holm",
            Adjust::BenjaminiHochberg => "Benjamini-Hochberg",
            Adjust::None => "unadjusted",
        }
    }

    /// Parses the command-line spelling.
    pub fn parse(s: &str) -> Option<Adjust> {
        match s {
            "holm" => Some(Adjust::Holm),
            "bh" => Some(Adjust::BenjaminiHochberg),
            "none" => Some(Adjust::None),
            _ => None,
        }
    }

    /// The per-comparison level a single real difference among `m` comparisons must reach to
    /// be declared at level `alpha`: `alpha / m` under Holm and Benjamini-Hochberg (the first
    /// step of either when only one comparison differs), `alpha` unadjusted. The power
    /// figures use it.
    pub fn single_level(self, alpha: f64, m: usize) -> f64 {
        match self {
            Adjust::None => alpha,
            _ => alpha / m.max(1) as f64,
        }
    }
}

/// The adjusted p-values of `p`, in the same order. `None` entries (comparisons without a
/// test) stay `None` and do not count in `m`.
pub fn adjust(p: &[Option<f64>], method: Adjust) -> Vec<Option<f64>> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| p[i].is_some()).collect();
    let m = idx.len();
    let mut out: Vec<Option<f64>> = vec![None; p.len()];
    if m == 0 {
        return out;
    }
    let value = |i: usize| p[i].unwrap_or(f64::NAN);
    // Stable sort: equal p-values keep their order (the adjusted values are equal anyway).
    idx.sort_by(|&a, &b| value(a).total_cmp(&value(b)));
    match method {
        Adjust::None => {
            for &i in &idx {
                out[i] = Some(value(i));
            }
        }
        Adjust::Holm => {
            let mut running = 0.0_f64;
            for (rank, &i) in idx.iter().enumerate() {
                let v = ((m - rank) as f64 * value(i)).min(1.0);
                running = running.max(v);
                out[i] = Some(running);
            }
        }
        Adjust::BenjaminiHochberg => {
            let mut running = 1.0_f64;
            for (rank, &i) in idx.iter().enumerate().rev() {
                let v = (m as f64 * value(i) / (rank + 1) as f64).min(1.0);
                running = running.min(v);
                out[i] = Some(running);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Printed by `scripts/stats-reference.py adjust`: statsmodels' `multipletests(P,
    // method="holm" | "fdr_bh")[1]` and scipy's `false_discovery_control(P, method="bh")`.
    const P: [f64; 7] = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04, 0.5];
    const HOLM: [f64; 7] = [0.06, 0.16, 0.15, 0.035, 0.4, 0.16, 0.5];
    const BH: [f64; 7] = [0.035, 0.056, 0.056, 0.035, 0.23333333333333336, 0.056, 0.5];
    const BH_SCIPY: [f64; 7] = [
        0.035,
        0.055999999999999994,
        0.055999999999999994,
        0.035,
        0.23333333333333336,
        0.055999999999999994,
        0.5,
    ];

    fn check(got: &[Option<f64>], want: &[f64]) {
        for (g, w) in got.iter().zip(want) {
            let g = g.unwrap();
            assert!((g - w).abs() < 1e-12, "{g} != {w}");
        }
    }

    #[test]
    fn holm_and_bh_match_statsmodels_and_scipy() {
        let p: Vec<Option<f64>> = P.iter().map(|&x| Some(x)).collect();
        check(&adjust(&p, Adjust::Holm), &HOLM);
        check(&adjust(&p, Adjust::BenjaminiHochberg), &BH);
        check(&adjust(&p, Adjust::BenjaminiHochberg), &BH_SCIPY);
        check(&adjust(&p, Adjust::None), &P);
    }

    #[test]
    fn gaps_and_empty_input() {
        assert!(adjust(&[], Adjust::Holm).is_empty());
        let a = adjust(&[None, Some(0.01), None, Some(0.04)], Adjust::Holm);
        assert_eq!(a[0], None);
        assert_eq!(a[2], None);
        assert!((a[1].unwrap() - 0.02).abs() < 1e-15);
        assert!((a[3].unwrap() - 0.04).abs() < 1e-15);
        assert_eq!(Adjust::parse("bh"), Some(Adjust::BenjaminiHochberg));
        assert_eq!(Adjust::parse("fdr"), None);
        assert_eq!(Adjust::Holm.single_level(0.05, 5), 0.01);
        assert_eq!(Adjust::None.single_level(0.05, 5), 0.05);
    }
}
