"""The generated block of docs/results.md: the verdicts (per claim, and claims x data sets), the cells, the primary
and exploratory contrasts (bvp.report.contrasts), the structured curves (bvp.report.structured), the compute each
part took, and the figures; written between the page's bvp-report markers, the rest of the page kept as written."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from bvp.io import atomic_write_bytes
from bvp.report import contrasts as ct
from bvp.report import disentanglement, stats, structured
from bvp.report.collect import Run, done_runs, records_digest
from bvp.report.contrasts import SeedCurve, amounts, cell_label, family_name, planned
from bvp.report.tables import md_table, p_cell

BEGIN, END = "<!-- bvp-report:begin", "<!-- bvp-report:end -->"
NAMES = (
    ct.ENDPOINTS
    | structured.ENDPOINTS
    | {
        "drop_at_95_dense": "drop@95 vs dense (old reference)",
        "tolerated_dense": "tolerated vs dense (old reference)",
        "dense_active_units": "dense active units",
        "dense_kl": "dense KL (nats)",
    }
)
Plan = dict[str, tuple[int, set[float]]]


def _num(x: float | None, digits: int = 4) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _ci(low: float, high: float) -> str:
    return "-" if math.isnan(low) else f"[{_num(low)}, {_num(high)}]"


def _ratio(x: np.ndarray) -> str:
    """The mean of the runs' measured ratios (a run without the measurement is left out), as ``0.262x``."""
    x = x[~np.isnan(x)]
    return f"{_num(stats.mean(x), 3)}x" if len(x) else "-"


def _mean_ci(x: np.ndarray) -> str:
    return f"{_num(stats.mean(x))} {_ci(*stats.t_ci(x))}"


def seeds_cell(members: list[SeedCurve], plan: Plan) -> str:
    """``3 of 10, 1 running``: the seeds whose curve is complete, of the seeds planned; a seed whose branches
    started from two dense models (``one_dense_model``) is named apart, never counted as complete."""
    want, whole = planned(members, plan), sum(c.flags["complete"] for c in members)
    mixed = sum(bool(c.left_out) and not c.flags["complete"] for c in members)
    running = f", {len(members) - whole - mixed} running" if len(members) - whole - mixed else ""
    mixed_note = f", {mixed} with branches of two dense models (left out)" if mixed else ""
    return f"{whole}" + (f" of {want}" if want else " (plan unknown)") + running + mixed_note


CELL_HEAD = ["data", "cell", "complete seeds"]


def cell_head(cell: tuple[tuple[str, Any], ...], members: list[SeedCurve], plan: Plan) -> list[str]:
    """The first columns of every per-cell table (:data:`CELL_HEAD`): data set, cell and its complete seeds."""
    return [family_name(cell), cell_label(cell), seeds_cell(members, plan)]


def verdict_rows(primary: list[dict[str, Any]], by_cell: dict, plan: Plan) -> list[dict[str, Any]]:
    """One row per claim, data set and test: the verdict of the claim on that data set, and the test."""
    out = []
    for family in sorted({r["family"] for r in primary}, key=ct.family_order):
        tests = [r for r in primary if r["family"] == family]
        members = [c for cell, c in by_cell.items() if f"primary ({family_name(cell)})" == family and not ct.deviations(cell)]
        want = max((planned(c, plan) or 0 for c in members), default=0) or None
        for claim in ct.CLAIMS:
            outcome, found = ct.verdict(claim, tests)
            for r in found or [None]:
                note = [] if r is None or not r["censored"] else [f"{r['censored']} censored values"]
                if want is None:
                    note.append("plan unknown (no multirun.yaml): completeness not checked")
                elif r is not None and min(r["n1"], r["n2"]) < want:
                    note.append(f"incomplete: {min(r['n1'], r['n2'])} of {want} seeds")
                row = {"data": ct.data_of(family), "claim": claim.name, "verdict": outcome, "test": r, "note": note}
                out.append(row | {"planned": want})
    return out


