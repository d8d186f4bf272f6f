"""The study's analysis (docs/results.md): each seed's curve measured against its own amount=0 branch, the
pre-registered primary contrasts (Holm within their family only), the exploratory contrasts, and a verdict per
claim of the paper (the page itself: bvp.report.results). The protocol, the endpoints and the verdict rules are
fixed in docs/results.md; the constants below are the same ones, and the tests hold them to it."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bvp.names import MULTIRUN_FILE
from bvp.report import stats
from bvp.report.collect import AXIS, SEED, Run, label, show, sortable, values

REFERENCE_AMOUNT = 0.0  # the reference branch: the same fine-tuning, no pruning
AT = 0.95  # drop@95
DENSE_SIGNATURE = ("dense_test_acc", "dense_val_acc")  # the dense model a branch started from, measured at the branch
TOLERANCE = 0.01  # tolerated sparsity: within 1 point of the reference
SESOI = 0.005  # smallest effect of interest, on both endpoints
ALPHA = 0.05
ENDPOINTS = {"drop_at_95": "drop@95", "tolerated": "tolerated sparsity"}
# the primary curves' settings (conf/experiment/mnist_curves.yaml); a curve that differs in one of these is an
# ablation or a baseline. A key a run lacks (model.recon_weight of the CNN, a record older than the key) takes the
# value the code had before the key existed: ABSENT where that was not the protocol's.
PROTOCOL = {
    "pruning.finetune_loss": "ce",
    "pruning.pruning_fn": "l1_unstructured",
    "pruning.use_global_unstructured": True,
    "pruning.structure": "weights",
    "pruning.steps": 0,
    "pruning.optimizer_state": "fresh",
    "pruning.latent_units": "keep",
    "model.recon_weight": 1.0,
}
ABSENT = {"pruning.optimizer_state": "carry"}  # before 7a2b0ad the dense run's Adam state was always carried over
CELL_KEYS = ("dataset", "dataset_source", "model", "beta", *PROTOCOL)  # what tells the study's cells apart
CONTEXT = "context"  # every other identity key (epochs, lr, sizes, ...): cells compared must agree on all of them
MODEL_KEYS = ("model", "beta", "model.cls_weight")  # come with the model: a Beta-VAE vs CNN contrast ignores them


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and the primary tests that decide it: (contrast, endpoint, claimed sign of a - b),
    sign 0 for a claimed equivalence."""

    name: str
    tests: tuple[tuple[str, str, int], ...]


CLAIMS = (
    Claim(
        "1. beta near 5 beats beta=1 after pruning (beta=5)",
        (("beta=5 vs beta=1", "drop_at_95", -1), ("beta=5 vs beta=1", "tolerated", 1)),
    ),
    Claim(
        "1. beta near 5 beats beta=1 after pruning (beta=3)",
        (("beta=3 vs beta=1", "drop_at_95", -1), ("beta=3 vs beta=1", "tolerated", 1)),
    ),
    Claim("2. at beta=10 accuracy drops severely", (("beta=10 vs beta=1", "drop_at_95", 1),)),
    Claim("3. compression ratios are similar across models", (("beta=1 vs CNN", "tolerated", 0),)),
    Claim("4. reconstruction (and disentanglement) make pruning easier", (("beta=1 vs CNN", "drop_at_95", -1),)),
)


@dataclass
class SeedCurve:
    """One seed's curve of one cell: its amount=0 reference, the dense model before fine-tuning (the old
    reference) and the endpoints against each."""

    cell: tuple[tuple[str, Any], ...]
    seed: int
    runs: list[Run]
    reference: float = math.nan
    dense: float = math.nan
    acc_at_95: float = math.nan
    endpoints: dict[str, float] = field(default_factory=dict)
    flags: dict[str, bool] = field(default_factory=dict)
    left_out: list[Run] = field(default_factory=list)  # branches of another dense model (one_dense_model)


