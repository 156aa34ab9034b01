//! Probability of improvement and the interquartile mean, with percentile bootstrap
//! confidence intervals drawn from a fixed seed (the same report every time).
//!
//! - `P(variant > baseline)` over paired seeds (Bouthillier et al., 2021, "Accounting for
//!   Variance in Machine Learning Benchmarks", MLSys): the share of seeds on which the variant
//!   beats the baseline, a tie counting one half. They call an improvement meaningful when
//!   the interval's lower end is above 0.75 (and significant when it is above 0.5).
//! - Without pairing, the Mann-Whitney form used by rliable (Agarwal et al., 2021, "Deep
//!   Reinforcement Learning at the Edge of the Statistical Precipice", NeurIPS):
//!   `P(X > Y) = 1/(n m) Σ_i Σ_j [x_i > y_j] + ½ [x_i = y_j]`.
//! - The interquartile mean (IQM, rliable's aggregate): the mean of the middle half, as
//!   `scipy.stats.trim_mean(x, 0.25)` (cut `floor(n/4)` values at each end).
//!
//! Intervals are percentile bootstrap intervals (Efron & Tibshirani, 1993, ch. 13) over
//! [`RESAMPLES`] resamples: the paired statistic resamples seeds (pairs); the two-sample
//! statistic resamples each side within itself, rliable's stratified bootstrap with the
//! variant as the stratum. Quantiles interpolate linearly, as numpy's default. The resamples
//! come from SplitMix64 seeded with [`BOOTSTRAP_SEED`] mixed with the inputs' length, so a
//! report is reproducible.

/// Seed of every bootstrap of the report.
pub const BOOTSTRAP_SEED: u64 = 0x5EED_B007_5EED_B007;
/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 10_000;

/// SplitMix64 (Steele, Lea & Flood, 2014): small, fast, and fully specified here.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// An index in `[0, n)` (multiply-high; the bias is below 2^-40 for the sizes used here).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// The `q` quantile (0..=1) of sorted values, interpolating linearly between order statistics
/// (`numpy.percentile(x, 100 q)`).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// A point estimate with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The statistic on the data.
    pub value: f64,
    /// The percentile interval at the requested level (`None` with fewer than 2 values).
    pub ci: Option<(f64, f64)>,
}

fn percentile_interval(mut stats: Vec<f64>, level: f64) -> (f64, f64) {
    stats.sort_by(f64::total_cmp);
    let a = (1.0 - level) / 2.0;
    (quantile_sorted(&stats, a), quantile_sorted(&stats, 1.0 - a))
}

/// Percentile bootstrap interval of `statistic` over `values` (seeds resampled with
/// replacement), `resamples` times from `seed`.
pub fn bootstrap_ci(
    values: &[f64],
    statistic: impl Fn(&[f64]) -> f64,
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    let n = values.len();
    if n < 2 || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed ^ n as u64);
    let mut buf = vec![0.0; n];
    let stats = (0..resamples)
        .map(|_| {
            for b in buf.iter_mut() {
                *b = values[rng.below(n)];
            }
            statistic(&buf)
        })
        .collect();
    Some(percentile_interval(stats, level))
}

/// Stratified percentile bootstrap interval of a two-sample `statistic`: `a` and `b` are
/// resampled separately, each within itself.
pub fn bootstrap_ci_two(
    a: &[f64],
    b: &[f64],
    statistic: impl Fn(&[f64], &[f64]) -> f64,
    level: f64,
    resamples: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    let (n, m) = (a.len(), b.len());
    if n < 2 || m < 2 || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed ^ ((n as u64) << 32) ^ m as u64);
    let (mut ra, mut rb) = (vec![0.0; n], vec![0.0; m]);
    let stats = (0..resamples)
        .map(|_| {
            for x in ra.iter_mut() {
                *x = a[rng.below(n)];
            }
            for y in rb.iter_mut() {
                *y = b[rng.below(m)];
            }
            statistic(&ra, &rb)
        })
        .collect();
    Some(percentile_interval(stats, level))
}