def verdict_table(rows: list[dict[str, Any]]) -> list[str]:
    table = [
        [
            v["data"],
            v["claim"],
            f"**{v['verdict']}**",
            r["comparison"] if r else "-",
            NAMES[r["endpoint"]] if r else "-",
            f"{_num(r['estimate'])} {_ci(r['ci_low'], r['ci_high'])}" if r else "-",
            "-" if r is None else f"{r['n1']}, {r['n2']}",
            p_cell(r["p_holm"]) if r else "-",
            "; ".join(v["note"]),
        ]
        for v in rows
        for r in [v["test"]]
    ]
    if not table:
        return ["none yet"]
    return md_table(["data", "claim", "verdict", "contrast", "endpoint", "estimate [95% CI]", "n", "p (Holm)", "note"], table)


def claims_by_data(rows: list[dict[str, Any]]) -> list[str]:
    """Claims x data sets: each claim's verdict on each data set, with the fewest seeds in a cell of its tests and,
    below the plan, of how many and ``incomplete``."""
    if not rows:
        return ["none yet"]
    data = list(dict.fromkeys(v["data"] for v in rows))
    cells: dict[tuple[str, str], str] = {}
    for v in rows:
        tests = [w["test"] for w in rows if w["data"] == v["data"] and w["claim"] == v["claim"] and w["test"]]
        seeds, want = min((min(t["n1"], t["n2"]) for t in tests), default=0), v["planned"]
        short = f" of {want}, incomplete" if want and seeds < want else ""
        cells[(v["claim"], v["data"])] = f"{v['verdict']} (n={seeds}{short})"
    claims = list(dict.fromkeys(v["claim"] for v in rows))
    return md_table(["claim", *data], [[c, *(cells.get((c, d), "-") for d in data)] for c in claims])