def cell_of(run: Run) -> tuple[tuple[str, Any], ...]:
    """The run's cell: dataset, model, beta, its value of every protocol key (absent: what the code did before
    the key existed), and the rest of its identity but seed and amount (``context``), so runs that differ in any
    setting are never pooled."""
    known = tuple((k, run.identity.get(k, ABSENT.get(k, PROTOCOL.get(k)))) for k in CELL_KEYS)
    rest = {k: v for k, v in run.identity.items() if k not in (*CELL_KEYS, *MODEL_KEYS, SEED, AXIS)}
    return (*known, ("model.cls_weight", run.identity.get("model.cls_weight")), (CONTEXT, tuple(sorted(rest.items()))))


def deviations(cell: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """The protocol keys where the cell differs from the primary curves."""
    return {k: v for k, v in cell if k in PROTOCOL and v is not None and v != PROTOCOL[k]}


def cell_label(cell: tuple[tuple[str, Any], ...]) -> str:
    """``model=beta_vae beta=5`` and, for an ablation, the settings it changes; CNN for the CNN."""
    c = dict(cell)
    base = "CNN" if c["model"] == "cnn" else f"beta={show(c['beta'])}"
    extra = deviations(cell)
    return base + ("" if not extra else " " + label(list(extra), tuple(extra.values())))


def at(runs: list[Run], amount: float) -> Run | None:
    return next((r for r in runs if r.identity.get(AXIS) is not None and abs(float(r.identity[AXIS]) - amount) < 1e-9), None)


def tolerated(curve: SeedCurve, x: np.ndarray | list[float], acc: np.ndarray | list[float], reference: float) -> stats.Tolerated:
    """The tolerated x of one seed's curve (``stats.tolerated`` at :data:`TOLERANCE`); NaN until the curve is
    complete (``flags["complete"]``) with more than two points."""
    if curve.flags["complete"] and len(curve.runs) > 2:
        return stats.tolerated(x, acc, reference, TOLERANCE)
    return stats.Tolerated(math.nan)


def one_dense_model(rows: list[Run]) -> tuple[list[Run], list[Run]]:
    """The branches of one seed's curve that start from its reference's dense model (else from the most common
    one), and the others: a dense model trained again (a lost cache, another machine) is another model, and its
    branches never join the first one's curve."""

    def signature(run: Run) -> tuple[str, ...]:
        return tuple(repr(run.metrics.get(k)) for k in DENSE_SIGNATURE)

    signed = [(signature(r), r) for r in rows]
    ref = at(rows, REFERENCE_AMOUNT)
    main = signature(ref) if ref else Counter(sig for sig, _ in signed).most_common(1)[0][0]
    return [r for sig, r in signed if sig == main], [r for sig, r in signed if sig != main]


def seed_curves(runs: list[Run], plan: dict[str, tuple[int, set[float]]] | None = None) -> list[SeedCurve]:
    """Every seed's curve of every cell, with its endpoints against the amount=0 branch (``reference``) and
    against the dense model before fine-tuning (``*_dense``, the old reference). A tolerated sparsity needs the
    whole curve: every amount its part plans (``planned``) and every amount another seed of the cell has; a seed
    still running gets NaN there (its drop@95 stands once amounts 0 and 0.95 are in). Branches from another dense
    model than the reference's are left out (``left_out``): the curve lacks those amounts."""
    by_curve: dict[tuple[Any, ...], list[Run]] = defaultdict(list)
    for run in runs:
        if "finetuned_test_acc" in run.metrics and AXIS in run.identity:
            by_curve[(cell_of(run), run.identity.get(SEED))].append(run)
    mixed = {}
    for key, rows in by_curve.items():
        by_curve[key], mixed[key] = one_dense_model(rows)
    cell_amounts: dict[Any, set[float]] = defaultdict(set)
    for (cell, _), rows in by_curve.items():
        cell_amounts[cell] |= amounts(rows)
    out = []
    for (cell, seed), rows in sorted(by_curve.items(), key=lambda kv: (tuple(sortable(v) for _, v in kv[0][0]), kv[0][1])):
        curve = SeedCurve(cell, seed, rows, left_out=mixed[(cell, seed)])
        ref, point = at(rows, REFERENCE_AMOUNT), at(rows, AT)
        curve.dense = stats.mean(values(rows, "dense_test_acc"))
        curve.reference = float(ref.metrics["finetuned_test_acc"]) if ref else math.nan
        curve.acc_at_95 = float(point.metrics["finetuned_test_acc"]) if point else math.nan
        sparsity, acc = values(rows, "sparsity"), values(rows, "finetuned_test_acc")
        whole = amounts(rows) >= cell_amounts[cell] | planned_amounts([curve], plan or {})
        curve.flags["complete"] = whole
        for suffix, reference in (("", curve.reference), ("_dense", curve.dense)):
            tol = tolerated(curve, sparsity, acc, reference)
            curve.endpoints[f"drop_at_95{suffix}"] = reference - curve.acc_at_95
            curve.endpoints[f"tolerated{suffix}"] = tol.value
            curve.flags |= {f"censored{suffix}": tol.censored, f"thin{suffix}": tol.thin}
        for key in ("dense_active_units", "dense_kl"):
            curve.endpoints[key] = stats.mean(values(rows, key))
        curve.endpoints |= {"reference": curve.reference, "dense": curve.dense}
        out.append(curve)
    return out


def cells(curves: list[SeedCurve]) -> dict[tuple[tuple[str, Any], ...], list[SeedCurve]]:
    out: dict[tuple[tuple[str, Any], ...], list[SeedCurve]] = defaultdict(list)
    for curve in curves:
        out[curve.cell].append(curve)
    return dict(out)


def amounts(runs: list[Run]) -> set[float]:
    return {round(float(r.identity[AXIS]), 9) for r in runs if r.identity.get(AXIS) is not None}


def study_plan(sweep_dir: Path) -> dict[str, tuple[int, set[float]]]:
    """Each part's plan, by the part's folder (relative to ``sweep_dir``): its number of seeds and its amounts, from
    the multirun.yaml Hydra wrote there (hydra.sweeper.params; the study passes one seed at a time, the params
    keep the plan). Amounts given on the command line (hydra.overrides.task) win over the params, as in Hydra."""
    out = {}
    for path in sweep_dir.rglob(MULTIRUN_FILE):
        hydra = (yaml.safe_load(path.read_text()) or {}).get("hydra", {})
        params = (hydra.get("sweeper") or {}).get("params") or {}
        task = dict(o.lstrip("+").split("=", 1) for o in (hydra.get("overrides") or {}).get("task") or [] if "=" in o)
        if "seed" in params:
            wanted = parsed_amounts(task.get(AXIS, params.get(AXIS, "")))
            out[str(path.parent.relative_to(sweep_dir))] = (len(str(params["seed"]).split(",")), wanted)
    return out


def parsed_amounts(swept: Any) -> set[float]:
    """The amounts of a comma-separated sweep (``0,0.5,0.95``); none where it is not one (``range(...)``): then
    no curve waits for an amount it cannot know."""
    try:
        return {round(float(a), 9) for a in str(swept).split(",") if a.strip()}
    except ValueError:
        return set()


def _parts(curves: list[SeedCurve]) -> set[str]:
    return {str(Path(r.run_dir).parent) for c in curves for r in c.runs}


def planned(curves: list[SeedCurve], plan: dict[str, tuple[int, set[float]]]) -> int | None:
    """The seeds planned for a cell: the largest plan among the parts its runs come from (None: no plan found)."""
    found = [plan[p][0] for p in _parts(curves) if p in plan]
    return max(found) if found else None


def planned_amounts(curves: list[SeedCurve], plan: dict[str, tuple[int, set[float]]]) -> set[float]:
    return set().union(*(plan[p][1] for p in _parts(curves) if p in plan))


# -- contrasts -----------------------------------------------------------------------------------------
def _find(by_cell: dict, want: dict[str, Any], ignore: tuple[str, ...] = ()) -> list[SeedCurve] | None:
    """The cell whose keys equal ``want``, keys in ``ignore`` aside."""
    for cell, curves in by_cell.items():
        if {k: v for k, v in cell if k not in ignore} == {k: v for k, v in want.items() if k not in ignore}:
            return curves
    return None


DATASETS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "dsprites": "dSprites"}
SOURCES = {"jpeg-stand-in": "JPEG stand-in"}  # CIFAR-10 (JPEG stand-in): never called CIFAR-10 alone
FAMILIES = ("primary (", "structured (", "exploratory (", "link (")  # how a family of tests names its data


