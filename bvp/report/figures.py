"""The report's figures (matplotlib Figures, no pyplot state): accuracy against sparsity, the per-group
accuracy box plots, and disentanglement against prunability. Labels are the config values of the curves
and groups."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from bvp import names
from bvp.report import stats, structured
from bvp.report.collect import AXIS, Run, values
from bvp.report.contrasts import SeedCurve, cell_label, deviations, family_name
from bvp.report.prunability import ENDPOINTS, MEASURES, colour, measured
from bvp.report.stats import sparsity_axis
from bvp.report.tables import Curve, ci_cell, num

TICKS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
ACCURACIES = dict(zip(names.ACCURACIES, ("#4c72b0", "#dd8452", "#55a868"), strict=True))  # dense, pruned, fine-tuned


BAND = "bands: 95% t CI over seeds, clipped to [0, 1]"


def clipped(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An accuracy's t interval cut to [0, 1] (with few seeds it can reach past both); captions say so."""
    return np.clip(low, 0, 1), np.clip(high, 0, 1)


def _panels(curves: list[Curve]) -> dict[str, list[Curve]]:
    """One panel per dataset: accuracies of different datasets are not on one scale."""
    out: dict[str, list[Curve]] = {}
    for curve in curves:
        out.setdefault(str(curve.key.get("dataset", "")), []).append(curve)
    return out


