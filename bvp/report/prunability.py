"""Disentanglement of the dense models and its link to prunability (issue 15): the dense models' measures per
setting, one point per seed's sparsity curve (its dense model's measures beside the curve's endpoints), and
Spearman's rank correlation of each measure with each endpoint, run by run: beta is a knob, these are
measurements, and two seeds at one beta can differ widely."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from typing import Any

import numpy as np

from bvp.identity import dense_identity
from bvp.report import stats
from bvp.report.collect import SEED, Run, group_runs, label, sortable, values, varying_keys
from bvp.report.tables import Curve, ci_cell, count, md_table, num, p_cell, summary_rows

MEASURES = {  # of the dense model at the branch point, on the test split (bvp.evaluation.measure)
    "dense_mig": "MIG",  # dSprites only: it needs the ground-truth factors
    "dense_label_mig": "label-MIG",
    "dense_label_informative_dims": "label-informative dims",
    "dense_active_units": "active units (KL)",
    "dense_active_units_cov": "active units (Burda)",
}
ENDPOINTS = {"tolerated_sparsity": "tolerated sparsity", "drop_at_90": "drop at 90% sparsity"}  # of a seed's curve
COLOUR_KEYS = ["model", "beta"]


def branch_epoch(identity: dict[str, Any]) -> Any:
    """The epoch the dense model branches at: ``pruning.prune_epoch``, which is ``${epochs}`` (and so not in
    the identity) unless a config sets it, as pruning=gradual does."""
    return identity.get("pruning.prune_epoch", identity.get("epochs"))


def dense_models(runs: list[Run]) -> list[Run]:
    """One Run per dense model among ``runs``, identified as the dense-model cache identifies it
    (bvp.identity.dense_identity: no pruning settings, plus the branch epoch), so a model that branched into
    several prunings counts once; its metrics are the mean of each measure over those runs."""
    by_model: dict[tuple[tuple[str, Any], ...], list[Run]] = defaultdict(list)
    for run in runs:
        by_model[tuple(sorted(dense_identity(run.identity, branch_epoch(run.identity)).items()))].append(run)
    return [
        Run(rows[0].run_dir, "done", "", dict(model), {m: stats.mean(values(rows, m)) for m in MEASURES if values(rows, m).size})
        for model, rows in by_model.items()
    ]


def dense_table(runs: list[Run], resamples: int) -> list[dict[str, Any]]:
    """disentanglement.csv: per setting of the dense models (every key of theirs that varies, seed aside), each
    measure's n, mean, SD and 95% t and BCa CIs over the dense models (summary.csv's columns)."""
    models = dense_models(runs)
    keys = varying_keys(models)
    return summary_rows(group_runs(models, keys), keys, resamples, list(MEASURES))


def dense_markdown(rows: list[dict[str, Any]]) -> list[str]:
    present = [m for m in MEASURES if rows and f"{m}_n" in rows[0]]
    if not present:
        return []
    lines = [
        "",
        "## Disentanglement of the dense models",
        "",
        "Each dense model (one seed of one setting, counted once however many prunings branched from it), measured "
        "at the branch point on the test split: MIG (Chen et al. 2018, as disentanglement_lib computes it; dSprites "
        "only), label-MIG (gap between the two latent dimensions most informative about the class, / H(y)), "
        "label-informative dims (I(mu_d; y) >= 5% of H(y)), active units by KL (> 0.01 nats) and by Burda et al. "
        "(2016) (Cov_x E[z|x] > 0.01). Cells: mean [95% t CI] n (disentanglement.csv).",
        "",
    ]
    table = [
        [r["group"], count(r["n"])]
        + [f"{num(r[f'{m}_mean'])} {ci_cell(r[f'{m}_t_low'], r[f'{m}_t_high'])} n={count(r[f'{m}_n'])}" for m in present]
        for r in rows
    ]
    return lines + md_table(["dense models", "n", *(MEASURES[m] for m in present)], table)


def points(curves: list[Curve]) -> list[dict[str, Any]]:
    """prunability.csv: one point per seed's curve (one dense model under one pruning setting): the curve's
    keys, seed, stratum (dataset and pruning setting: points are compared only within one), its endpoints,
    and its dense model's measures (mean over the curve's runs, which share that model)."""
    out = []
    for curve in curves:
        after = set(curve.key) - set(dense_identity(curve.key, 0))  # the pruning settings among the curve's keys
        strata = [k for k in curve.key if k == "dataset" or k in after]
        stratum = label(strata, tuple(curve.key[k] for k in strata), empty="")
        for seed, rows in zip(curve.seeds, curve.seed_runs, strict=True):
            point = {k: seed[k] for k in (*curve.key, SEED, "points", *ENDPOINTS)} | {"stratum": stratum}
            point |= {"model": rows[0].identity.get("model"), "beta": rows[0].identity.get("beta")}
            out.append(point | {m: stats.mean(values(rows, m)) for m in MEASURES})
    return out


def colour(point: dict[str, Any]) -> str:
    """What a point is coloured by: its model and beta."""
    return label(COLOUR_KEYS, tuple(point.get(k) for k in COLOUR_KEYS))


def measured(points: list[dict[str, Any]]) -> list[str]:
    """The measures with a finite value at some point."""
    return [m for m in MEASURES if any(np.isfinite(p[m]) for p in points)]


def spearman_rows(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per stratum, measure and endpoint with at least one point that has both: Spearman's rho across the
    Beta-VAE points (stats.spearman; the CNN is another model, never pooled with them), as a stats.csv row
    (comparison ``spearman <measure> vs <endpoint> (<stratum>)``, metric ``rho``) with its stratum, measure and
    endpoint."""
    out = []
    strata: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for point in points:
        if point.get("model") != "cnn":
            strata[point["stratum"]].append(point)
    for stratum in sorted(strata, key=sortable):
        for measure in MEASURES:
            x = np.array([p[measure] for p in strata[stratum]], dtype=float)
            for endpoint in ENDPOINTS:
                y = np.array([p[endpoint] for p in strata[stratum]], dtype=float)
                if not np.any(np.isfinite(x) & np.isfinite(y)):
                    continue
                comparison = f"spearman {measure} vs {endpoint}" + (f" ({stratum})" if stratum else "")
                row = {"comparison": comparison, "metric": "rho", **asdict(stats.spearman(x, y))}
                out.append(row | {"stratum": stratum, "measure": measure, "endpoint": endpoint})
    return out


