"""The structured curves (docs/results.md, "Structured curves"): each seed's drop at half the channels and its
tolerated channel fraction, both against its own f=0 branch; their family of four Welch tests (Holm within it);
and per cell and fraction, the accuracy beside the pruned classifier's parameters, MACs and latency relative to its
dense model. The x axis is the fraction of channels removed (``pruning.amount``), not the weight sparsity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bvp.report.collect import AXIS, Run
from bvp.report.contrasts import SeedCurve, at, deviations, family_name, family_order, holm_family, model_cell, tolerated

STRUCTURE = ("pruning.structure", "channels")  # a structured cell, whatever else it changes
HALF = 0.5  # drop@50ch: the fraction whose latency was measured (0.306x at batch 256, docs/performance.md)
ENDPOINTS = {"drop_at_half": "drop@50ch", "tolerated_channels": "tolerated channel fraction"}
COSTS = {  # the pruned classifier relative to its dense model, per run (bvp.evaluation.cost)
    "params": ("pruned_params", "dense_params"),
    "MACs": ("pruned_macs", "dense_macs"),
    "latency (batch 256)": ("pruned_latency_ms_b256", "dense_latency_ms_b256"),
}


def is_structured(cell: tuple[tuple[str, Any], ...]) -> bool:
    return STRUCTURE in cell


def fraction(run: Run) -> float:
    return float(run.identity[AXIS])


def accuracy(run: Run) -> float:
    return float(run.metrics["finetuned_test_acc"])


def structured_cells(by_cell: dict[Any, list[SeedCurve]]) -> dict[Any, list[SeedCurve]]:
    """The structured cells of ``by_cell``, each seed's curve given its two endpoints (in ``endpoints``) and the
    censoring flags of its tolerated fraction (``censored_channels``, ``thin_channels`` in ``flags``)."""
    out = {}
    for cell, curves in by_cell.items():
        if not is_structured(cell):
            continue
        for curve in curves:
            half = at(curve.runs, HALF)
            curve.endpoints["drop_at_half"] = curve.reference - accuracy(half) if half else math.nan
            tol = tolerated(curve, [fraction(r) for r in curve.runs], [accuracy(r) for r in curve.runs], curve.reference)
            curve.endpoints["tolerated_channels"] = tol.value
            # contrasts.censored reads the flag of endpoint tolerated<suffix> as censored<suffix>
            curve.flags |= {"censored_channels": tol.censored, "thin_channels": tol.thin}
        out[cell] = curves
    return out


def family_rows(cells: dict[Any, list[SeedCurve]]) -> list[dict[str, Any]]:
    """Per data set, the pre-registered four: beta=10 vs beta=1 and beta=1 vs CNN on both endpoints, Welch, Holm
    within these four."""
    out = []
    plain = [c for c in cells if deviations(c) == dict([STRUCTURE])]  # channels and nothing else changed
    for name in sorted({family_name(c) for c in plain}, key=family_order):
        base = dict(next(c for c in plain if family_name(c) == name))
        beta1, beta10, cnn = (model_cell(cells, base, m, b) for m, b in (("beta_vae", 1), ("beta_vae", 10), ("cnn", None)))
        pairs = [("beta=10 vs beta=1", beta10, beta1), ("beta=1 vs CNN", beta1, cnn)]
        out += holm_family(f"structured ({name})", pairs, list(ENDPOINTS))
    return out


def ratio(run: Run, pruned: str, dense: str) -> float:
    a, b = run.metrics.get(pruned), run.metrics.get(dense)
    return float(a) / float(b) if a is not None and b else math.nan


def fraction_rows(cells: dict[Any, list[SeedCurve]]) -> list[dict[str, Any]]:
    """One row per cell and fraction: the seeds measured, the fine-tuned test accuracies, and each of ``COSTS`` as
    the per-run ratios pruned / dense."""
    out = []
    for cell, curves in cells.items():
        runs = [r for c in curves for r in c.runs]
        for f in sorted({round(fraction(r), 9) for r in runs}):
            mine = [r for r in runs if abs(fraction(r) - f) < 1e-9]
            row: dict[str, Any] = {"cell": cell, "fraction": f, "accuracy": np.array([accuracy(r) for r in mine])}
            out.append(row | {name: np.array([ratio(r, *keys) for r in mine]) for name, keys in COSTS.items()})
    return out
