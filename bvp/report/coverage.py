"""How often the report's 95% CIs of a mean cover the true mean, on simulated normal samples of a
sweep's size (n seeds): the t interval and the BCa bootstrap, against the percentile bootstrap the
report used before. A check of the method, not a test: ``python -m bvp.report.coverage`` (seconds on
one core with the defaults)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from bvp.report.stats import bootstrap_ci, t_ci


def coverage(n: int, simulations: int = 1000, resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Fraction of ``simulations`` N(0, 1) samples of size ``n`` whose 95% CI contains 0, per method."""
    rng = np.random.default_rng(seed)
    hits = {"t": 0, "BCa": 0, "percentile": 0}
    for i in range(simulations):
        x = rng.standard_normal(n)
        cis = {"t": t_ci(x)} | {m: bootstrap_ci(x, resamples, seed=i, method=m) for m in ("BCa", "percentile")}
        for method, (low, high) in cis.items():
            hits[method] += bool(low <= 0.0 <= high)
    return {method: h / simulations for method, h in hits.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bvp.report.coverage", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, nargs="+", default=[5, 10], help="sample sizes (default 5 10)")
    parser.add_argument("--simulations", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args(argv)
    print("| n | t | BCa | percentile bootstrap |\n|---|---|---|---|")
    for n in args.n:
        c = coverage(n, args.simulations, args.resamples)
        print(f"| {n} | {c['t']:.3f} | {c['BCa']:.3f} | {c['percentile']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
