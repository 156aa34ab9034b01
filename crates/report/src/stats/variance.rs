//! Confidence intervals for a standard deviation, used to say how sure the report is about
//! each source of seed-to-seed noise (`crate::variance`).
//!
//! For `n` normal values with sample standard deviation `s`, `(n - 1) s² / σ²` follows a
//! chi-square distribution with `n - 1` degrees of freedom, so the `level` interval of `σ` is
//! `[s √((n-1) / χ²(1 - a, n-1)), s √((n-1) / χ²(a, n-1))]` with `a = (1 - level) / 2`.

use super::gamma::chi2_quantile;

/// The `level` confidence interval of the standard deviation behind a sample of `n` values
/// with sample standard deviation `sd`; `None` for `n < 2`.
pub fn sd_interval(sd: f64, n: usize, level: f64) -> Option<(f64, f64)> {
    if n < 2 || !sd.is_finite() || sd < 0.0 || !(level > 0.0 && level < 1.0) {
        return None;
    }
    let k = (n - 1) as f64;
    let a = (1.0 - level) / 2.0;
    let hi_q = chi2_quantile(1.0 - a, k)?;
    let lo_q = chi2_quantile(a, k)?;
    Some((sd * (k / hi_q).sqrt(), sd * (k / lo_q).sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Printed by `scripts/stats-reference.py variance`: (s, n, low, high) with
    // `s * sqrt((n - 1) / scipy.stats.chi2.ppf(0.975 | 0.025, n - 1))`.
    const SD_INTERVALS: [(f64, usize, f64, f64); 3] = [
        (0.5, 3, 0.2603291333494087, 3.1423673482426913),
        (1.2, 10, 0.8254022480987996, 2.1907322190234884),
        (0.3, 20, 0.22814711829896228, 0.43817149083576573),
    ];

    #[test]
    fn sd_interval_matches_scipy() {
        for (s, n, lo, hi) in SD_INTERVALS {
            let (l, h) = sd_interval(s, n, 0.95).unwrap();
            assert!((l - lo).abs() < 1e-9 * lo, "{l} != {lo}");
            assert!((h - hi).abs() < 1e-9 * hi, "{h} != {hi}");
        }
        assert_eq!(sd_interval(0.5, 1, 0.95), None);
    }
}