def model_cell(by_cell: dict, base: dict[str, Any], model: str, beta: Any) -> list[SeedCurve]:
    """The curves of ``model`` at ``beta`` among the cells that agree with ``base`` elsewhere (the CE weight comes
    with the model); [] if there is none."""
    return _find(by_cell, base | {"model": model, "beta": beta}, ignore=("model.cls_weight",)) or []


def family_name(cell: tuple[tuple[str, Any], ...]) -> str:
    """``MNIST``, with its data source where it is not the dataset itself: ``CIFAR-10 (JPEG stand-in)``,
    ``dSprites (procedural-v1)``."""
    c = dict(cell)
    data, source = str(c["dataset"]), c.get("dataset_source")
    return DATASETS.get(data, data) + (f" ({SOURCES.get(source, source)})" if source not in (None, data) else "")


def data_of(family: str) -> str:
    """A family's data name: ``primary (CIFAR-10 (JPEG stand-in))`` -> ``CIFAR-10 (JPEG stand-in)``."""
    return family.partition(" (")[2][:-1]


def family_order(name: str) -> tuple[int, str]:
    """Sort key of a data name (``MNIST``) or a family (``primary (MNIST)``): in the order of DATASETS, then by name."""
    data = data_of(name) if name.startswith(FAMILIES) else name
    names = list(DATASETS.values())
    return next((i for i, d in enumerate(names) if data.startswith(d)), len(names)), data


