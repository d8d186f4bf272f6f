"""bvp-report SWEEP_DIR: turn a sweep's metrics.json files into the study's table, statistics and figures.

Writes to SWEEP_DIR/report/: runs.csv (one row a run), summary.csv and summary.md (per dataset x model x
beta: n, mean +- std and min..max; each beta against beta=1 and against the CNN baseline with a 95%
bootstrap CI of the difference of means and Welch's t-test), PNG figures, and the figures as
TensorBoard images. Failed and missing runs are listed, never dropped silently.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib.figure import Figure
from scipy import stats

from bvp.io import read_json
from bvp.sweep import SWEEP_FILE

ACCURACIES = ("dense_test_acc", "pruned_test_acc", "finetuned_test_acc")
FIELDS = (
    *ACCURACIES,
    "accuracy_drop",
    "compression_ratio_full",
    "compression_ratio",
    "compression_ratio_bytes",
    "active_units",
    "kl",
)
SOURCE = {"active_units": "val/active_units", "kl": "val/kl"}  # report name -> metrics.json key
Group = tuple[str, str, Any]  # dataset, model, beta (None for the CNN baseline)


# -- collecting --------------------------------------------------------------------------------------
def run_overrides(run_dir: Path) -> frozenset[str]:
    path = run_dir / ".hydra" / "overrides.yaml"
    return frozenset(yaml.safe_load(path.read_text()) or []) if path.is_file() else frozenset()


def collect(sweep_dir: Path) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """One row per run folder (any status), and the override lists of jobs that have no folder yet."""
    rows = []
    for path in sorted(sweep_dir.rglob("metrics.json")):
        record = read_json(path) or {}
        run = record.get("run") or {}
        metrics = record.get("metrics") or {}
        row = {
            "run_dir": str(path.parent.relative_to(sweep_dir)),
            "status": record.get("status", "unknown"),
            "error": record.get("error") or "",
            "dataset": run.get("dataset"),
            "model": run.get("model"),
            "beta": None if run.get("model") == "cnn" else run.get("beta"),
            "seed": run.get("seed"),
        }
        row.update({f: metrics.get(SOURCE.get(f, f)) for f in FIELDS})
        rows.append(row)
    expected = (read_json(sweep_dir / SWEEP_FILE) or {}).get("jobs", [])
    present = {run_overrides(sweep_dir / r["run_dir"]) for r in rows}
    missing = [job for job in expected if frozenset(job) not in present]
    return rows, missing


def done_runs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished runs; a CNN baseline swept over several betas is the same run, so keep one per seed."""
    seen, out = set(), []
    for row in rows:
        key = (row["dataset"], row["model"], row["beta"], row["seed"])
        if row["status"] == "done" and key not in seen:
            seen.add(key)
            out.append(row)
    return out


