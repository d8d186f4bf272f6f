"""The report's statistics as plain functions of float arrays: confidence intervals of a mean, the paired
and the two-group tests with their effect sizes, Spearman's rank correlation (Bonett-Wright CI, exact permutation
p), Holm's correction, and the endpoints of an accuracy-against-sparsity curve (a tolerated sparsity with its
censoring flags).

Nothing here raises on small or degenerate data: fewer than 2 values, or zero variance, give NaN where a
quantity is undefined (a zero-variance sample has no sampling variance to build an interval or a test
from), and an effect size of 0 where the estimate itself is exactly 0.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from functools import cache

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
    standardised mean difference (Hedges 1981); ~ 1 - 3 / (4 dof - 1). NaN below 2 degrees of freedom: J(1) = 0
    would print every g at n = 2 as 0, where g is undefined (its variance is infinite)."""
    if dof < 2:
        return NAN
    return math.exp(special.gammaln(dof / 2) - special.gammaln((dof - 1) / 2)) / math.sqrt(dof / 2)


def hedges_g(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """(mean(a) - mean(b)) / pooled SD, times J(n1 + n2 - 2): Hedges' g."""
    a, b = _array(a), _array(b)
    dof = len(a) + len(b) - 2
    if len(a) < 1 or len(b) < 1 or dof < 2:
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


EXACT_PERMUTATION_N = 10  # up to here Spearman's p comes from all n! pairings (3.6M at n = 10)
RANDOM_PAIRINGS = 100_000  # beyond it, from this many random pairings (scipy.stats.permutation_test)


@cache
def _permutations(n: int) -> np.ndarray:
    """Every ordering of range(n), one per row (n! rows: 3.6M at n = 10, 36 MB as int8), computed once per n."""
    return np.fromiter(itertools.chain.from_iterable(itertools.permutations(range(n))), np.int8).reshape(-1, n)


def exact_spearman_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided p of Spearman's rho over all n! pairings of x's with y's ranks (average ranks for ties):
    2 * min(P(T >= t), P(T <= t)), T = sum of products of centred ranks, which is rho times a constant for
    fixed marginals (scipy.stats.permutation_test's definition, without ranking each pairing again)."""
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    observed, eps = float(rx @ ry), 1e-9 * float(np.abs(rx) @ np.abs(ry))
    greater = less = 0
    for chunk in np.array_split(_permutations(len(x)), max(1, math.factorial(len(x)) // 200_000)):
        t = ry[chunk] @ rx
        greater, less = greater + int((t >= observed - eps).sum()), less + int((t <= observed + eps).sum())
    total = math.factorial(len(x))
    return min(1.0, 2 * min(greater, less) / total)


def random_pairings_spearman_p(x: np.ndarray, y: np.ndarray, resamples: int = RANDOM_PAIRINGS, seed: int = 0) -> float:
    """Two-sided p of Spearman's rho from ``resamples`` random pairings of x's with y's ranks
    (scipy.stats.permutation_test, permutation_type="pairings"; the same statistic as ``exact_spearman_p``)."""
    rx, ry = stats.rankdata(x), stats.rankdata(y)

    def centred_products(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        a = a - a.mean(axis=axis, keepdims=True)
        return np.sum(a * (b - b.mean(axis=axis, keepdims=True)), axis=axis)

    result = stats.permutation_test(
        (rx, ry), centred_products, permutation_type="pairings", n_resamples=resamples, vectorized=True, rng=seed
    )
    return float(result.pvalue)


def bonett_wright_ci(rho: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """CI of Spearman's rho on the Fisher z scale with Bonett & Wright's (2000) variance (1 + rho^2 / 2) / (n - 3):
    tanh(atanh(rho) -+ z_c * sqrt(that)). It always contains rho and, unlike a bootstrap over few points, has no
    undefined resamples. NaN below n = 4; |rho| = 1 gives the point [rho, rho]."""
    if n < 4 or math.isnan(rho):
        return NAN, NAN
    if abs(rho) == 1:
        return rho, rho
    half = stats.norm.ppf((1 + confidence) / 2) * math.sqrt((1 + rho**2 / 2) / (n - 3))
    z = math.atanh(rho)
    return math.tanh(z - half), math.tanh(z + half)


def spearman(x: np.ndarray | list[float], y: np.ndarray | list[float], confidence: float = CONFIDENCE) -> Test:
    """Spearman's rank correlation of paired values (scipy.stats.spearmanr), pairs with a NaN left out; effect
    size = rho. p: exact over all n! pairings for n <= 10 (``exact_spearman_p``), else from 100,000 random
    pairings (``random_pairings_spearman_p``). CI: Bonett-Wright (``bonett_wright_ci``). n < 3 or a constant x or
    y: NaN."""
    x, y = _array(x), _array(y)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = len(x)
    if n < 3 or is_constant(x) or is_constant(y):
        return Test("Spearman rho", n, n, NAN)
    rho = float(stats.spearmanr(x, y).statistic)
    if n <= EXACT_PERMUTATION_N:
        method = "Spearman rho; p: exact permutation; CI: Bonett-Wright"
        p = exact_spearman_p(x, y)
    else:
        method = f"Spearman rho; p: {RANDOM_PAIRINGS:,} random pairings; CI: Bonett-Wright"
        p = random_pairings_spearman_p(x, y)
    return Test(method, n, n, rho, *bonett_wright_ci(rho, n, confidence), p, rho)


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


@dataclass(frozen=True)
class Tolerated:
    """A tolerated sparsity and how far to trust it: ``censored``, every measured point was within tolerance (the
    value is the highest measured sparsity, a lower bound: report it as '>= value'); ``thin``, the crossing was
    interpolated between the reference and the first pruned point (it rests on one pruned measurement)."""

    value: float
    censored: bool = False
    thin: bool = False


def tolerated(
    sparsity: np.ndarray | list[float], accuracy: np.ndarray | list[float], reference: float, tolerance: float = 0.01
) -> Tolerated:
    """The highest sparsity whose accuracy stays within ``tolerance`` of ``reference`` (1 point by default):
    walking up the curve, the last point inside (accuracy >= reference - tolerance) before the first point
    outside, linearly interpolated on x = log(1/(1-s)) to where the curve crosses reference - tolerance.
    The reference is the curve's point at sparsity 0 when no point is measured there. Every point inside: the
    highest measured sparsity, censored. No point inside before the first outside: NaN."""
    x, acc = _anchored(sparsity, accuracy, reference)
    if len(x) == 0:
        return Tolerated(NAN)
    margin = acc - (reference - tolerance)
    outside = np.flatnonzero(margin < 0)
    if len(outside) == 0:
        return Tolerated(float(axis_sparsity(x[-1])), censored=True)
    i = int(outside[0])
    if i == 0:
        return Tolerated(NAN)
    crossing = x[i - 1] + margin[i - 1] / (margin[i - 1] - margin[i]) * (x[i] - x[i - 1])
    return Tolerated(float(axis_sparsity(crossing)), thin=bool(x[i - 1] == 0))


def tolerated_sparsity(
    sparsity: np.ndarray | list[float], accuracy: np.ndarray | list[float], dense: float, tolerance: float = 0.01
) -> float:
    """``tolerated(...).value``: the tolerated sparsity alone."""
    return tolerated(sparsity, accuracy, dense, tolerance).value


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