/// The score of one paired difference: 1 when the variant wins, ½ on a tie, 0 when it loses.
fn score(d: f64) -> f64 {
    if d > 0.0 {
        1.0
    } else if d == 0.0 {
        0.5
    } else {
        0.0
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// `P(variant > baseline)` over paired seeds from the per-seed differences
/// `variant - baseline` (ties count ½).
pub fn prob_improvement_paired(differences: &[f64]) -> f64 {
    mean(&differences.iter().map(|&d| score(d)).collect::<Vec<_>>())
}

/// `P(X > Y)` for independent samples (ties count ½): the Mann-Whitney U statistic of `x`
/// over `n m`, as `scipy.stats.mannwhitneyu(x, y).statistic / (len(x) * len(y))`.
pub fn prob_improvement(x: &[f64], y: &[f64]) -> f64 {
    let mut s = 0.0;
    for &a in x {
        for &b in y {
            s += score(a - b);
        }
    }
    s / (x.len() * y.len()) as f64
}

/// The interquartile mean: the mean after cutting `floor(n / 4)` values at each end, as
/// `scipy.stats.trim_mean(x, 0.25)`. NaN for an empty sample.
pub fn iqm(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let cut = v.len() / 4;
    mean(&v[cut..v.len() - cut])
}

/// [`prob_improvement_paired`] with its bootstrap interval (pairs resampled).
pub fn prob_improvement_paired_ci(differences: &[f64], level: f64) -> Option<Estimate> {
    if differences.is_empty() {
        return None;
    }
    let scores: Vec<f64> = differences.iter().map(|&d| score(d)).collect();
    Some(Estimate {
        value: mean(&scores),
        ci: bootstrap_ci(&scores, mean, level, RESAMPLES, BOOTSTRAP_SEED),
    })
}

/// [`prob_improvement`] with its stratified bootstrap interval.
pub fn prob_improvement_ci(x: &[f64], y: &[f64], level: f64) -> Option<Estimate> {
    if x.is_empty() || y.is_empty() {
        return None;
    }
    Some(Estimate {
        value: prob_improvement(x, y),
        ci: bootstrap_ci_two(x, y, prob_improvement, level, RESAMPLES, BOOTSTRAP_SEED),
    })
}

/// [`iqm`] with its bootstrap interval.
pub fn iqm_ci(values: &[f64], level: f64) -> Option<Estimate> {
    if values.is_empty() {
        return None;
    }
    Some(Estimate {
        value: iqm(values),
        ci: bootstrap_ci(values, iqm, level, RESAMPLES, BOOTSTRAP_SEED),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Printed by `scripts/stats-reference.py bootstrap` (scipy 1.17.1).
    const IQM_X0: [f64; 3] = [0.7, 0.71, 0.69];
    const IQM_0: f64 = 0.6999999999999998;
    const IQM_X1: [f64; 5] = [0.5, 0.9, 0.6, 0.55, 0.58];
    const IQM_1: f64 = 0.5766666666666667;
    const IQM_X2: [f64; 8] = [3.0, 1.0, 2.0, 8.0, 5.0, 4.0, 7.0, 6.0];
    const IQM_2: f64 = 4.5;
    const IQM_X3: [f64; 10] = [0.1, 0.4, 0.35, 0.2, 0.3, 0.9, 0.05, 0.5, 0.45, 0.25];
    const IQM_3: f64 = 0.325;
    const MW_X: [f64; 5] = [0.7, 0.72, 0.71, 0.69, 0.72];
    const MW_Y: [f64; 4] = [0.71, 0.7, 0.72, 0.68];
    const MW_P: f64 = 0.6;
    const EXACT_PAIRED_PI: [(usize, usize, f64, f64); 4] = [
        (10, 5, 0.2, 0.8),
        (6, 5, 0.5, 1.0),
        (5, 3, 0.2, 1.0),
        (9, 5, 0.2222222222222222, 0.8888888888888888),
    ];
    const IQM_BOOT_X: [f64; 8] = [0.61, 0.64, 0.58, 0.66, 0.63, 0.6, 0.65, 0.62];
    const IQM_BOOT_CI: (f64, f64) = (0.6024999999999998, 0.645);

    /// Reference: `scipy.stats.trim_mean(x, 0.25)`.
    #[test]
    fn iqm_matches_scipy() {
        for (x, want) in [
            (&IQM_X0[..], IQM_0),
            (&IQM_X1[..], IQM_1),
            (&IQM_X2[..], IQM_2),
            (&IQM_X3[..], IQM_3),
        ] {
            assert!((iqm(x) - want).abs() < 1e-12, "{} != {want}", iqm(x));
        }
        assert!(iqm(&[]).is_nan());
    }

    /// Reference: `scipy.stats.mannwhitneyu(x, y).statistic / (len(x) * len(y))` (with ties).
    #[test]
    fn unpaired_probability_matches_mann_whitney() {
        assert!((prob_improvement(&MW_X, &MW_Y) - MW_P).abs() < 1e-12);
        assert!((prob_improvement(&MW_Y, &MW_X) - (1.0 - MW_P)).abs() < 1e-12);
    }

    /// The paired interval against the exact bootstrap: with wins and losses only, the
    /// resampled share of wins is Binomial(n, k/n) / n, so the percentile interval's ends are
    /// `scipy.stats.binom.ppf(0.025 | 0.975, n, k/n) / n`.
    #[test]
    fn paired_interval_matches_the_exact_bootstrap() {
        for (n, k, lo, hi) in EXACT_PAIRED_PI {
            let d: Vec<f64> = (0..n).map(|i| if i < k { 0.5 } else { -0.5 }).collect();
            let e = prob_improvement_paired_ci(&d, 0.95).unwrap();
            assert!((e.value - k as f64 / n as f64).abs() < 1e-12);
            assert_eq!(e.ci, Some((lo, hi)), "n = {n}, k = {k}");
        }
        let e = prob_improvement_paired_ci(&[0.0, 1.0], 0.95).unwrap();
        assert_eq!(e.value, 0.75);
    }

    /// Reference: `scipy.stats.bootstrap((x,), trim_mean 0.25, method="percentile",
    /// n_resamples=200000)`: ours uses other random numbers and 10,000 resamples, so the ends
    /// agree to Monte Carlo precision (a tenth of the interval's width).
    #[test]
    fn iqm_interval_matches_scipy_bootstrap() {
        let e = iqm_ci(&IQM_BOOT_X, 0.95).unwrap();
        let (lo, hi) = e.ci.unwrap();
        let tol = 0.1 * (IQM_BOOT_CI.1 - IQM_BOOT_CI.0);
        assert!(
            (lo - IQM_BOOT_CI.0).abs() < tol,
            "{lo} vs {}",
            IQM_BOOT_CI.0
        );
        assert!(
            (hi - IQM_BOOT_CI.1).abs() < tol,
            "{hi} vs {}",
            IQM_BOOT_CI.1
        );
    }

    #[test]
    fn numpy_style_quantiles() {
        // numpy.percentile([1, 2, 3, 4], [0, 25, 50, 100]) = [1, 1.75, 2.5, 4].
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&s, 0.0), 1.0);
        assert_eq!(quantile_sorted(&s, 0.25), 1.75);
        assert_eq!(quantile_sorted(&s, 0.5), 2.5);
        assert_eq!(quantile_sorted(&s, 1.0), 4.0);
    }

    #[test]
    fn reproducible_and_seed_dependent() {
        let v = [0.1, 0.5, -0.2, 0.3, 0.9, 0.0, 0.4];
        let a = bootstrap_ci(&v, mean, 0.95, 2000, 1).unwrap();
        assert_eq!(a, bootstrap_ci(&v, mean, 0.95, 2000, 1).unwrap());
        assert_ne!(a, bootstrap_ci(&v, mean, 0.95, 2000, 2).unwrap());
        assert!(a.0 < mean(&v) && mean(&v) < a.1);
        assert_eq!(bootstrap_ci(&[1.0], mean, 0.95, 100, 1), None);
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = SplitMix64::new(3);
        let mut seen = [0usize; 7];
        for _ in 0..7000 {
            seen[r.below(7)] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800 && c < 1200), "{seen:?}");
    }
}