def spearman_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """summary.md's "Disentanglement and prunability" (``rows`` with their p_holm)."""
    if not rows:
        return []
    lines = [
        "",
        "## Disentanglement and prunability",
        "",
        "One point per Beta-VAE dense model and pruning setting (one seed's sparsity curve, prunability.csv; the CNN is "
        "never pooled with them): the dense model's measures against the curve's endpoints (tolerated sparsity: within "
        "1 point of dense; drop at 90% sparsity), correlated separately per dataset and pruning setting (the stratum). "
        "rho: Spearman's rank correlation; p: exact permutation over all pairings up to n = 10, else the t "
        "approximation; 95% CI: Bonett-Wright (Fisher z, variance (1 + rho^2/2)/(n - 3)), none below n = 4. p_holm: "
        "Holm within this exploratory report. A drop is a cost: a measure that helps pruning correlates positively with "
        "the tolerated sparsity and negatively with the drop. Figure: disentanglement*.png.",
        "",
    ]
    table = [
        [
            *(r["stratum"] or "all", MEASURES[r["measure"]], ENDPOINTS[r["endpoint"]], count(r["n1"]), num(r["estimate"])),
            *(ci_cell(r["ci_low"], r["ci_high"]), p_cell(r["p"]), p_cell(r["p_holm"])),
        ]
        for r in rows
    ]
    return lines + md_table(["stratum", "measure", "endpoint", "n", "rho", "95% CI", "p", "p_holm"], table)