def endpoint_values(curves: list[SeedCurve], endpoint: str) -> np.ndarray:
    x = np.array([c.endpoints[endpoint] for c in curves], dtype=float)
    return x[~np.isnan(x)]


def censored(curves: list[SeedCurve], endpoint: str) -> int:
    """How many of the seeds' values of ``endpoint`` are censored (tolerated sparsity at the highest amount)."""
    suffix = endpoint.removeprefix("tolerated") if endpoint.startswith("tolerated") else None
    return 0 if suffix is None else sum(c.flags.get(f"censored{suffix}", False) for c in curves)


def _row(family: str, comparison: str, endpoint: str, test: stats.Test, **extra: Any) -> dict[str, Any]:
    return {"family": family, "comparison": comparison, "endpoint": endpoint, **asdict(test), **extra}


def welch_row(family: str, comparison: str, endpoint: str, a: list[SeedCurve], b: list[SeedCurve]) -> dict[str, Any]:
    test = stats.welch(endpoint_values(a, endpoint), endpoint_values(b, endpoint))
    return _row(family, comparison, endpoint, test, censored=censored(a, endpoint) + censored(b, endpoint))


def paired_row(family: str, comparison: str, endpoint: str, a: list[SeedCurve], b: list[SeedCurve]) -> dict[str, Any]:
    """a - b per seed (the two curves branch from the same dense model of each seed): a paired t-test."""
    other = {c.seed: c.endpoints[endpoint] for c in b}
    d = np.array([c.endpoints[endpoint] - other[c.seed] for c in a if c.seed in other], dtype=float)
    test = stats.paired_t(d[~np.isnan(d)])
    return _row(family, comparison, endpoint, test, censored=censored(a, endpoint) + censored(b, endpoint))


def primary_rows(by_cell: dict) -> list[dict[str, Any]]:
    """The pre-registered family, per dataset and data source: beta 3, 5, 10 vs beta 1 and beta 1 vs the CNN, on
    drop@95 and tolerated sparsity (Welch), Holm over all eight (a test that cannot be computed counts as p = 1)."""
    out = []
    for name in sorted({family_name(c) for c in by_cell if not deviations(c)}, key=family_order):
        base = dict(next(c for c in by_cell if family_name(c) == name and not deviations(c)))
        primary = base | PROTOCOL
        beta1 = model_cell(by_cell, primary, "beta_vae", 1)
        pairs = [(f"beta={b} vs beta=1", model_cell(by_cell, primary, "beta_vae", b), beta1) for b in (3, 5, 10)]
        pairs.append(("beta=1 vs CNN", beta1, model_cell(by_cell, primary, "cnn", None)))
        out += holm_family(f"primary ({name})", pairs, list(ENDPOINTS))
    return out


Pair = tuple[str, list[SeedCurve], list[SeedCurve]]  # (comparison, a, b): a - b