def groups(rows: list[dict[str, Any]]) -> dict[Group, list[dict[str, Any]]]:
    out: dict[Group, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[(row["dataset"], row["model"], row["beta"])].append(row)
    order = lambda g: (g[0], g[1] == "cnn", g[2] if g[2] is not None else 0)  # noqa: E731
    return {g: out[g] for g in sorted(out, key=order)}


def values(rows: list[dict[str, Any]], field: str) -> np.ndarray:
    return np.array([r[field] for r in rows if r.get(field) is not None], dtype=float)


# -- statistics ----------------------------------------------------------------------------------------
def describe(x: np.ndarray) -> dict[str, float]:
    """n, mean, sample std (ddof=1; NaN for n < 2), min, max."""
    if len(x) == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    return {
        "n": len(x),
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if len(x) > 1 else math.nan,
        "min": float(x.min()),
        "max": float(x.max()),
    }


def compare(a: np.ndarray, b: np.ndarray, resamples: int = 10_000, seed: int = 0) -> dict[str, float]:
    """mean(a) - mean(b), its 95% percentile-bootstrap CI (resampling each group) and Welch's t-test
    p-value (unequal variances); NaN where a group has fewer than 2 runs."""
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return {"diff": diff, "ci_low": math.nan, "ci_high": math.nan, "p_welch": math.nan}
    ci = stats.bootstrap(
        (a, b),
        lambda x, y, axis: x.mean(axis=axis) - y.mean(axis=axis),
        n_resamples=resamples,
        confidence_level=0.95,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    ).confidence_interval
    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    return {"diff": diff, "ci_low": float(ci.low), "ci_high": float(ci.high), "p_welch": float(p)}


def comparisons(grouped: dict[Group, list[dict[str, Any]]], resamples: int) -> list[dict[str, Any]]:
    """Each Beta-VAE beta against beta=1 and against the CNN baseline of the same dataset."""
    out = []
    for (dataset, model, beta), rows in grouped.items():
        if model != "beta_vae":
            continue
        # beta 1 and 1.0 are the same dict key (equal and equal hashes)
        refs = {"beta=1": grouped.get((dataset, "beta_vae", 1)), "cnn": grouped.get((dataset, "cnn", None))}
        for name, ref in refs.items():
            if not ref or ref is rows:
                continue
            for field in ACCURACIES:
                a, b = values(rows, field), values(ref, field)
                if len(a) and len(b):
                    row = {"dataset": dataset, "beta": beta, "versus": name, "metric": field, "n": len(a), "n_ref": len(b)}
                    out.append(row | compare(a, b, resamples))
    return out


# -- writing -------------------------------------------------------------------------------------------
def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def summary_rows(grouped: dict[Group, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for (dataset, model, beta), rows in grouped.items():
        row: dict[str, Any] = {"dataset": dataset, "model": model, "beta": beta, "n": len(rows)}
        for field in FIELDS:
            for stat, v in describe(values(rows, field)).items():
                if stat != "n":
                    row[f"{field}_{stat}"] = v
        out.append(row)
    return out


def _cell(row: dict[str, Any], field: str, scale: float = 1.0, digits: int = 2) -> str:
    m, s, lo, hi = (row[f"{field}_{k}"] * scale for k in ("mean", "std", "min", "max"))
    if math.isnan(m):
        return "-"
    sd = "" if math.isnan(s) else f" ± {s:.{digits}f}"
    return f"{m:.{digits}f}{sd} ({lo:.{digits}f}..{hi:.{digits}f})"


def markdown(
    summary: list[dict[str, Any]], comps: list[dict[str, Any]], rows: list[dict[str, Any]], missing: list[list[str]]
) -> str:
    lines = [
        "# Sweep summary",
        "",
        "Test accuracy in %, mean ± std (min..max) over seeds. drop = dense - fine-tuned (points).",
        "Compression: (a) full model / non-zeros, (b) dense classifier / non-zeros, (c) dense bytes / sparse bytes.",
        "",
        "| dataset | model | beta | n | dense | pruned | fine-tuned | drop | (a) | (b) | (c) | active units | KL |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary:
        beta = "-" if r["beta"] is None else f"{r['beta']:g}"
        cells = [_cell(r, f, 100) for f in (*ACCURACIES, "accuracy_drop")]
        cells += [_cell(r, f, 1, 3) for f in ("compression_ratio_full", "compression_ratio", "compression_ratio_bytes")]
        cells += [_cell(r, "active_units", 1, 1), _cell(r, "kl", 1, 2)]
        lines.append(f"| {r['dataset']} | {r['model']} | {beta} | {r['n']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Comparisons",
        "",
        "Difference of mean test accuracy (points), 95% percentile-bootstrap CI, Welch's t-test p-value.",
        "",
        "| dataset | beta | versus | metric | n vs n_ref | diff | 95% CI | p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in comps:
        ci = "-" if math.isnan(c["ci_low"]) else f"[{100 * c['ci_low']:+.2f}, {100 * c['ci_high']:+.2f}]"
        p = "-" if math.isnan(c["p_welch"]) else f"{c['p_welch']:.3g}"
        cells = [c["dataset"], f"{c['beta']:g}", c["versus"], c["metric"].removesuffix("_test_acc")]
        cells += [f"{c['n']} vs {c['n_ref']}", f"{100 * c['diff']:+.2f}", ci, p]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in rows if r["status"] != "done"]
    lines += ["", f"## Failed or unfinished runs ({len(failed)})", ""]
    lines += [f"- `{r['run_dir']}`: {r['status']}: {r['error'] or 'no error recorded'}" for r in failed] or ["none"]
    lines += ["", f"## Missing runs ({len(missing)})", ""]
    lines += [f"- {' '.join(job)}" for job in missing] or ["none"]
    return "\n".join(lines) + "\n"


# -- figures -------------------------------------------------------------------------------------------
def _label(beta: Any) -> str:
    return "CNN" if beta is None else f"β={beta:g}"


def accuracy_figure(dataset: str, grouped: dict[Group, list[dict[str, Any]]]) -> Figure:
    """Box plots of dense / pruned / fine-tuned test accuracy per beta (and the CNN baseline)."""
    mine = [(g, rows) for g, rows in grouped.items() if g[0] == dataset]
    fig = Figure(figsize=(1.8 + 1.6 * len(mine), 4))
    ax = fig.subplots()
    colors = ("#4c72b0", "#dd8452", "#55a868")
    for k, (field, color) in enumerate(zip(ACCURACIES, colors, strict=True)):
        data = [100 * values(rows, field) for _, rows in mine]
        pos = [i + (k - 1) * 0.27 for i in range(len(mine))]
        box = ax.boxplot(data, positions=pos, widths=0.22, patch_artist=True, manage_ticks=False)
        for patch in box["boxes"]:
            patch.set(facecolor=color, alpha=0.5)
        for x, ys in zip(pos, data, strict=True):  # every run, so small groups stay visible
            ax.scatter([x] * len(ys), ys, s=14, color=color, edgecolor="black", linewidth=0.5, zorder=3)
        ax.plot([], [], color=color, lw=8, label=field.removesuffix("_test_acc"))
    ax.set_xticks(range(len(mine)), [_label(g[2]) for g, _ in mine])
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{dataset}: test accuracy, dense / pruned / fine-tuned")
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


def latent_figure(grouped: dict[Group, list[dict[str, Any]]]) -> Figure:
    """Active units and KL (validation, nats) against beta, mean ± std over seeds, per dataset."""
    datasets = sorted({g[0] for g in grouped})
    fig = Figure(figsize=(4.5 * len(datasets), 6))
    axes = fig.subplots(2, len(datasets), squeeze=False)
    for j, dataset in enumerate(datasets):
        vae = [(g[2], rows) for g, rows in grouped.items() if g[0] == dataset and g[1] == "beta_vae"]
        for i, (field, name) in enumerate((("active_units", "active units"), ("kl", "KL (nats)"))):
            stats_ = [describe(values(rows, field)) for _, rows in vae]
            axes[i, j].errorbar(
                [b for b, _ in vae],
                [s["mean"] for s in stats_],
                yerr=[np.nan_to_num(s["std"]) for s in stats_],
                marker="o",
                capsize=3,
            )
            axes[i, j].set_xlabel("β")
            axes[i, j].set_ylabel(name)
            axes[i, j].set_title(dataset)
    fig.tight_layout()
    return fig


def report(sweep_dir: Path, out_dir: Path | None = None, resamples: int = 10_000) -> dict[str, Any]:
    """Write every report file for ``sweep_dir``; returns what was written and counted."""
    from torch.utils.tensorboard import SummaryWriter

    out_dir = out_dir or sweep_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, missing = collect(sweep_dir)
    if not rows and not missing:
        raise SystemExit(f"bvp-report: no metrics.json under {sweep_dir}: is it a sweep folder (outputs/multirun/...)?")
    grouped = groups(done_runs(rows))
    summary, comps = summary_rows(grouped), comparisons(grouped, resamples)
    write_csv(out_dir / "runs.csv", rows)
    write_csv(out_dir / "summary.csv", summary)
    write_csv(out_dir / "comparisons.csv", comps)
    (out_dir / "summary.md").write_text(markdown(summary, comps, rows, missing))
    figures = {f"accuracy_{d}": accuracy_figure(d, grouped) for d in sorted({g[0] for g in grouped})}
    if any(g[1] == "beta_vae" for g in grouped):
        figures["latent_vs_beta"] = latent_figure(grouped)
    with SummaryWriter(str(out_dir / "tb")) as writer:
        for name, fig in figures.items():
            fig.savefig(out_dir / f"{name}.png", dpi=120)
            writer.add_figure(f"report/{name}", fig, close=True)
    return {
        "out_dir": out_dir,
        "runs": len(rows),
        "done": sum(r["status"] == "done" for r in rows),
        "missing": len(missing),
        "figures": sorted(figures),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bvp-report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep folder, e.g. outputs/multirun/paper")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: SWEEP_DIR/report)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a folder; give a sweep folder such as outputs/multirun/paper")
    result = report(args.sweep_dir, args.out, args.resamples)
    print(f"{result['runs']} runs ({result['done']} done, {result['missing']} missing) -> {result['out_dir']}")
    print((result["out_dir"] / "summary.md").read_text())


if __name__ == "__main__":
    main()