def curves_figure(curves: list[Curve]) -> Figure:
    """Test accuracy after pruning (dashed, before fine-tuning) and after fine-tuning (solid) against the
    achieved sparsity on x = log(1/(1-s)), mean and 95% t CI over seeds; dotted: the dense mean."""
    panels = _panels(curves)
    fig = Figure(figsize=(6.5 * len(panels), 4.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (dataset, members) in zip(axes, panels.items(), strict=True):
        for i, curve in enumerate(members):
            color = f"C{i % 10}"
            x = sparsity_axis(curve.sparsity)
            name = " ".join(part for part in curve.label.split() if not part.startswith("dataset=")) or curve.label
            for points, style, alpha, suffix in ((curve.finetuned, "-", 0.2, "fine-tuned"), (curve.pruned, "--", 0.1, "pruned")):
                mean, low, high = (np.array([p[k] for p in points]) for k in ("mean", "low", "high"))
                ax.plot(x, mean, style, marker="o", ms=3, color=color, label=f"{name}: {suffix}")
                ax.fill_between(x, *clipped(low, high), color=color, alpha=alpha, linewidth=0)
            ax.axhline(curve.dense["mean"], color=color, ls=":", lw=1)
        top = float(np.nanmax([c.sparsity.max() for c in members]))
        ticks = [t for t in TICKS if t <= max(top, 0.5) + 1e-9]
        ax.set_xticks(sparsity_axis(ticks), [f"{t:g}" for t in ticks])
        ax.set_xlabel("achieved sparsity (axis: log 1/(1-s))")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{dataset + ': ' if dataset else ''}accuracy vs sparsity (dotted: dense)\n{BAND}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def accuracy_figure(title: str, groups: dict[str, list[Run]]) -> Figure:
    """Box plots of dense / pruned / fine-tuned test accuracy per group, with every run as a dot."""
    fig = Figure(figsize=(2.5 + 1.4 * len(groups), 5))
    ax = fig.subplots()
    for k, (metric, color) in enumerate(ACCURACIES.items()):
        data = [values(rows, metric) for rows in groups.values()]
        pos = [i + (k - 1) * 0.27 for i in range(len(groups))]
        box = ax.boxplot(data, positions=pos, widths=0.22, patch_artist=True, manage_ticks=False)
        for patch in box["boxes"]:
            patch.set(facecolor=color, alpha=0.5)
        for x, ys in zip(pos, data, strict=True):  # every run, so small groups stay visible
            ax.scatter([x] * len(ys), ys, s=14, color=color, edgecolor="black", linewidth=0.5, zorder=3)
        ax.plot([], [], color=color, lw=8, label=metric.removesuffix("_test_acc"))
    ax.set_xticks(range(len(groups)), [name.replace(" ", "\n") for name in groups], fontsize=7)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{title}: test accuracy, dense / pruned / fine-tuned")
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


MARKERS = "osD^v<>px*"


def learning_figure(curves: dict[str, list[dict[str, Any]]]) -> Figure:
    """MIG and validation accuracy against training samples, one line per run (``curves``: label -> the
    disentanglement monitor's points): whether, and how soon, a model disentangles (issue 20's pilot)."""
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    for i, (name, points) in enumerate(curves.items()):
        shown = [p for p in points if p.get("mig") is not None]
        for ax, field in zip(axes, ("mig", "val_acc"), strict=True):
            ax.plot([p["samples"] for p in shown], [p[field] for p in shown], marker="o", ms=3, color=f"C{i % 10}", label=name)
    for ax, what in zip(axes, ("MIG (validation codes)", "validation accuracy (deployed path)"), strict=True):
        ax.set_xlabel("training samples seen")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Disentanglement while training: the monitor's points (callbacks=disentanglement)")
    fig.tight_layout()
    return fig


def disentanglement_figure(title: str, points: list[dict[str, Any]], tests: list[dict[str, Any]]) -> Figure:
    """One panel per measured dense measure (rows) and prunability endpoint (columns): every point is one
    dense model under one pruning setting, coloured by model and beta, shaped by stratum; each panel lists
    Spearman's rho [bootstrap 95% CI] and n of each stratum (``tests``: prunability.spearman_rows)."""
    measures = measured(points)
    colours = {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys(colour(p) for p in points))}
    strata = list(dict.fromkeys(p["stratum"] for p in points))
    fig = Figure(figsize=(5.2 * len(ENDPOINTS), 3.9 * len(measures)))
    axes = fig.subplots(len(measures), len(ENDPOINTS), squeeze=False)
    for row, measure in zip(axes, measures, strict=True):
        for ax, endpoint in zip(row, ENDPOINTS, strict=True):
            for i, stratum in enumerate(strata):
                for name, c in colours.items():
                    mine = [p for p in points if p["stratum"] == stratum and colour(p) == name]
                    if not mine:
                        continue
                    shown = f"{name}, {stratum}" if len(strata) > 1 else name
                    x, y = [p[measure] for p in mine], [p[endpoint] for p in mine]
                    ax.scatter(x, y, color=c, marker=MARKERS[i % len(MARKERS)], s=24, edgecolor="black", lw=0.4, label=shown)
            text = [
                f"rho={num(t['estimate'])} {ci_cell(t['ci_low'], t['ci_high'])} n={t['n1']} {t['stratum'] * (len(strata) > 1)}"
                for t in tests
                if t["measure"] == measure and t["endpoint"] == endpoint and t["stratum"] in strata
            ]
            ax.text(
                0.02,
                0.98,
                "\n".join(text),
                transform=ax.transAxes,
                va="top",
                fontsize=7,
                bbox={"fc": "white", "alpha": 0.7, "lw": 0},
            )
            ax.set_xlabel(f"{MEASURES[measure]} (dense model)")
            ax.set_ylabel(ENDPOINTS[endpoint])
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{title}: disentanglement vs prunability, one point per dense model and pruning setting")
    fig.tight_layout()
    return fig


def study_figure(by_cell: dict[Any, list[SeedCurve]]) -> Figure:
    """The primary cells (docs/results.md): fine-tuned test accuracy against sparsity, mean and t CI over seeds
    (dotted: the amount=0 reference), and each seed's drop@95 against that reference."""
    primary = {cell: curves for cell, curves in by_cell.items() if not deviations(cell)}
    fig = Figure(figsize=(13, 4.8))
    left, right = fig.subplots(1, 2)
    for i, (cell, curves) in enumerate(primary.items()):
        color, name = f"C{i % 10}", cell_label(cell)
        amounts = sorted({float(r.identity[AXIS]) for c in curves for r in c.runs})
        points = [[r for c in curves for r in c.runs if abs(float(r.identity[AXIS]) - a) < 1e-9] for a in amounts]
        x = sparsity_axis([stats.mean(values(rows, "sparsity")) for rows in points])
        acc = [values(rows, "finetuned_test_acc") for rows in points]
        left.plot(x, [stats.mean(a) for a in acc], "-o", ms=3, color=color, label=f"{name} (n={len(curves)})")
        ci = np.array([stats.t_ci(a) for a in acc])
        left.fill_between(x, *clipped(ci[:, 0], ci[:, 1]), color=color, alpha=0.15, linewidth=0)
        left.axhline(stats.mean([c.reference for c in curves]), color=color, ls=":", lw=1)
        drops = np.array([c.endpoints["drop_at_95"] for c in curves], dtype=float)
        right.scatter(np.full(len(drops), i) + np.linspace(-0.15, 0.15, len(drops)), drops, s=12, color=color)
        low, high = stats.t_ci(drops[~np.isnan(drops)])
        right.errorbar(
            [i],
            [stats.mean(drops[~np.isnan(drops)])],
            yerr=[[stats.mean(drops) - low], [high - stats.mean(drops)]] if not np.isnan(low) else None,
            fmt="s",
            color="black",
            capsize=4,
        )
    ticks = [t for t in TICKS if t <= 0.99 + 1e-9]
    left.set_xticks(sparsity_axis(ticks), [f"{t:g}" for t in ticks])
    left.set(xlabel="achieved sparsity (axis: log 1/(1-s))", ylabel="fine-tuned test accuracy")
    left.set_title(f"accuracy vs sparsity (dotted: the amount=0 reference)\n{BAND}", fontsize=9)
    left.grid(alpha=0.3)
    left.legend(fontsize=7, loc="lower left")
    right.set_xticks(range(len(primary)), [cell_label(c) for c in primary])
    right.axhline(0, color="grey", lw=0.8)
    right.set(ylabel="drop@95: reference - accuracy at 95% sparsity")
    right.set_title("each seed's drop@95; black: mean and 95% t CI", fontsize=9)
    right.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def structured_figure(cells: dict[Any, list[SeedCurve]]) -> Figure:
    """The structured curves (bvp.report.structured): fine-tuned test accuracy against the fraction of channels
    removed and against the MACs the pruned classifier keeps, mean and t CI over seeds (dotted: the f=0 reference)."""
    fig = Figure(figsize=(13, 4.8))
    left, right = fig.subplots(1, 2)
    rows = structured.fraction_rows(cells)
    for i, (cell, curves) in enumerate(cells.items()):
        color, mine = f"C{i % 10}", [r for r in rows if r["cell"] == cell]
        acc = np.array([stats.mean(r["accuracy"]) for r in mine])
        ci = np.array([stats.t_ci(r["accuracy"]) for r in mine])
        complete = sum(c.flags["complete"] for c in curves)
        seeds = f"n={complete}" + ("" if complete == len(curves) else f" complete, {len(curves)} measured")
        name = f"{family_name(cell)} {cell_label(cell).removesuffix(' pruning.structure=channels')} ({seeds})"
        for ax, x in ((left, [r["fraction"] for r in mine]), (right, [stats.mean(r["MACs"]) for r in mine])):
            ax.plot(x, acc, "-o", ms=3, color=color, label=name)
            ax.fill_between(x, *clipped(ci[:, 0], ci[:, 1]), color=color, alpha=0.15, linewidth=0)
            ax.axhline(stats.mean([c.reference for c in curves]), color=color, ls=":", lw=1)
            ax.grid(alpha=0.3)
    left.set(xlabel="fraction of channels and hidden neurons removed (f)", ylabel="fine-tuned test accuracy")
    left.set_title(f"structured pruning: accuracy vs f (dotted: the f=0 reference)\n{BAND}", fontsize=9)
    left.legend(fontsize=7, loc="lower left")
    right.set(xlabel="MACs kept (pruned / dense, log scale)", ylabel="fine-tuned test accuracy", xscale="log")
    right.set_title("the same curves against the MACs the classifier keeps", fontsize=9)
    fig.tight_layout()
    return fig
