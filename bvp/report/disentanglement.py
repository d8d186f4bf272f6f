"""The dSprites study (docs/results.md, "dSprites: disentanglement and prunability"): each dense model's MIG (test
split) and DCI (validation split, the disentanglement monitor's branch point) beside its curve's endpoints, per
beta; and the pre-registered link, Spearman's rho of MIG and of DCI disentanglement against drop@95 and tolerated
sparsity across the Beta-VAE dense models (the CNN never pooled with them), Holm within those four tests."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np

from bvp.report import stats
from bvp.report.collect import branch_point, values
from bvp.report.contrasts import ALPHA, ENDPOINTS, SeedCurve, censored, deviations

FACTOR_DATASETS = ("dsprites",)  # the data sets with ground-truth factors: their study is this one
DCI = ("dci_disentanglement", "dci_completeness", "dci_informativeness")
MEASURES = {"mig": "MIG", **{k: "DCI " + k.removeprefix("dci_") for k in DCI}}
LINKED = ("mig", "dci_disentanglement")  # the measures the pre-registered tests correlate with the endpoints
HELPS = {"drop_at_95": -1, "tolerated": 1}  # the sign of rho if disentanglement makes pruning easier
PRACTICAL_RHO = 0.3  # every CI inside +-0.3: no correlation of practical size


def is_factor_data(cell: tuple[tuple[str, Any], ...]) -> bool:
    return dict(cell)["dataset"] in FACTOR_DATASETS


def measures(curve: SeedCurve) -> dict[str, float]:
    """The seed's dense model: MIG of its test codes (``dense_mig``) and DCI at its branch point (NaN if not measured)."""
    point = branch_point(curve.runs)
    out = {"mig": stats.mean(values(curve.runs, "dense_mig"))}
    return out | {k: float(point[k]) if isinstance(point.get(k), (int, float)) else math.nan for k in DCI}


def link_rows(family: str, cells: dict[Any, list[SeedCurve]]) -> list[dict[str, Any]]:
    """The four tests: rho of each of LINKED against each endpoint across the Beta-VAE seed curves of the primary
    protocol; Holm within the four (a test that cannot be computed counts as p = 1)."""
    curves = [c for cell, cs in cells.items() if not deviations(cell) and dict(cell)["model"] != "cnn" for c in cs]
    rows = []
    for measure in LINKED:
        x = np.array([measures(c)[measure] for c in curves], dtype=float)
        for endpoint in ENDPOINTS:
            y = np.array([c.endpoints[endpoint] for c in curves], dtype=float)
            test = stats.spearman(x, y)
            row = {"family": family, "comparison": f"rho({MEASURES[measure]}) over the Beta-VAEs", "endpoint": endpoint}
            rows.append(row | asdict(test) | {"censored": censored(curves, endpoint)})
    p = np.array([r["p"] for r in rows], dtype=float)
    for row, p_holm in zip(rows, stats.holm(np.where(np.isnan(p), 1.0, p)), strict=True):
        row["p_holm"] = math.nan if math.isnan(row["p"]) else float(p_holm)
    return rows


def link_verdict(rows: list[dict[str, Any]]) -> str:
    """The pre-registered rule: confirmed if a Holm-significant rho has the helpful sign and none the other;
    refuted if one has the other, or if every CI lies inside +-PRACTICAL_RHO; else inconclusive."""
    if not rows or any(math.isnan(r["p_holm"]) or math.isnan(r["ci_low"]) for r in rows):
        return "inconclusive (too few dense models, or a constant measure)"
    sig = [(np.sign(r["estimate"]), HELPS[r["endpoint"]]) for r in rows if r["p_holm"] < ALPHA]
    if any(s == -h for s, h in sig):
        return "refuted"
    if sig:
        return "confirmed"
    inside = all(r["ci_low"] > -PRACTICAL_RHO and r["ci_high"] < PRACTICAL_RHO for r in rows)
    return "refuted" if inside else "inconclusive"
