#!/usr/bin/env python3
"""Reference values for the report's statistics tests (crates/report/src/stats*).

Prints each test's constants as Rust, from scipy and statsmodels. The tests carry the values
this printed (scipy 1.17.1, statsmodels 0.15.0, numpy 2.x); they never run Python. Usage, with
a virtualenv outside the repository:

    python3 -m venv ../venv-stats && ../venv-stats/bin/pip install scipy statsmodels
    ../venv-stats/bin/python scripts/stats-reference.py [section]

Sections: gamma, nct, power, adjust, bootstrap, variance, compare (default: all).
"""

import sys

import numpy as np
from scipy import special, stats


def rust_tuples(name, rows, types):
    print(f"const {name}: [({', '.join(types)}); {len(rows)}] = [")
    for r in rows:
        print("    (" + ", ".join(repr(float(v)) if t == "f64" else str(v) for v, t in zip(r, types)) + "),")
    print("];")


def rust_list(name, values):
    print(f"const {name}: [f64; {len(values)}] = [" + ", ".join(repr(float(v)) for v in values) + "];")


def gamma():
    cases = [(0.5, 0.1), (0.5, 2.0), (1.0, 1.0), (2.5, 1.5), (2.5, 10.0), (10.0, 3.0), (10.0, 25.0), (50.0, 45.0)]
    rust_tuples("GAMMA_CASES", [(a, x, special.gammainc(a, x), special.gammaincc(a, x)) for a, x in cases], ["f64"] * 4)
    zs = [-6.0, -2.5, -1.0, 0.0, 0.3, 1.959963984540054, 4.0]
    rust_tuples("NORMAL_CASES", [(z, stats.norm.cdf(z)) for z in zs], ["f64"] * 2)
    print(f"const ERFC_HALF: f64 = {float(special.erfc(0.5))!r};")
    cdf = [(0.5, 1.0), (3.0, 2.0), (10.0, 4.0), (1.2, 9.0), (30.0, 19.0)]
    rust_tuples("CHI2_CDF_CASES", [(x, k, stats.chi2.cdf(x, k)) for x, k in cdf], ["f64"] * 3)
    ppf = [(0.025, 1.0), (0.975, 1.0), (0.025, 4.0), (0.975, 4.0), (0.5, 10.0), (0.975, 19.0)]
    rust_tuples("CHI2_PPF_CASES", [(p, k, stats.chi2.ppf(p, k)) for p, k in ppf], ["f64"] * 3)


def nct():
    cases = [(1.5, 3.0, 1.0), (-0.5, 4.0, 0.7), (2.0, 10.0, 2.5), (3.0, 1.0, 4.0), (-2.0, 5.0, -1.5),
             (5.0, 30.0, 6.0), (2.5, 19.0, 0.0), (10.0, 50.0, 12.0), (25.0, 2.0, 30.0), (0.5, 7.0, -3.0)]
    rust_tuples("NCT_CASES", [(t, df, nc, stats.nct.cdf(t, df, nc)) for t, df, nc in cases], ["f64"] * 4)


def nct_cdf_quad(t, df, nc):
    """The noncentral t CDF from its definition, P(Z + nc <= t sqrt(V / df)) with V chi-square:
    the integral of Phi(t sqrt(v / df) - nc) against the chi-square density (scipy's
    `nct.cdf` returns NaN for some df = 1 arguments near these roots)."""
    from scipy import integrate
    f = lambda v: stats.norm.cdf(t * np.sqrt(v / df) - nc) * stats.chi2.pdf(v, df)
    return integrate.quad(f, 0, np.inf, epsabs=1e-15, epsrel=1e-13, limit=500)[0]


def power_quad(d, df, n_eff, alpha):
    """Two-sided power of a t-test (statsmodels' formula) with the quadrature CDF."""
    c = stats.t.ppf(1 - alpha / 2, df)
    nc = d * np.sqrt(n_eff)
    return 1 - nct_cdf_quad(c, df, nc) + nct_cdf_quad(-c, df, nc)


def detectable(power_of, target=0.8):
    """The effect size with power `target`: a root, by scipy's brentq to 1e-13, of the power.
    (statsmodels' `solve_power` is not used: it can return a point that is not a root, e.g.
    for n = 3, alpha = 0.025 its answer has power 0.786.)"""
    from scipy.optimize import brentq
    return brentq(lambda d: power_of(d) - target, 1e-6, 60.0, xtol=1e-13, rtol=1e-13)


def smallest_n(power_of, target=0.8):
    """The smallest n >= 2 whose power reaches `target`."""
    n = 2
    while power_of(n) < target:
        n += 1
    return n


