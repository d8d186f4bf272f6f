"""The benchmark in its tiny mode, so it never rots: every way yields a finite rate and the JSON is written, and
the console shows one line per timed run (no progress bar, no Lightning banner), then the table."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bvp.bench import WAYS, main


def test_bench_tiny_mode_writes_finite_rates_and_one_line_per_timed_run(tmp_path: Path, capfd) -> None:
    out = tmp_path / "bench.json"
    args = ["--samples", "64", "--batch-size", "32", "--repeats", "1", "--json", str(out)]
    # as on a terminal, where the epoch_line callback keeps Lightning's bar: the bench must turn it off itself
    main([*args, "--cases", "cnn/mnist", "beta_vae/cifar10", "--", "callbacks.epoch_line.interactive=true"])
    results = json.loads(out.read_text())
    assert set(results["cases"]) == {"cnn/mnist", "beta_vae/cifar10"}
    for case in results["cases"].values():
        rates = case["samples_per_s"]
        assert set(rates) == set(WAYS)
        assert all(math.isfinite(v) and v > 0 for v in rates.values())
        assert math.isfinite(case["project_vs_plain"]) and case["project_vs_plain"] > 0
    printed = capfd.readouterr()
    assert "| cnn/mnist |" in printed.out
    runs = [line for line in printed.err.splitlines() if line.startswith("bench ")]
    assert len(runs) == 2 * len(WAYS) and runs[0].startswith("bench cnn/mnist project 1/1: ")
    assert "it/s" not in printed.out + printed.err and "GPU available" not in printed.out + printed.err
