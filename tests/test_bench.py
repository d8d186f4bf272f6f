"""The benchmark in its tiny mode, so it never rots: every way yields a finite rate and the JSON is written."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bvp.bench import WAYS, main


def test_bench_tiny_mode_writes_finite_rates(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.json"
    args = ["--samples", "64", "--batch-size", "32", "--repeats", "1", "--json", str(out)]
    main([*args, "--cases", "cnn/mnist", "beta_vae/cifar10", "--", "trainer.enable_progress_bar=false"])
    results = json.loads(out.read_text())
    assert set(results["cases"]) == {"cnn/mnist", "beta_vae/cifar10"}
    for case in results["cases"].values():
        rates = case["samples_per_s"]
        assert set(rates) == set(WAYS)
        assert all(math.isfinite(v) and v > 0 for v in rates.values())
        assert math.isfinite(case["project_vs_plain"]) and case["project_vs_plain"] > 0
    assert "| cnn/mnist |" in capsys.readouterr().out