def power():
    from statsmodels.stats.power import TTestIndPower, TTestPower
    paired = [(0.5, 10, 0.05), (1.0, 3, 0.05), (0.8, 5, 0.01), (2.0, 2, 0.025), (0.3, 50, 0.05)]
    rust_tuples("PAIRED_POWER", [(d, n, a, TTestPower().power(d, n, a)) for d, n, a in paired], ["f64", "usize", "f64", "f64"])
    ind = [(0.5, 10, 10, 0.05), (1.2, 3, 5, 0.05), (0.8, 4, 2, 0.01)]
    rust_tuples("TWO_SAMPLE_POWER", [(d, n1, n2, a, TTestIndPower().power(d, n1, a, ratio=n2 / n1)) for d, n1, n2, a in ind],
                ["f64", "usize", "usize", "f64", "f64"])
    det = [(2, 0.05), (3, 0.05), (5, 0.05), (10, 0.05), (20, 0.05), (3, 0.025), (6, 0.0125)]
    rust_tuples("PAIRED_DETECTABLE", [(n, a, detectable(lambda d: power_quad(d, n - 1, n, a))) for n, a in det],
                ["usize", "f64", "f64"])
    det2 = [(3, 3, 0.05), (5, 8, 0.05), (10, 10, 0.01)]
    rust_tuples("TWO_SAMPLE_DETECTABLE",
                [(n1, n2, a, detectable(lambda d: power_quad(d, n1 + n2 - 2, n1 * n2 / (n1 + n2), a))) for n1, n2, a in det2],
                ["usize", "usize", "f64", "f64"])
    need = [(1.5, 0.05), (0.5, 0.05), (0.2, 0.05), (3.0, 0.05), (0.8, 0.01), (0.35, 0.025)]
    rust_tuples("PAIRED_SEEDS_NEEDED",
                [(d, a, smallest_n(lambda n: TTestPower().power(d, n, a))) for d, a in need],
                ["f64", "f64", "usize"])
    need2 = [(1.0, 0.05), (0.5, 0.05), (2.0, 0.01)]
    rust_tuples("TWO_SAMPLE_SEEDS_NEEDED",
                [(d, a, smallest_n(lambda n: TTestIndPower().power(d, n, a, ratio=1.0))) for d, a in need2],
                ["f64", "f64", "usize"])
    hw = [(0.5, 3), (1.2, 10), (0.05, 2)]
    rust_tuples("HALF_WIDTH", [(sd, n, stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)) for sd, n in hw], ["f64", "usize", "f64"])
    # Seeds for a half-width: the smallest n >= 2 with t.ppf(0.975, n-1) sd / sqrt(n) <= target.
    def seeds_for(sd, target):
        n = 2
        while stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n) > target:
            n += 1
        return n
    tgt = [(1.0, 0.3), (0.5, 0.3), (0.2, 0.3), (2.0, 0.5)]
    rust_tuples("SEEDS_FOR_HALF_WIDTH", [(sd, t, seeds_for(sd, t)) for sd, t in tgt], ["f64", "f64", "usize"])


def adjust():
    from statsmodels.stats.multitest import multipletests
    p = [0.01, 0.04, 0.03, 0.005, 0.20, 0.04, 0.5]
    rust_list("P", p)
    rust_list("HOLM", multipletests(p, method="holm")[1])
    rust_list("BH", multipletests(p, method="fdr_bh")[1])
    rust_list("BH_SCIPY", stats.false_discovery_control(p, method="bh"))


