//! Small-sample statistics for comparing variants: mean, sample standard
//! deviation, Student-t confidence intervals, Welch's unequal-variance t-test
//! and the paired t-test.
//!
//! The Student-t distribution is computed from the regularized incomplete beta
//! function (continued fraction, Numerical Recipes 3rd ed. section 6.4) and the
//! Lanczos log-gamma approximation (g = 7, n = 9); quantiles are found by
//! bracketing and bisection on the CDF, which is monotone. Accuracy is about
//! 1e-12, far below what a report prints.
//!
//! Argument checks are written `!(x > 0.0)` on purpose: a NaN must fail them too.
//!
//! The submodules hold what the verdicts need beyond the t-test: [`adjust`] (multiple
//! comparisons), [`power`] and [`nct`] (detectable effects, seeds needed), [`bootstrap`]
//! (probability of improvement, interquartile mean), [`gamma`] (normal and chi-square
//! distributions) and [`variance`] (intervals for a standard deviation). Every function is
//! tested against scipy or statsmodels (`scripts/stats-reference.py` prints the values).
#![allow(clippy::neg_cmp_op_on_partial_ord, clippy::nonminimal_bool)]

pub mod adjust;
pub mod bootstrap;
pub mod gamma;
pub mod nct;
pub mod power;
pub mod variance;

/// Mean, sample standard deviation (n - 1 denominator) and count of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean (NaN when `n == 0`).
    pub mean: f64,
    /// Sample standard deviation with Bessel's correction (NaN when `n < 2`).
    pub std: f64,
}

impl Sample {
    /// Summarizes `values`; non-finite values must be filtered by the caller.
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self {
                n,
                mean: f64::NAN,
                std: f64::NAN,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n < 2 {
            f64::NAN
        } else {
            let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
            (ss / (n - 1) as f64).sqrt()
        };
        Self { n, mean, std }
    }

    /// Two-sided confidence interval of the mean at `level` (e.g. 0.95) from
    /// the t distribution with `n - 1` degrees of freedom; `None` when `n < 2`.
    pub fn confidence_interval(&self, level: f64) -> Option<(f64, f64)> {
        if self.n < 2 || !self.std.is_finite() {
            return None;
        }
        let t = student_t_quantile(0.5 + level / 2.0, (self.n - 1) as f64)?;
        let half = t * self.std / (self.n as f64).sqrt();
        Some((self.mean - half, self.mean + half))
    }
}

/// Result of a t-test: statistic, degrees of freedom and two-sided p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TTest {
    /// The t statistic (positive when the first sample's mean is larger).
    pub t: f64,
    /// Degrees of freedom (Welch-Satterthwaite for Welch's test).
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Welch's t-test of `a` against `b` (unequal variances), as
/// `scipy.stats.ttest_ind(a, b, equal_var=False)`.
///
/// `None` when either sample has fewer than 2 values or both have zero
/// variance (the statistic is undefined).
pub fn welch_t_test(a: &Sample, b: &Sample) -> Option<TTest> {
    if a.n < 2 || b.n < 2 {
        return None;
    }
    let va = a.std * a.std / a.n as f64;
    let vb = b.std * b.std / b.n as f64;
    let se2 = va + vb;
    if !(se2 > 0.0) || !se2.is_finite() {
        return None;
    }
    let t = (a.mean - b.mean) / se2.sqrt();
    let df = se2 * se2 / (va * va / (a.n - 1) as f64 + vb * vb / (b.n - 1) as f64);
    Some(TTest {
        t,
        df,
        p: student_t_two_sided_p(t, df)?,
    })
}

/// Paired t-test on the differences `d_i = a_i - b_i`, as
/// `scipy.stats.ttest_rel(a, b)`. `None` with fewer than 2 pairs or when all
/// differences are equal.
pub fn paired_t_test(differences: &[f64]) -> Option<TTest> {
    let s = Sample::of(differences);
    if s.n < 2 || !(s.std > 0.0) {
        return None;
    }
    let t = s.mean / (s.std / (s.n as f64).sqrt());
    let df = (s.n - 1) as f64;
    Some(TTest {
        t,
        df,
        p: student_t_two_sided_p(t, df)?,
    })
}

