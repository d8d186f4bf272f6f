"""The study's answer (docs/results.md): each seed's curve measured against its own amount=0 branch, the
pre-registered primary contrasts (Holm within their family only), the exploratory contrasts, and a verdict per
claim of the paper. The protocol, the endpoints and the verdict rules are fixed in docs/results.md; the
constants below are the same ones, and the tests hold them to it."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bvp.io import atomic_write_bytes
from bvp.names import MULTIRUN_FILE
from bvp.report import stats
from bvp.report.collect import AXIS, SEED, Run, done_runs, label, show, sortable, values
from bvp.report.tables import md_table, p_cell

REFERENCE_AMOUNT = 0.0  # the reference branch: the same fine-tuning, no pruning
AT = 0.95  # drop@95
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


def seed_curves(runs: list[Run], plan: dict[str, tuple[int, set[float]]] | None = None) -> list[SeedCurve]:
    """Every seed's curve of every cell, with its endpoints against the amount=0 branch (``reference``) and
    against the dense model before fine-tuning (``*_dense``, the old reference). A tolerated sparsity needs the
    whole curve: every amount its part plans (``planned``) and every amount another seed of the cell has; a seed
    still running gets NaN there (its drop@95 stands once amounts 0 and 0.95 are in)."""
    by_curve: dict[tuple[Any, ...], list[Run]] = defaultdict(list)
    for run in runs:
        if "finetuned_test_acc" in run.metrics and AXIS in run.identity:
            by_curve[(cell_of(run), run.identity.get(SEED))].append(run)
    cell_amounts: dict[Any, set[float]] = defaultdict(set)
    for (cell, _), rows in by_curve.items():
        cell_amounts[cell] |= amounts(rows)
    out = []
    for (cell, seed), rows in sorted(by_curve.items(), key=lambda kv: (tuple(sortable(v) for _, v in kv[0][0]), kv[0][1])):
        curve = SeedCurve(cell, seed, rows)
        ref, point = at(rows, REFERENCE_AMOUNT), at(rows, AT)
        curve.dense = stats.mean(values(rows, "dense_test_acc"))
        curve.reference = float(ref.metrics["finetuned_test_acc"]) if ref else math.nan
        curve.acc_at_95 = float(point.metrics["finetuned_test_acc"]) if point else math.nan
        sparsity, acc = values(rows, "sparsity"), values(rows, "finetuned_test_acc")
        whole = amounts(rows) >= cell_amounts[cell] | planned_amounts([curve], plan or {})
        curve.flags["complete"] = whole
        for suffix, reference in (("", curve.reference), ("_dense", curve.dense)):
            tol = stats.tolerated(sparsity, acc, reference, TOLERANCE) if whole and len(rows) > 2 else stats.Tolerated(math.nan)
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
    keep the plan)."""
    out = {}
    for path in sweep_dir.rglob(MULTIRUN_FILE):
        params = ((yaml.safe_load(path.read_text()) or {}).get("hydra", {}).get("sweeper") or {}).get("params") or {}
        if "seed" in params:
            wanted = {round(float(a), 9) for a in str(params.get(AXIS, "")).split(",") if a.strip()}
            out[str(path.parent.relative_to(sweep_dir))] = (len(str(params["seed"]).split(",")), wanted)
    return out


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


def family_name(cell: tuple[tuple[str, Any], ...]) -> str:
    """``mnist``, with its data source where it is not the dataset itself (dSprites: official or procedural)."""
    c = dict(cell)
    source = c.get("dataset_source")
    return str(c["dataset"]) + (f" ({source})" if source not in (None, c["dataset"]) else "")


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
    for name in sorted({family_name(c) for c in by_cell if not deviations(c)}):
        base = dict(next(c for c in by_cell if family_name(c) == name and not deviations(c)))
        primary = base | PROTOCOL

        def cell(model: str, beta: Any, primary: dict = primary) -> list[SeedCurve]:
            return _find(by_cell, primary | {"model": model, "beta": beta}, ignore=("model.cls_weight",)) or []

        beta1 = cell("beta_vae", 1)
        pairs = [(f"beta={b} vs beta=1", cell("beta_vae", b), beta1) for b in (3, 5, 10)]
        pairs.append(("beta=1 vs CNN", beta1, cell("cnn", None)))
        family = [welch_row(f"primary ({name})", c, e, a, b) for c, a, b in pairs for e in ENDPOINTS]
        p = np.array([r["p"] for r in family], dtype=float)
        for row, p_holm in zip(family, stats.holm(np.where(np.isnan(p), 1.0, p)), strict=True):
            row["p_holm"] = math.nan if math.isnan(row["p"]) else float(p_holm)
        out += family
    return out


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
        shared = key.startswith("pruning.") and all(dense.get(c.seed) == c.dense for c in curves)
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


