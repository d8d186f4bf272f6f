"""The report's statistics as plain functions of float arrays: confidence intervals of a mean, the paired
and the two-group tests with their effect sizes, Spearman's rank correlation with a bootstrap CI, Holm's
correction, and the endpoints of an accuracy-against-sparsity curve.

Nothing here raises on small or degenerate data: fewer than 2 values, or zero variance, give NaN where a
quantity is undefined (a zero-variance sample has no sampling variance to build an interval or a test
from), and an effect size of 0 where the estimate itself is exactly 0.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import integrate, special, stats

CONFIDENCE = 0.95
NAN = math.nan


@dataclass(frozen=True)
class Test:
    """One test's result: n1/n2 the sizes (paired: n1 = n2 = runs), the estimate with its 95% CI, the
    two-sided p-value and a standardised effect size."""

    method: str
    n1: int
    n2: int
    estimate: float
    ci_low: float = NAN
    ci_high: float = NAN
    p: float = NAN
    effect_size: float = NAN


def _array(x: np.ndarray | list[float]) -> np.ndarray:
    return np.asarray(x, dtype=float)


def is_constant(x: np.ndarray) -> bool:
    """Zero variance up to rounding (accuracies differ by at least 1/test-set size, far above 1e-12)."""
    return len(x) > 0 and float(np.ptp(x)) <= 1e-12 * max(1.0, abs(float(np.mean(x))))


def _zero_or_nan(estimate: float) -> float:
    return 0.0 if estimate == 0 else NAN


def mean(x: np.ndarray | list[float]) -> float:
    x = _array(x)
    return float(x.mean()) if len(x) else NAN


def t_ci(x: np.ndarray | list[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """CI of the mean from the t distribution: mean ± t_{n-1, (1+c)/2} · s / sqrt(n)."""
    x = _array(x)
    if len(x) < 2 or is_constant(x):
        return NAN, NAN
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def bootstrap_ci(
    x: np.ndarray | list[float], resamples: int = 10_000, seed: int = 0, method: str = "BCa", confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Bootstrap CI of the mean (scipy.stats.bootstrap). ``BCa`` (bias-corrected and accelerated, Efron
    1987) is the report's; ``percentile`` is the old report's, kept to measure its coverage against."""
    x = _array(x)
    if len(x) < 2 or is_constant(x):
        return NAN, NAN
    with warnings.catch_warnings():  # a degenerate resample distribution gives NaN with a warning
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        ci = stats.bootstrap(
            (x,), np.mean, n_resamples=resamples, confidence_level=confidence, method=method, rng=np.random.default_rng(seed)
        ).confidence_interval
    return float(ci.low), float(ci.high)


def hedges_correction(dof: int) -> float:
    """J(dof) = Γ(dof/2) / (sqrt(dof/2) Γ((dof-1)/2)), the exact small-sample bias correction of a
    standardised mean difference (Hedges 1981); ~ 1 - 3 / (4 dof - 1)."""
    if dof < 1:
        return NAN
    return math.exp(special.gammaln(dof / 2) - special.gammaln((dof - 1) / 2)) / math.sqrt(dof / 2)