def contrast_table(rows: list[dict[str, Any]]) -> list[str]:
    table = [
        [
            ct.data_of(r["family"]),
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
        for r in rows
    ]
    header = ["data", "comparison", "endpoint", "n", "estimate", "95% CI", "p", "p_holm", "g", "censored"]
    return md_table(header, table) if table else ["none yet"]


def cells_table(by_cell: dict, plan: Plan) -> list[str]:
    rows = []
    for cell, members in by_cell.items():
        ends = {e: ct.endpoint_values(members, e) for e in ("drop_at_95", "tolerated", "drop_at_95_dense")}
        rows.append(
            [
                *cell_head(cell, members, plan),
                ", ".join(f"{a:g}" for a in sorted(amounts([r for c in members for r in c.runs]))),
                _mean_ci(ct.endpoint_values(members, "reference")),
                _mean_ci(ct.endpoint_values(members, "dense")),
                _mean_ci(ends["drop_at_95"]),
                ("≥ " if any(c.flags["censored"] for c in members) else "") + _mean_ci(ends["tolerated"]),
                f"{sum(c.flags['censored'] for c in members)} / {sum(c.flags['thin'] for c in members)}",
                _mean_ci(ends["drop_at_95_dense"]),
                _mean_ci(ct.endpoint_values(members, "dense_active_units")),
            ]
        )
    if not rows:
        return ["none yet"]
    header = [*CELL_HEAD, "amounts", "reference acc", "dense acc", "drop@95", "tolerated"]
    return md_table([*header, "censored / thin", "drop@95 vs dense", "dense active units"], rows)


def structured_section(cells: dict, family: list[dict[str, Any]], plan: Plan) -> list[str]:
    """The structured curves: their endpoints per cell, their family of four, and accuracy beside cost per fraction."""
    if not cells:
        return []
    lines = [
        "",
        "### Structured curves",
        "",
        "`pruning=structured`: the fraction f of channels and hidden neurons removed from every layer (docs/results.md, "
        "'Structured curves'). Per cell, mean [95% t CI] over seeds of the endpoints against each seed's f=0 branch; "
        "tolerated: ≥ marks a mean with a censored value (every fraction within 1 point).",
        "",
    ]
    rows = []
    for cell, members in cells.items():
        tol = ct.endpoint_values(members, "tolerated_channels")
        censored = sum(c.flags["censored_channels"] for c in members)
        rows.append(
            [
                *cell_head(cell, members, plan),
                _mean_ci(ct.endpoint_values(members, "reference")),
                _mean_ci(ct.endpoint_values(members, "drop_at_half")),
                ("≥ " if censored else "") + _mean_ci(tol),
                f"{censored} / {sum(c.flags['thin_channels'] for c in members)}",
            ]
        )
    header = [*CELL_HEAD, "reference acc", "drop@50ch", "tolerated channel fraction", "censored / thin"]
    lines += md_table(header, rows)
    lines += ["", "Their family (Welch t, 95% Welch CI, Hedges' g; p_holm within these four; no verdict on the paper):", ""]
    lines += contrast_table(family)
    lines += [
        "",
        "Per fraction: fine-tuned test accuracy, mean [95% t CI] over the seeds measured, and the pruned classifier's "
        "parameters, MACs and CPU latency at batch 256 as a fraction of its dense model's (mean over seeds; latency "
        "measured in each run, one thread, beside the other study worker).",
        "",
    ]
    table = [
        [
            family_name(r["cell"]),
            cell_label(r["cell"]),
            f"{r['fraction']:g}",
            str(len(r["accuracy"])),
            _mean_ci(r["accuracy"]),
            *(_ratio(r[name]) for name in structured.COSTS),
        ]
        for r in structured.fraction_rows(cells)
    ]
    return lines + md_table(["data", "cell", "channels removed", "n", "accuracy", *structured.COSTS], table)


def by_family(cells: dict) -> dict[str, dict]:
    out: dict[str, dict] = defaultdict(dict)
    for cell, curves in cells.items():
        out[family_name(cell)][cell] = curves
    return dict(sorted(out.items(), key=lambda kv: ct.family_order(kv[0])))


LINK_CLAIM = "5. disentanglement (MIG, DCI: dSprites) makes pruning easier"


def link_verdict_rows(links: dict[str, list[dict[str, Any]]], cells: dict, plan: Plan) -> list[dict[str, Any]]:
    """Claim 5's verdict per data set with factors, one row per test, noting seeds below the plan."""
    out = []
    for name, rows in links.items():
        mine = [c for cell, c in cells.items() if family_name(cell) == name and not ct.deviations(cell)]
        want = max((planned(c, plan) or 0 for c in mine), default=0)
        have = min((sum(x.flags["complete"] for x in c) for c in mine), default=0)
        note = [f"incomplete: {have} of {want} seeds"] if want and have < want else []
        verdict = disentanglement.link_verdict(rows)
        out += [{"data": name, "claim": LINK_CLAIM, "verdict": verdict, "test": r, "note": note, "planned": None} for r in rows]
    return out


def factors_section(cells: dict, links: dict[str, list[dict[str, Any]]], plan: Plan) -> list[str]:
    """Per data set with factors: each cell's dense MIG and DCI beside its endpoints, then the link's four tests."""
    if not cells:
        return []
    lines = [
        "",
        "### Disentanglement and prunability (dSprites)",
        "",
        "Per cell, mean [95% t CI] over seeds (one dense model each): MIG of the test split's mean codes, DCI of the "
        "validation split's at the branch point (disentanglement, completeness, informativeness), and the endpoints "
        "against the amount=0 branch. Then the pre-registered tests: Spearman's rho across the Beta-VAE dense models "
        "(the CNN apart), Bonett-Wright CI, permutation p, Holm within the four.",
        "",
    ]
    rows = []
    for cell, members in cells.items():
        measured = [disentanglement.measures(c) for c in members]
        rows.append(
            [
                *cell_head(cell, members, plan),
                *(_mean_ci(np.array([m[k] for m in measured if not math.isnan(m[k])])) for k in disentanglement.MEASURES),
                _mean_ci(ct.endpoint_values(members, "drop_at_95")),
                _mean_ci(ct.endpoint_values(members, "tolerated")),
            ]
        )
    header = [*CELL_HEAD, *disentanglement.MEASURES.values(), "drop@95", "tolerated"]
    lines += md_table(header, rows)
    return [*lines, "", *contrast_table([r for found in links.values() for r in found])]


def compute_table(done: list[Run]) -> list[str]:
    """Per part (the folder above the runs): the runs, the dense models they trained, and their fit_seconds."""
    parts: dict[str, list[Run]] = defaultdict(list)
    for run in done:
        part = Path(run.run_dir).parent
        parts["(top folder)" if part == Path(".") else part.as_posix()].append(run)
    rows = [
        [
            part,
            str(len(runs)),
            str(sum(bool(r.dense_trained) for r in runs)),
            f"{sum(float(r.timing.get('fit_seconds') or 0) for r in runs) / 3600:.2f}",
        ]
        for part, runs in sorted(parts.items())
    ]
    return md_table(["part", "finished runs", "dense models trained", "hours (fit_seconds)"], rows)


def results_markdown(
    runs: list[Run], sweep_dir: Path, figures: dict[str, str], by_cell: dict | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The generated part of docs/results.md and every contrast row (contrasts.csv). ``by_cell``: the study's
    cells (``contrasts.cells``) where the caller has them already (the figures drew them); else made here."""
    done, _ = done_runs(runs)  # one run per identity
    plan = ct.study_plan(sweep_dir)
    by_cell = ct.cells(ct.seed_curves(done, plan)) if by_cell is None else by_cell
    channels = structured.structured_cells(by_cell)
    weights = {cell: c for cell, c in by_cell.items() if cell not in channels}
    paper = {cell: c for cell, c in weights.items() if not disentanglement.is_factor_data(cell)}  # the paper's grid
    factors = {cell: c for cell, c in weights.items() if disentanglement.is_factor_data(cell)}
    primary, exploratory, family = ct.primary_rows(paper), ct.exploratory_rows(weights), structured.family_rows(channels)
    links = {name: disentanglement.link_rows(f"link ({name})", mine) for name, mine in by_family(factors).items()}
    commits = sorted({r.version() for r in done})
    hours = sum(float(r.timing.get("fit_seconds") or 0) for r in done) / 3600
    verdicts = verdict_rows(primary, paper, plan) + link_verdict_rows(links, factors, plan)
    lines = [
        f"{len(done)} finished runs (of {len(runs)} records, digest `{records_digest(sweep_dir)}`) in `{sweep_dir}`, "
        f"from code {', '.join(commits) or '-'}; "
        f"{hours:.2f} hours of training and fine-tuning (the sum of the runs' fit_seconds).",
        "",
        "### Verdicts",
        "",
        "Each claim's verdict on each data set, and n, the fewest seeds in a cell of its tests (claim 5: the Beta-VAE "
        "dense models its correlations rest on):",
        "",
        *claims_by_data(verdicts),
        "",
        "Each claim's pre-registered tests (claims 1-4: Welch t on per-seed values, Holm within the primary family of "
        "its data; claim 5: Spearman's rho over the dense models, Holm within its four). "
        "Estimates are a - b: a drop is a cost (lower is better), a tolerated sparsity a gain (higher is better).",
        "",
        *verdict_table(verdicts),
        "",
        "### Cells",
        "",
        "Per cell, mean [95% t CI] over seeds. reference: fine-tuned test accuracy of the "
        "amount=0 branch; dense: before fine-tuning (the old reference). Tolerated: a censored value (every amount "
        "within 1 point) counts as the highest amount, so a mean with one is a lower bound (marked ≥); the last "
        "columns count the censored values and the crossings that rest on one pruned point (thin).",
        "",
        *cells_table(weights, plan),
    ]
    for title, rows, note in (
        ("Primary contrasts", primary, "The pre-registered family: Welch t, 95% Welch CI, Hedges' g; p_holm within it."),
        (
            "Exploratory contrasts",
            exploratory,
            "Not used for any verdict; p unadjusted. Ablations and baselines against "
            "their primary twin: paired t over seeds where both branch from one dense model (a pruning setting), Welch "
            "where the dense models differ.",
        ),
    ):
        lines += ["", f"### {title}", "", note, "", *contrast_table(rows)]
    lines += structured_section(channels, family, plan)
    lines += factors_section(factors, links, plan)
    lines += ["", "### Compute", "", "Per part of the study (its folder), from the finished runs' records:", ""]
    lines += compute_table(done)
    if figures:
        lines += ["", "### Figures", ""] + [f"![{name}]({path})" for name, path in figures.items()]
    return "\n".join(lines) + "\n", primary + exploratory + family + [r for rows in links.values() for r in rows]


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