def bootstrap():
    samples = [[0.7, 0.71, 0.69], [0.5, 0.9, 0.6, 0.55, 0.58], [3.0, 1.0, 2.0, 8.0, 5.0, 4.0, 7.0, 6.0],
               [0.1, 0.4, 0.35, 0.2, 0.3, 0.9, 0.05, 0.5, 0.45, 0.25]]
    for i, x in enumerate(samples):
        rust_list(f"IQM_X{i}", x)
        print(f"const IQM_{i}: f64 = {float(stats.trim_mean(x, 0.25))!r};")
    x = [0.70, 0.72, 0.71, 0.69, 0.72]
    y = [0.71, 0.70, 0.72, 0.68]
    rust_list("MW_X", x)
    rust_list("MW_Y", y)
    print(f"const MW_P: f64 = {float(stats.mannwhitneyu(x, y).statistic / (len(x) * len(y)))!r};")
    # The exact bootstrap of the paired P(A > B) without ties: the resampled wins are
    # Binomial(n, k/n), so the interval ends are binom.ppf(0.025 | 0.975, n, k/n) / n.
    # (n, k) chosen with the binomial CDF far (> 4 Monte Carlo standard errors at 10,000
    # resamples) from 0.025 and 0.975, so the quantiles are not at a step.
    rows = []
    se = np.sqrt(0.025 * 0.975 / 10000)
    for n, k in [(12, 8), (10, 5), (20, 15), (6, 5), (10, 7), (8, 6), (15, 9), (20, 11), (5, 3), (9, 5)]:
        p = k / n
        lo, hi = stats.binom.ppf(0.025, n, p), stats.binom.ppf(0.975, n, p)
        far = all(abs(stats.binom.cdf(v, n, p) - q) > 4 * se and abs(stats.binom.cdf(v - 1, n, p) - q) > 4 * se
                  for q, v in [(0.025, lo), (0.975, hi)])
        if far:
            rows.append((n, k, lo / n, hi / n))
    rust_tuples("EXACT_PAIRED_PI", rows, ["usize", "usize", "f64", "f64"])
    x = [0.61, 0.64, 0.58, 0.66, 0.63, 0.60, 0.65, 0.62]
    res = stats.bootstrap((x,), lambda v, axis: stats.trim_mean(v, 0.25, axis=axis), method="percentile",
                          n_resamples=200000, random_state=0, confidence_level=0.95)
    rust_list("IQM_BOOT_X", x)
    print(f"const IQM_BOOT_CI: (f64, f64) = ({float(res.confidence_interval.low)!r}, {float(res.confidence_interval.high)!r});")


def variance():
    rows = []
    for s, n in [(0.5, 3), (1.2, 10), (0.3, 20)]:
        k = n - 1
        rows.append((s, n, s * np.sqrt(k / stats.chi2.ppf(0.975, k)), s * np.sqrt(k / stats.chi2.ppf(0.025, k))))
    rust_tuples("SD_INTERVALS", rows, ["f64", "usize", "f64", "f64"])


# The fixture of crates/report/src/compare.rs's tests: a baseline and three paired variants
# (accuracies as fractions, variant = baseline + d), and a Welch case.
BASE = [0.700, 0.712, 0.705, 0.698, 0.709]
D = [[0.020, 0.018, 0.022, 0.019, 0.021], [0.004, 0.0, 0.006, 0.002, 0.003], [0.004, 0.001, 0.006, 0.001, 0.004]]
WELCH = [0.71, 0.725, 0.715, 0.72]


def compare():
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.power import TTestIndPower, TTestPower
    base = np.array(BASE)
    vs = [base + np.array(d) for d in D]
    res = [stats.ttest_rel(v, base) for v in vs]
    p = [r.pvalue for r in res]
    rust_list("RAW_P", p)
    rust_list("HOLM_P", multipletests(p, method="holm")[1])
    rust_list("BH_P", multipletests(p, method="fdr_bh")[1])
    ci = res[0].confidence_interval(0.95)
    print(f"const CI_0: (f64, f64) = ({float(ci.low * 100)!r}, {float(ci.high * 100)!r});")
    sd = np.std((vs[0] - base) * 100, ddof=1)
    d = detectable(lambda e: power_quad(e, 4, 5, 0.05 / 3))
    print(f"const DETECTABLE_0: f64 = {float(d * sd)!r};")
    sd1 = np.std((vs[1] - base) * 100, ddof=1)
    n = smallest_n(lambda k: TTestPower().power(0.5 / sd1, k, 0.05 / 3))
    print(f"const SEEDS_FOR_HALF_POINT_1: usize = {n};")
    w = stats.ttest_ind(WELCH, BASE, equal_var=False)
    print(f"const WELCH_P: f64 = {float(w.pvalue)!r};")
    ci = w.confidence_interval(0.95)
    print(f"const WELCH_CI: (f64, f64) = ({float(ci.low * 100)!r}, {float(ci.high * 100)!r});")
    a, b = np.array(WELCH), base
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)) * 100
    e = detectable(lambda x: power_quad(x, len(a) + len(b) - 2, len(a) * len(b) / (len(a) + len(b)), 0.05))
    print(f"const WELCH_DETECTABLE: f64 = {float(e * pooled)!r};")
    print(f"const WELCH_PI: f64 = {float(stats.mannwhitneyu(a, b).statistic / (len(a) * len(b)))!r};")


SECTIONS = {"gamma": gamma, "nct": nct, "power": power, "adjust": adjust, "bootstrap": bootstrap, "variance": variance, "compare": compare}

if __name__ == "__main__":
    wanted = sys.argv[1:] or list(SECTIONS)
    for s in wanted:
        print(f"// --- {s} ---")
        SECTIONS[s]()