def hedges_g(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """(mean(a) - mean(b)) / pooled SD, times J(n1 + n2 - 2): Hedges' g."""
    a, b = _array(a), _array(b)
    dof = len(a) + len(b) - 2
    if len(a) < 1 or len(b) < 1 or dof < 1:
        return NAN
    diff = float(a.mean() - b.mean())
    pooled = math.sqrt((((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()) / dof)
    return _zero_or_nan(diff) if pooled == 0 else hedges_correction(dof) * diff / pooled


def paired_t(d: np.ndarray | list[float]) -> Test:
    """The paired t-test on per-run differences d (e.g. dense - fine-tuned accuracy of each run): a
    one-sample t-test of mean(d) = 0, the t CI of mean(d), and Hedges' g_z = J(n-1) · mean(d) / sd(d)."""
    d = _array(d)
    n, estimate = len(d), mean(d)
    method = "paired t (one-sample t on per-run differences); effect: Hedges' g_z"
    if n < 2 or is_constant(d):
        return Test(method, n, n, estimate, effect_size=_zero_or_nan(estimate))
    result = stats.ttest_1samp(d, 0.0)
    ci = result.confidence_interval(CONFIDENCE)
    g = hedges_correction(n - 1) * estimate / float(d.std(ddof=1))
    return Test(method, n, n, estimate, float(ci.low), float(ci.high), float(result.pvalue), g)


def signed_rank_cdf(n: int) -> np.ndarray:
    """P(T+ <= t) for t = 0..n(n+1)/2 under the null of the signed-rank test without ties: each of the
    2^n sign patterns of the ranks 1..n is equally likely; counts of rank subsets summing to t."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank]
    return np.cumsum(counts) / 2.0**n


def hodges_lehmann(d: np.ndarray | list[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """The Hodges-Lehmann estimate (median of the n(n+1)/2 Walsh averages (d_i + d_j)/2, i <= j) and its
    distribution-free CI [W_(k), W_(M+1-k)], k the largest with P(T+ <= k-1) <= (1-c)/2 (Hollander & Wolfe,
    Nonparametric Statistical Methods, 3.2): the CI that inverts the exact signed-rank test. It covers at
    least ``confidence``; NaN below n = 6, where no k exists at 95%."""
    d = _array(d)
    if len(d) == 0:
        return NAN, NAN, NAN
    i, j = np.triu_indices(len(d))
    walsh = np.sort((d[i] + d[j]) / 2)
    k = int(np.searchsorted(signed_rank_cdf(len(d)), (1 - confidence) / 2, side="right"))
    if k == 0:
        return float(np.median(walsh)), NAN, NAN
    return float(np.median(walsh)), float(walsh[k - 1]), float(walsh[len(walsh) - k])


def wilcoxon_signed_rank(d: np.ndarray | list[float]) -> Test:
    """Wilcoxon's signed-rank test of per-run differences d against 0 (scipy.stats.wilcoxon; zero
    differences are dropped, zero_method='wilcox'), with the Hodges-Lehmann estimate and CI, and the
    matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-) as effect size (Kerby 2014).
    All differences zero: no signed rank to test, so p, CI and effect are NaN (estimate 0)."""
    d = _array(d)
    n = len(d)
    method = "Wilcoxon signed-rank; estimate and CI: Hodges-Lehmann; effect: rank-biserial r"
    nonzero = d[d != 0]
    if len(nonzero) == 0:
        return Test(method, n, n, 0.0 if n else NAN)
    estimate, low, high = hodges_lehmann(d)
    ranks = stats.rankdata(np.abs(nonzero))
    effect = float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())
    return Test(method, n, n, estimate, low, high, float(stats.wilcoxon(d).pvalue), effect)


def welch(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> Test:
    """Welch's t-test of mean(a) - mean(b) without assuming equal variances (scipy.stats.ttest_ind,
    equal_var=False), the Welch-Satterthwaite t CI of the difference, and Hedges' g."""
    a, b = _array(a), _array(b)
    method = "Welch t; effect: Hedges' g"
    estimate = float(a.mean() - b.mean()) if len(a) and len(b) else NAN
    if len(a) < 2 or len(b) < 2 or (is_constant(a) and is_constant(b)):
        return Test(method, len(a), len(b), estimate, effect_size=hedges_g(a, b) if len(a) and len(b) else NAN)
    result = stats.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(CONFIDENCE)
    return Test(method, len(a), len(b), estimate, float(ci.low), float(ci.high), float(result.pvalue), hedges_g(a, b))