def holm_family(family: str, pairs: list[Pair], endpoints: list[str]) -> list[dict[str, Any]]:
    """Welch's test of every pair on every endpoint, Holm-corrected within these tests only (a test that cannot
    be computed counts as p = 1 and gets no p_holm)."""
    rows = [welch_row(family, c, e, a, b) for c, a, b in pairs for e in endpoints]
    p = np.array([r["p"] for r in rows], dtype=float)
    for row, p_holm in zip(rows, stats.holm(np.where(np.isnan(p), 1.0, p)), strict=True):
        row["p_holm"] = math.nan if math.isnan(row["p"]) else float(p_holm)
    return rows


def exploratory_rows(by_cell: dict) -> list[dict[str, Any]]:
    """Everything else, unadjusted: the primary contrasts against the old reference (the dense model before
    fine-tuning) and on the dense models (accuracy, active units, KL), and each ablation or baseline against its
    primary twin (paired by seed where both branch from one dense model, Welch where the dense models differ)."""
    out = []
    for cell, curves in by_cell.items():
        extra = deviations(cell)
        twin = _find(by_cell, dict(cell) | {k: PROTOCOL[k] for k in extra}) if len(extra) == 1 else None
        if twin is None:
            continue
        key = next(iter(extra))
        dense = {c.seed: c.dense for c in twin}  # one dense model per seed: the same dense accuracy on both sides
        same = [math.isclose(dense.get(c.seed, math.nan), c.dense, abs_tol=1e-9) for c in curves]  # means of a float
        shared = key.startswith("pruning.") and all(same)
        row = paired_row if shared else welch_row
        name = f"{cell_label(cell)} vs {cell_label(twin[0].cell)}"
        metrics = ["drop_at_95", *(["tolerated"] if len(amounts([r for c in curves for r in c.runs])) > 2 else [])]
        out += [row(f"exploratory ({family_name(cell)})", name, e, curves, twin) for e in metrics]
    for cell in [c for c in by_cell if not deviations(c)]:
        beta1 = _find(by_cell, dict(cell) | {"model": "beta_vae", "beta": 1}, ignore=("model.cls_weight",))
        if beta1 is None or by_cell[cell] is beta1:
            continue
        cnn = dict(cell)["model"] == "cnn"  # oriented as the primary contrasts: beta=b vs beta=1, beta=1 vs CNN
        a, b = (beta1, by_cell[cell]) if cnn else (by_cell[cell], beta1)
        what = "beta=1 vs CNN" if cnn else f"{cell_label(cell)} vs beta=1"
        latent = () if cnn else ("dense_active_units", "dense_kl")  # no KL in a CNN
        for endpoint in ("drop_at_95_dense", "tolerated_dense", *latent):
            if all(len(endpoint_values(c, endpoint)) for c in (a, b)):  # measured on both sides
                out.append(welch_row(f"exploratory ({family_name(cell)})", what, endpoint, a, b))
    return out


def verdict(claim: Claim, rows: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The pre-registered rule (docs/results.md) applied to the claim's primary tests."""
    found = [next((r for r in rows if r["comparison"] == c and r["endpoint"] == e), None) for c, e, _ in claim.tests]
    if any(r is None or min(r["n1"], r["n2"]) < 2 for r in found):
        return "inconclusive (fewer than 2 seeds in a cell)", [r for r in found if r is not None]
    if any(math.isnan(r["p_holm"]) for r in found):
        return "inconclusive (a test is undefined: its values are constant)", found
    signs = [s for _, _, s in claim.tests]
    significant = [r["p_holm"] < ALPHA for r in found]
    inside = [r["ci_low"] > -SESOI and r["ci_high"] < SESOI for r in found]
    if 0 in signs:  # a claimed equivalence
        outcome = "refuted" if any(significant) else "confirmed" if all(inside) else "inconclusive"
    else:
        against = any(sig and np.sign(r["estimate"]) == -s for sig, r, s in zip(significant, found, signs, strict=True))
        toward = any(sig and np.sign(r["estimate"]) == s for sig, r, s in zip(significant, found, signs, strict=True))
        outcome = "refuted" if against or all(inside) else "confirmed" if toward else "inconclusive"
    return outcome, found
