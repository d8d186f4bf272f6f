"""``python -m bvp.report.select DIR --key model.cls_weight``: choose one setting on validation data, never on test.

Reads the finished runs under DIR (a sweep over ``--key``, the rest of the identity fixed), and picks the value with
the highest mean of ``--metric`` (default ``dense_val_acc``) over seeds, among the values whose mean of each
``--floor METRIC=VALUE`` is at least VALUE (a second requirement, e.g. ``--floor curve.mig=0.1``: the validation MIG
of the disentanglement monitor's last point before the branch). A metric not measured on validation data (a test
accuracy, a drop, a label MIG: ``CHOOSABLE`` lists the allowed) is refused, as are runs that differ
in another setting too (the choice would be confounded with it). ``--out`` writes the candidates and the choice as
JSON, the record of how a setting was chosen (issues 20 and 21: ``model.cls_weight``).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bvp.io import atomic_write_json, folder_problem
from bvp.names import UNPRUNED, VALIDATION
from bvp.report import stats
from bvp.report.collect import NoRuns, Run, branch_point, done_runs, group_runs, load_runs, show, values, varying_keys


class SelectionError(ValueError):
    """The runs cannot choose the setting as asked."""


CURVE_METRIC = "curve."  # curve.<field>: the disentanglement monitor's last point before the branch (validation)


def run_values(runs: list[Run], metric: str) -> np.ndarray:
    """``metric`` over ``runs`` that have it: a number of metrics.json, or ``curve.<field>`` (``CURVE_METRIC``)."""
    if not metric.startswith(CURVE_METRIC):
        return values(runs, metric)
    field = metric.removeprefix(CURVE_METRIC)
    points = [branch_point([r]) for r in runs]
    return np.array([float(p[field]) for p in points if isinstance(p.get(field), (int, float))], dtype=float)


# what may choose a setting: measured on the validation split only (a drop or a label MIG reads the test split)
CHOOSABLE = (
    *VALIDATION,
    UNPRUNED[0],
    *(CURVE_METRIC + f for f in ("val_acc", "mig", "dci_disentanglement", "dci_completeness", "dci_informativeness")),
)


def validation_only(metric: str, flag: str) -> None:
    if metric not in CHOOSABLE:
        raise SelectionError(f"{flag}={metric}: a setting is chosen on validation data only; give one of {', '.join(CHOOSABLE)}")


def candidates(runs: list[Run], key: str, metric: str, floors: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Per value of ``key``: n, mean and 95% t CI of ``metric`` over the seeds, the mean of each floor's metric and
    whether every one reaches its floor (``eligible``); best ``metric`` first (ties: in sorted order)."""
    floors = floors or {}
    validation_only(metric, "--metric")
    for floor_metric in floors:
        validation_only(floor_metric, "--floor")
    done, _ = done_runs(runs)
    known = sorted({k for r in done for k in r.identity})
    if done and key not in known:
        close = difflib.get_close_matches(key, known, n=1)
        raise SelectionError(f"--key={key}: not a setting of these runs" + (f"; did you mean {close[0]}?" if close else ""))
    others = [k for k in varying_keys(done) if k != key]
    if others:
        raise SelectionError(
            f"--key={key}: the runs also differ in {', '.join(others)}; select within one setting of those "
            "(one sweep folder each)"
        )
    if not any(key in r.identity for r in done):
        raise SelectionError(f"--key={key}: no finished run has it; sweep it, e.g. train.py -m {key}=1,10,100")
    rows = []
    for (value,), group in group_runs(done, [key]).items():
        samples = {}
        for flag, name in (("--metric", metric), *(("--floor", f) for f in floors)):
            x = run_values(group, name)
            if len(x) == 0:
                raise SelectionError(f"{flag}={name}: the runs at {key}={show(value)} do not record it")
            samples[name] = x
        x = samples[metric]
        low, high = stats.t_ci(x)
        at_floor = {name: stats.mean(samples[name]) for name in floors}
        eligible = all(at_floor[name] >= floor for name, floor in floors.items())
        row = {"value": value, "n": len(x), "mean": stats.mean(x), "ci_low": low, "ci_high": high}
        rows.append(row | ({"floors": at_floor, "eligible": eligible} if floors else {}))
    if len(rows) < 2:
        raise SelectionError(f"--key={key}: the runs have one value of it ({show(rows[0]['value'])}); nothing to choose from")
    return sorted(rows, key=lambda r: -r["mean"])  # stable: equal means keep their sorted order


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bvp.report.select", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sweep_dir", type=Path, help="a sweep over --key, e.g. outputs/select/cifar10")
    parser.add_argument("--key", required=True, help="the identity key to choose, e.g. model.cls_weight")
    parser.add_argument("--metric", default="dense_val_acc", help="a validation metric (default dense_val_acc)")
    parser.add_argument(
        "--floor",
        type=floor_arg,
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="only values whose mean METRIC is at least VALUE may be chosen (repeatable), e.g. curve.mig=0.1",
    )
    parser.add_argument("--out", type=out_file, default=None, help="write the candidates and the choice here (JSON)")
    args = parser.parse_args(argv)
    floors = dict(args.floor)
    try:
        runs = load_runs(args.sweep_dir) if args.sweep_dir.is_dir() else []
        if not runs:
            raise NoRuns(f"{args.sweep_dir}: no metrics.json under it; give the sweep folder of the candidates")
        rows = candidates(runs, args.key, args.metric, floors)
        chosen = next((r for r in rows if r.get("eligible", True)), None)
        if chosen is None:
            below = ", ".join(f"{args.key}={show(r['value'])}: {fmt_floors(r)}" for r in rows)
            raise SelectionError(f"--floor: no value reaches every floor ({below})")
    except (NoRuns, SelectionError) as err:
        print(f"select: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    for r in rows:
        extra = f"; {fmt_floors(r)}{'' if r['eligible'] else ' (below a floor)'}" if floors else ""
        ci = f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
        print(f"{args.key}={show(r['value'])}: {args.metric} {r['mean']:.4f} {ci} n={r['n']}{extra}")
    rule = f"highest mean {args.metric}" + "".join(f", {m} >= {v:g}" for m, v in floors.items())
    print(f"chosen: {args.key}={show(chosen['value'])} ({rule})")
    if args.out is not None:
        record = {"key": args.key, "metric": args.metric, "floors": floors, "chosen": chosen["value"], "candidates": rows}
        atomic_write_json(args.out, record | {"sweep_dir": str(args.sweep_dir)})


def out_file(text: str) -> Path:
    """``--out``: a JSON file that can be written, checked before anything is read or printed."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a folder; give a file in it, e.g. {path / 'selection.json'}")
    if (problem := folder_problem(path.parent)) is not None:
        raise argparse.ArgumentTypeError(f"{text}: its folder {path.parent} {problem}")
    return path


def floor_arg(text: str) -> tuple[str, float]:
    """``--floor METRIC=VALUE`` as (metric, value)."""
    metric, _, value = text.partition("=")
    try:
        return metric, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give METRIC=VALUE with a number, e.g. curve.mig=0.1") from None


def fmt_floors(row: dict[str, Any]) -> str:
    return ", ".join(f"{m} {v:.4f}" for m, v in row["floors"].items())


if __name__ == "__main__":
    main()