# -- docs/results.md -----------------------------------------------------------------------------------
BEGIN, END = "<!-- bvp-report:begin", "<!-- bvp-report:end -->"
NAMES = ENDPOINTS | {
    "drop_at_95_dense": "drop@95 vs dense (old reference)",
    "tolerated_dense": "tolerated vs dense (old reference)",
    "dense_active_units": "dense active units",
    "dense_kl": "dense KL (nats)",
}


def _num(x: float, digits: int = 4) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _ci(low: float, high: float) -> str:
    return "-" if math.isnan(low) else f"[{_num(low)}, {_num(high)}]"


def _mean_ci(x: np.ndarray) -> str:
    return f"{_num(stats.mean(x))} {_ci(*stats.t_ci(x))}"


def results_markdown(runs: list[Run], sweep_dir: Path, figures: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
    """The generated part of docs/results.md and every contrast row (contrasts.csv)."""
    done, _ = done_runs(runs)  # one run per identity
    plan = study_plan(sweep_dir)
    curves = seed_curves(done, plan)
    by_cell = cells(curves)
    primary, exploratory = primary_rows(by_cell), exploratory_rows(by_cell)
    commits = sorted({f"{r.code.get('commit') or 'unknown'}{' (dirty)' if r.code.get('dirty') else ''}" for r in done})
    hours = sum(float(r.timing.get("fit_seconds") or 0) for r in done) / 3600
    lines = [
        f"{len(done)} finished runs (of {len(runs)} records) in `{sweep_dir}`, from code {', '.join(commits) or '-'}; "
        f"{hours:.2f} hours of training and fine-tuning (the sum of the runs' fit_seconds).",
        "",
        "### Verdicts",
        "",
        "Each claim's pre-registered tests (Welch t on per-seed values, Holm within the primary family of its data). "
        "Estimates are a - b: a drop is a cost (lower is better), a tolerated sparsity a gain (higher is better).",
        "",
    ]
    rows = []
    for family in sorted({r["family"] for r in primary}):
        tests = [r for r in primary if r["family"] == family]
        members = [c for cell, c in by_cell.items() if f"primary ({family_name(cell)})" == family and not deviations(cell)]
        want = max((planned(c, plan) or 0 for c in members), default=0) or None
        for claim in CLAIMS:
            outcome, found = verdict(claim, tests)
            for r in found or [None]:
                note = [] if r is None or not r["censored"] else [f"{r['censored']} censored values"]
                if want is None:
                    note.append("plan unknown (no multirun.yaml): completeness not checked")
                elif r is not None and min(r["n1"], r["n2"]) < want:
                    note.append(f"incomplete: {min(r['n1'], r['n2'])} of {want} seeds")
                rows.append(
                    [
                        family.removeprefix("primary (").removesuffix(")"),
                        claim.name,
                        f"**{outcome}**",
                        r["comparison"] if r else "-",
                        NAMES[r["endpoint"]] if r else "-",
                        f"{_num(r['estimate'])} {_ci(r['ci_low'], r['ci_high'])}" if r else "-",
                        "-" if r is None else f"{r['n1']}, {r['n2']}",
                        p_cell(r["p_holm"]) if r else "-",
                        "; ".join(note),
                    ]
                )
    lines += md_table(["data", "claim", "verdict", "contrast", "endpoint", "estimate [95% CI]", "n", "p (Holm)", "note"], rows)
    lines += [
        "",
        "### Cells",
        "",
        "Per cell, mean [95% t CI] over seeds. reference: fine-tuned test accuracy of the "
        "amount=0 branch; dense: before fine-tuning (the old reference). Tolerated: a censored value (every amount "
        "within 1 point) counts as the highest amount, so a mean with one is a lower bound (marked ≥); the last "
        "columns count the censored values and the crossings that rest on one pruned point (thin).",
        "",
    ]
    rows = []
    for cell, members in by_cell.items():
        want, whole = planned(members, plan), sum(c.flags["complete"] for c in members)
        seeds = (
            f"{whole}"
            + (f" of {want}" if want else " (plan unknown)")
            + (f", {len(members) - whole} running" if whole < len(members) else "")
        )
        measured = sorted(amounts([r for c in members for r in c.runs]))
        ends = {e: endpoint_values(members, e) for e in ("drop_at_95", "tolerated", "drop_at_95_dense")}
        flags = f"{sum(c.flags['censored'] for c in members)} / {sum(c.flags['thin'] for c in members)}"
        rows.append(
            [
                family_name(cell),
                cell_label(cell),
                seeds,
                ", ".join(f"{a:g}" for a in measured),
                _mean_ci(endpoint_values(members, "reference")),
                _mean_ci(endpoint_values(members, "dense")),
                _mean_ci(ends["drop_at_95"]),
                ("≥ " if any(c.flags["censored"] for c in members) else "") + _mean_ci(ends["tolerated"]),
                flags,
                _mean_ci(ends["drop_at_95_dense"]),
                _mean_ci(endpoint_values(members, "dense_active_units")),
            ]
        )
    header = [
        "data",
        "cell",
        "complete seeds",
        "amounts",
        "reference acc",
        "dense acc",
        "drop@95",
        "tolerated",
        "censored / thin",
    ]
    lines += md_table([*header, "drop@95 vs dense", "dense active units"], rows)
    for title, family, note in (
        ("Primary contrasts", primary, "The pre-registered family: Welch t, 95% Welch CI, Hedges' g; p_holm within it."),
        (
            "Exploratory contrasts",
            exploratory,
            "Not used for any verdict; p unadjusted. Ablations and baselines against "
            "their primary twin: paired t over seeds where both branch from one dense model (a pruning setting), Welch "
            "where the dense models differ.",
        ),
    ):
        lines += ["", f"### {title}", "", note, ""]
        table = [
            [
                r["family"].partition(" (")[2][:-1],
                r["comparison"],
                NAMES[r["endpoint"]],
                f"{r['n1']}, {r['n2']}",
                _num(r["estimate"]),
                _ci(r["ci_low"], r["ci_high"]),
                p_cell(r["p"]),
                p_cell(r.get("p_holm", math.nan)),
                _num(r["effect_size"], 2),
                str(r["censored"]),
            ]
            for r in family
        ]
        lines += (
            md_table(["data", "comparison", "endpoint", "n", "estimate", "95% CI", "p", "p_holm", "g", "censored"], table)
            if table
            else ["none yet"]
        )
    if figures:
        lines += ["", "### Figures", ""] + [f"![{name}]({path})" for name, path in figures.items()]
    return "\n".join(lines) + "\n", primary + exploratory


class ResultsPageError(ValueError):
    """--results names a page bvp-report cannot write its block into."""


def check_results_page(path: Path) -> str:
    """The page's text, if it exists and holds both markers; else ResultsPageError, before anything is written."""
    try:
        text = path.read_text()
    except OSError as err:
        raise ResultsPageError(
            f"--results={path}: cannot be read ({err.strerror}); give a page such as docs/results.md"
        ) from None
    if BEGIN not in text or END not in text:
        raise ResultsPageError(f"--results={path}: no '{BEGIN} ... -->' and '{END}' markers to write between; add them")
    return text


def write_results(path: Path, block: str) -> None:
    """Replace the generated block of ``path`` (between the bvp-report markers), keeping the rest as written."""
    text = check_results_page(path)
    head, rest = text.split(BEGIN, 1)
    marker, _, tail = rest.partition(END)
    atomic_write_bytes(path, (head + BEGIN + marker.split("-->", 1)[0] + "-->\n" + block + END + tail).encode())
