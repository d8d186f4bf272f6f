"""``bvp-report SWEEP_DIR``: collect the sweep, compute the tables and tests, write files and figures."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bvp.io import folder_problem, writable_folder
from bvp.report import collect, contrasts, figures, prunability, structured, tables
from bvp.report import results as results_page


def report(
    sweep_dir: Path,
    out_dir: Path | None = None,
    resamples: int = 10_000,
    results: Path | None = None,
    figures_dir: Path | None = None,
) -> dict[str, Any]:
    """Write every report file for ``sweep_dir`` into ``out_dir`` (default SWEEP_DIR/report); returns
    where, how many runs were read / done / missing, the number of groups and the figure names.
    Raises ``NoRuns`` for a path with neither metrics.json nor sweep.json under it. ``results``: a page with the
    bvp-report markers (docs/results.md) whose generated block gets the study's verdicts, cells and contrasts
    (bvp.report.contrasts), with its figure in ``figures_dir`` (default: OUT_DIR)."""
    from torch.utils.tensorboard import SummaryWriter  # heavy: only when writing

    if results is not None:
        results_page.check_results_page(results)
    if not sweep_dir.is_dir():
        raise collect.NoRuns(f"{sweep_dir} is not a folder: give a sweep folder such as outputs/multirun/paper")
    runs = collect.load_runs(sweep_dir)
    found = collect.sweeps(sweep_dir)
    missing = collect.missing_jobs(found, runs)
    if not runs and not missing:
        raise collect.NoRuns(f"no metrics.json under {sweep_dir}: give a sweep folder such as outputs/multirun/paper")
    out_dir = out_dir or sweep_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    done, repeats = collect.done_runs(runs)
    keys = collect.varying_keys(done)
    groups = collect.group_runs(done, keys)
    summary = tables.summary_rows(groups, keys, resamples)
    curves = tables.curves(groups, keys)
    dense = prunability.dense_table(done, resamples)
    points = prunability.points(curves)
    spearman = prunability.spearman_rows(points)
    tests = tables.stat_rows(groups, keys, spearman)
    p_holm = {t["comparison"]: t["p_holm"] for t in tests}  # Spearman comparisons are unique
    spearman = [row | {"p_holm": p_holm[row["comparison"]]} for row in spearman]
    costs = tables.cost_rows(groups, keys)
    tables.write_csv(out_dir / "runs.csv", tables.run_rows(runs, collect.varying_keys(runs)))
    tables.write_csv(out_dir / "summary.csv", summary)
    tables.write_csv(out_dir / "stats.csv", tests, tables.STATS_COLUMNS)
    tables.write_csv(out_dir / "endpoints.csv", [s for c in curves for s in c.seeds])
    sections = [prunability.dense_markdown(dense), prunability.spearman_markdown(spearman), tables.cost_markdown(costs)]
    for name, rows, section in zip(("disentanglement", "spearman", "cost"), (dense, spearman, costs), sections, strict=True):
        if section:  # only what the runs measured
            tables.write_csv(out_dir / f"{name}.csv", rows)
    if spearman:
        tables.write_csv(out_dir / "prunability.csv", points)
    refused = collect.refused_jobs(found)
    page = [tables.header(sweep_dir.name, keys, runs, repeats, missing), tables.group_tables(summary, keys)]
    page += [tables.curve_table(curves), *sections, tables.tests_table(tests), tables.uncounted(runs, repeats, refused, missing)]
    (out_dir / "summary.md").write_text(tables.page(page))

    shown = {}
    if curves:
        shown["curves"] = figures.curves_figure(curves)
    datasets = keys.index("dataset") if "dataset" in keys else None
    for value in dict.fromkeys(key[datasets] if datasets is not None else None for key in groups):
        mine = {collect.label(keys, k): rows for k, rows in groups.items() if datasets is None or k[datasets] == value}
        shown[f"accuracy_{value}" if value else "accuracy"] = figures.accuracy_figure(str(value or sweep_dir.name), mine)
    for value in dict.fromkeys(p.get("dataset") for p in points):
        mine = [p for p in points if p.get("dataset") == value]
        if prunability.measured(mine):
            name = f"disentanglement_{value}" if value else "disentanglement"
            shown[name] = figures.disentanglement_figure(str(value or sweep_dir.name), mine, spearman)
    learning = {r.run_dir: r.curve for r in done if r.curve}
    if learning:
        tables.write_csv(out_dir / "learning.csv", [{"run": name} | tables.flat(p) for name, ps in learning.items() for p in ps])
        shown["learning"] = figures.learning_figure(learning)
    with SummaryWriter(str(out_dir / "tb")) as writer:
        for name, fig in shown.items():
            fig.savefig(out_dir / f"{name}.png", dpi=120)
            writer.add_figure(f"report/{name}", fig, close=True)
    study = contrasts.cells(contrasts.seed_curves(done, contrasts.study_plan(sweep_dir)))
    if results is not None and study:
        fig_dir = figures_dir or out_dir
        fig_dir.mkdir(parents=True, exist_ok=True)
        links = {}
        channels = structured.structured_cells(study)
        primary = {cell: c for cell, c in study.items() if not contrasts.deviations(cell)}
        drawn = {
            f"{name}: accuracy against sparsity; drop@95 per seed": (
                f"study_{slug(name)}.png",
                figures.study_figure({cell: c for cell, c in primary.items() if contrasts.family_name(cell) == name}),
            )
            for name in dict.fromkeys(contrasts.family_name(cell) for cell in primary)
        }
        if channels:
            drawn["structured curves: accuracy against channels removed and MACs kept"] = (
                "structured.png",
                figures.structured_figure(channels),
            )
        for caption, (name, fig) in drawn.items():
            fig.savefig(fig_dir / name, dpi=120)
            links[caption] = Path(os.path.relpath(fig_dir / name, results.parent)).as_posix()
        block, rows = results_page.results_markdown(runs, sweep_dir, links, study)
        tables.write_csv(out_dir / "contrasts.csv", rows)
        results_page.write_results(results, block)
    return {
        "out_dir": out_dir,
        "runs": len(runs),
        "done": len(done) + len(repeats),
        "missing": len(missing),
        "groups": len(groups),
        "figures": sorted(shown),
    }


def slug(name: str) -> str:
    """A data family's name as a file name: ``CIFAR-10 (JPEG stand-in)`` -> ``cifar_10_jpeg_stand_in``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bvp-report", description="Tables, tests and figures of a bvp sweep.")
    parser.add_argument("sweep_dir", type=Path, help="a sweep folder, e.g. outputs/multirun/paper")
    parser.add_argument("--out", type=writable_folder, default=None, help="where to write (default: SWEEP_DIR/report)")
    parser.add_argument("--resamples", type=int, default=10_000, help="BCa bootstrap resamples (default 10000)")
    parser.add_argument("--results", type=Path, default=None, help="a page to write the study's verdicts into (docs/results.md)")
    parser.add_argument("--figures", type=writable_folder, default=None, help="where --results puts its figures (default: OUT)")
    args = parser.parse_args(argv)
    if args.resamples < 100:
        parser.error(f"--resamples={args.resamples}: give at least 100 (10000 for a final report)")
    if args.out is None and args.sweep_dir.is_dir() and (problem := folder_problem(args.sweep_dir / "report")) is not None:
        parser.error(f"{args.sweep_dir / 'report'} (the default --out): {problem}; give --out a folder that can be written")
    if args.figures is not None and args.results is None:
        parser.error(f"--figures={args.figures}: only the results page's figures go there; add --results docs/results.md")
    try:
        result = report(args.sweep_dir, args.out, args.resamples, args.results, args.figures)
    except (collect.NoRuns, results_page.ResultsPageError) as err:
        print(f"bvp-report: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{tables.count_of(result['runs'], 'run')} ({result['done']} done, {result['missing']} missing) -> {result['out_dir']}")
    print((result["out_dir"] / "summary.md").read_text())