def _rank_correlation(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho along ``axis``: Pearson's r of the average ranks, as scipy.stats.spearmanr defines it,
    vectorised over the bootstrap's resamples (spearmanr of 2-D input gives a correlation matrix instead)."""
    return stats.pearsonr(stats.rankdata(x, axis=axis), stats.rankdata(y, axis=axis), axis=axis).statistic


def spearman(
    x: np.ndarray | list[float],
    y: np.ndarray | list[float],
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Test:
    """Spearman's rank correlation of paired values (scipy.stats.spearmanr, p from its t approximation), pairs
    with a NaN left out; effect size = rho. CI: percentile bootstrap over pairs resampled together
    (scipy.stats.bootstrap, paired=True). rho is undefined on a resample where x or y is constant (likely when a
    measure takes few values, e.g. active units); such resamples are left out of the percentiles (BCa's jackknife
    fails on them, hence percentile). n < 3 or a constant x or y: NaN; n < 4: no CI."""
    x, y = _array(x), _array(y)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = len(x)
    method = "Spearman rho (scipy.stats.spearmanr); CI: paired percentile bootstrap over runs"
    if n < 3 or is_constant(x) or is_constant(y):
        return Test(method, n, n, NAN)
    result = stats.spearmanr(x, y)
    rho, p = float(result.statistic), float(result.pvalue)
    if n < 4:
        return Test(method, n, n, rho, p=p, effect_size=rho)
    with warnings.catch_warnings():  # constant resamples give NaN with a warning; they are left out below
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        boot = stats.bootstrap(
            (x, y),
            _rank_correlation,
            paired=True,
            vectorized=True,
            n_resamples=resamples,
            method="percentile",
            confidence_level=confidence,
            rng=np.random.default_rng(seed),
        )
    alpha = (1 - confidence) / 2
    low, high = stats.quantile(boot.bootstrap_distribution, [alpha, 1 - alpha], nan_policy="omit")
    return Test(method, n, n, rho, float(low), float(high), p, rho)


def holm(p: np.ndarray | list[float]) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values, controlling the family-wise error rate: the i-th
    smallest of m p-values becomes max_{j <= i} min(1, (m - j + 1) p_(j)). NaN p-values are not counted
    in m and stay NaN."""
    p = _array(p)
    out = np.full_like(p, NAN)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    order = np.argsort(p[ok], kind="stable")
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[ok][order]))
    out[ok] = adjusted
    return out


# -- accuracy against sparsity -------------------------------------------------------------------------
def sparsity_axis(sparsity: np.ndarray | list[float] | float) -> np.ndarray:
    """x = log(1 / (1 - s)): each unit step keeps e^-1 of the remaining weights, so 90%, 99%, 99.9%
    are evenly spaced and the region where accuracy falls (90-99%) is not squeezed into the edge."""
    return -np.log1p(-_array(sparsity))


def axis_sparsity(x: np.ndarray | float) -> np.ndarray:
    """The inverse of ``sparsity_axis``: s = 1 - e^-x."""
    return -np.expm1(-_array(x))


def _sorted_curve(sparsity: np.ndarray | list[float], accuracy: np.ndarray | list[float]) -> tuple[np.ndarray, np.ndarray]:
    s, acc = _array(sparsity), _array(accuracy)
    keep = ~(np.isnan(s) | np.isnan(acc))
    order = np.argsort(s[keep], kind="stable")
    return sparsity_axis(s[keep][order]), acc[keep][order]


def _anchored(
    sparsity: np.ndarray | list[float], accuracy: np.ndarray | list[float], dense: float
) -> tuple[np.ndarray, np.ndarray]:
    """The sorted curve on x = log(1/(1-s)) with the dense model as its point at x = 0 when none is
    measured there; empty when ``dense`` is NaN or nothing is measured."""
    x, acc = _sorted_curve(sparsity, accuracy)
    if math.isnan(dense) or len(x) == 0:
        return np.empty(0), np.empty(0)
    if x[0] > 0:
        x, acc = np.concatenate([[0.0], x]), np.concatenate([[dense], acc])
    return x, acc


def tolerated_sparsity(
    sparsity: np.ndarray | list[float], accuracy: np.ndarray | list[float], dense: float, tolerance: float = 0.01
) -> float:
    """The highest sparsity whose accuracy stays within ``tolerance`` of ``dense`` (1 point by default):
    walking up the curve, the last point inside (accuracy >= dense - tolerance) before the first point
    outside, linearly interpolated on x = log(1/(1-s)) to where the curve crosses dense - tolerance.
    The dense model is the curve's point at sparsity 0 when no point is measured there. Every point
    inside: the highest measured sparsity (a lower bound). No point inside before the first outside: NaN."""
    x, acc = _anchored(sparsity, accuracy, dense)
    if len(x) == 0:
        return NAN
    margin = acc - (dense - tolerance)
    outside = np.flatnonzero(margin < 0)
    if len(outside) == 0:
        return float(axis_sparsity(x[-1]))
    i = int(outside[0])
    if i == 0:
        return NAN
    crossing = x[i - 1] + margin[i - 1] / (margin[i - 1] - margin[i]) * (x[i] - x[i - 1])
    return float(axis_sparsity(crossing))


def curve_auc(sparsity: np.ndarray | list[float], accuracy: np.ndarray | list[float]) -> float:
    """Area under accuracy over x = log(1/(1-s)) between the lowest and highest measured sparsity
    (trapezoid rule), divided by that x range: a mean accuracy over the curve. NaN with one point."""
    x, acc = _sorted_curve(sparsity, accuracy)
    if len(x) < 2 or x[-1] == x[0]:
        return NAN
    return float(integrate.trapezoid(acc, x) / (x[-1] - x[0]))


def drop_at(
    sparsity: np.ndarray | list[float], accuracy: np.ndarray | list[float], dense: float, at: float = 0.9, tolerance: float = 1e-3
) -> float:
    """dense - accuracy at sparsity ``at``: a measured point within ``tolerance`` of ``at`` gives its own
    accuracy (a run at amount 0.9 reaches 0.9 up to the rounding to whole weights: its own accuracy_drop);
    otherwise linear interpolation on x = log(1/(1-s)), the dense model the point at x = 0 when none is
    measured there. NaN beyond the highest measured sparsity (no extrapolation)."""
    x, acc = _anchored(sparsity, accuracy, dense)
    if len(x) == 0:
        return NAN
    distance = np.abs(axis_sparsity(x) - at)
    if distance.min() <= tolerance:
        return float(dense - acc[int(np.argmin(distance))])
    target = float(sparsity_axis(at))
    return NAN if target > x[-1] else float(dense - np.interp(target, x, acc))


def curve_endpoints(
    sparsity: np.ndarray | list[float], accuracy: np.ndarray | list[float], dense: float, tolerance: float = 0.01
) -> dict[str, float]:
    """The endpoints of one curve, a mean curve or one seed's: ``tolerated_sparsity``, ``auc`` and
    ``drop_at_90`` (dense - accuracy at 90% sparsity)."""
    return {
        "tolerated_sparsity": tolerated_sparsity(sparsity, accuracy, dense, tolerance),
        "auc": curve_auc(sparsity, accuracy),
        "drop_at_90": drop_at(sparsity, accuracy, dense),
    }