/// Two-sided p-value `P(|T| >= |t|)` for Student's t with `df` degrees of freedom.
pub fn student_t_two_sided_p(t: f64, df: f64) -> Option<f64> {
    if !(df > 0.0) || t.is_nan() {
        return None;
    }
    if t.is_infinite() {
        return Some(0.0);
    }
    let x = df / (df + t * t);
    Some(regularized_incomplete_beta(df / 2.0, 0.5, x)?.clamp(0.0, 1.0))
}

/// CDF of Student's t distribution with `df > 0` degrees of freedom.
pub fn student_t_cdf(t: f64, df: f64) -> Option<f64> {
    let tail = student_t_two_sided_p(t, df)? / 2.0;
    Some(if t >= 0.0 { 1.0 - tail } else { tail })
}

/// Quantile (inverse CDF) of Student's t with `df > 0` degrees of freedom,
/// for `0 < p < 1`, as `scipy.stats.t.ppf(p, df)`.
pub fn student_t_quantile(p: f64, df: f64) -> Option<f64> {
    if !(p > 0.0 && p < 1.0) || !(df > 0.0) || !df.is_finite() {
        return None;
    }
    if p == 0.5 {
        return Some(0.0);
    }
    // Solve for the upper tail and mirror: the distribution is symmetric.
    let upper = p.max(1.0 - p);
    let mut lo = 0.0_f64;
    let mut hi = 1.0_f64;
    while student_t_cdf(hi, df)? < upper {
        lo = hi;
        hi *= 2.0;
        if hi > 1e300 {
            return None;
        }
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if student_t_cdf(mid, df)? < upper {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let q = 0.5 * (lo + hi);
    Some(if p > 0.5 { q } else { -q })
}

/// Natural log of the gamma function for `x > 0` (Lanczos, g = 7, n = 9).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEF: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).abs().ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = COEF[0];
    let t = x + G + 0.5;
    for (i, c) in COEF.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularized incomplete beta function `I_x(a, b)` for `a, b > 0`, `0 <= x <= 1`.
pub fn regularized_incomplete_beta(a: f64, b: f64, x: f64) -> Option<f64> {
    if !(a > 0.0 && b > 0.0) || !(0.0..=1.0).contains(&x) {
        return None;
    }
    if x == 0.0 || x == 1.0 {
        return Some(x);
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    // The continued fraction converges fast for x < (a + 1) / (a + b + 2);
    // otherwise use the symmetry I_x(a, b) = 1 - I_{1-x}(b, a).
    if x < (a + 1.0) / (a + b + 2.0) {
        Some(front * beta_continued_fraction(a, b, x) / a)
    } else {
        Some(1.0 - front * beta_continued_fraction(b, a, 1.0 - x) / b)
    }
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    const EPS: f64 = 1e-15;
    let qab = a + b;
    let qap = a + 1.0;
    let qam = a - 1.0;
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=10_000 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!(
            (a - b).abs() <= tol * b.abs().max(1e-300),
            "{a} != {b} (tolerance {tol})"
        );
    }

    /// Reference: `scipy.stats.t.ppf(0.975, df)`, scipy 1.17.1.
    #[test]
    fn t_quantile_matches_scipy() {
        let cases = [
            (1.0, 12.706204736174694),
            (2.0, 4.302652729749462),
            (3.0, 3.1824463052837078),
            (4.0, 2.7764451051977934),
            (5.0, 2.5705818356363146),
            (10.0, 2.228138851986274),
            (30.0, 2.0422724563012378),
            (100.0, 1.9839715185235518),
        ];
        for (df, want) in cases {
            close(student_t_quantile(0.975, df).unwrap(), want, 1e-9);
        }
        // scipy.stats.t.ppf(0.995, 7) and scipy.stats.t.ppf(0.1, 3).
        close(
            student_t_quantile(0.995, 7.0).unwrap(),
            3.4994832973504924,
            1e-9,
        );
        close(
            student_t_quantile(0.1, 3.0).unwrap(),
            -1.6377443536962089,
            1e-9,
        );
        assert_eq!(student_t_quantile(0.5, 3.0), Some(0.0));
        assert_eq!(student_t_quantile(1.0, 3.0), None);
        assert_eq!(student_t_quantile(0.9, 0.0), None);
    }

    /// Reference: `scipy.stats.t.cdf(1.5, 3)` and `scipy.stats.t.cdf(-2.0, 7.5)`.
    #[test]
    fn t_cdf_matches_scipy() {
        close(student_t_cdf(1.5, 3.0).unwrap(), 0.8847080673775886, 1e-10);
        close(
            student_t_cdf(-2.0, 7.5).unwrap(),
            0.041448497649083156,
            1e-10,
        );
    }

    /// Reference: `scipy.stats.ttest_ind(b, a, equal_var=False)` (scipy 1.17.1).
    #[test]
    fn welch_matches_scipy() {
        let a = Sample::of(&[0.8512, 0.8475, 0.8530]);
        let b = Sample::of(&[0.8601, 0.8622, 0.8570]);
        let r = welch_t_test(&b, &a).unwrap();
        close(r.t, 4.155194239251751, 1e-10);
        close(r.df, 3.980850926767622, 1e-10);
        close(r.p, 0.014342323942281058, 1e-8);

        let a = Sample::of(&[0.70, 0.72, 0.71, 0.69, 0.73]);
        let b = Sample::of(&[0.74, 0.70, 0.78]);
        let r = welch_t_test(&b, &a).unwrap();
        close(r.t, 1.242118006816233, 1e-10);
        close(r.df, 2.3821098687408857, 1e-10);
        close(r.p, 0.3224842373741872, 1e-8);
    }

    /// Reference: `scipy.stats.ttest_rel(b, a)` with the samples above.
    #[test]
    fn paired_matches_scipy() {
        let a = [0.8512, 0.8475, 0.8530];
        let b = [0.8601, 0.8622, 0.8570];
        let d: Vec<f64> = b.iter().zip(a).map(|(x, y)| x - y).collect();
        let r = paired_t_test(&d).unwrap();
        close(r.t, 2.974974041437856, 1e-9);
        close(r.p, 0.09685206273007188, 1e-8);
        assert_eq!(paired_t_test(&[0.01]), None);
        assert_eq!(paired_t_test(&[0.01, 0.01]), None);
    }

    /// Reference: `scipy.stats.t.interval(0.95, 2, loc=mean(a), scale=sem(a))`.
    #[test]
    fn confidence_interval_matches_scipy() {
        let s = Sample::of(&[0.8512, 0.8475, 0.8530]);
        let (lo, hi) = s.confidence_interval(0.95).unwrap();
        close(lo, 0.8436007381898477, 1e-10);
        close(hi, 0.8575325951434859, 1e-10);
        assert_eq!(Sample::of(&[0.5]).confidence_interval(0.95), None);
    }

    #[test]
    fn too_few_values_give_no_test() {
        let one = Sample::of(&[0.8]);
        let three = Sample::of(&[0.8, 0.81, 0.82]);
        assert!(one.std.is_nan());
        assert_eq!(welch_t_test(&one, &three), None);
        let flat = Sample::of(&[0.8, 0.8]);
        assert_eq!(welch_t_test(&flat, &flat), None);
        assert!(Sample::of(&[]).mean.is_nan());
    }

    /// ln Gamma at known points: Gamma(5) = 24, Gamma(1/2) = sqrt(pi).
    #[test]
    fn ln_gamma_known_values() {
        close(ln_gamma(5.0), 24f64.ln(), 1e-13);
        close(ln_gamma(0.5), std::f64::consts::PI.sqrt().ln(), 1e-13);
        close(ln_gamma(0.1), 9.513507698668732f64.ln(), 1e-12);
    }
}
