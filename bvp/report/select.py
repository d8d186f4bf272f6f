"""``python -m bvp.report.select DIR --key model.cls_weight``: choose one setting on validation data, never on test.

Reads the finished runs under DIR (a sweep over ``--key``, the rest of the identity fixed), and picks the value with
the highest mean of ``--metric`` (default ``dense_val_acc``) over seeds. A test metric is refused, as are runs that
differ in another setting too (the choice would be confounded with it). ``--out`` writes the candidates and the
choice as JSON, the record of how a setting was chosen (issues 20 and 21: ``model.cls_weight``).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bvp.io import atomic_write_json
from bvp.report import stats
from bvp.report.collect import NoRuns, Run, done_runs, group_runs, load_runs, show, values, varying_keys


class SelectionError(ValueError):
    """The runs cannot choose the setting as asked."""


def candidates(runs: list[Run], key: str, metric: str) -> list[dict[str, Any]]:
    """Per value of ``key``: n, mean and 95% t CI of ``metric`` over the seeds, best first (ties: in sorted order)."""
    if "test" in metric:
        raise SelectionError(f"--metric={metric}: a setting is chosen on validation data only; give e.g. dense_val_acc")
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
        x = values(group, metric)
        if len(x) == 0:
            raise SelectionError(f"--metric={metric}: the runs at {key}={show(value)} do not record it")
        low, high = stats.t_ci(x)
        rows.append({"value": value, "n": len(x), "mean": stats.mean(x), "ci_low": low, "ci_high": high})
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
    parser.add_argument("--out", type=Path, default=None, help="write the candidates and the choice here (JSON)")
    args = parser.parse_args(argv)
    try:
        runs = load_runs(args.sweep_dir) if args.sweep_dir.is_dir() else []
        if not runs:
            raise NoRuns(f"{args.sweep_dir}: no metrics.json under it; give the sweep folder of the candidates")
        rows = candidates(runs, args.key, args.metric)
    except (NoRuns, SelectionError) as err:
        print(f"select: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    for r in rows:
        print(f"{args.key}={show(r['value'])}: {args.metric} {r['mean']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}] n={r['n']}")
    print(f"chosen: {args.key}={show(rows[0]['value'])} (highest mean {args.metric})")
    if args.out is not None:
        record = {"key": args.key, "metric": args.metric, "chosen": rows[0]["value"], "candidates": rows}
        atomic_write_json(args.out, record | {"sweep_dir": str(args.sweep_dir)})


if __name__ == "__main__":
    main()
