"""The report: numbers equal hand computations from metrics.json, statistics match scipy, files are valid."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from bvp.io import atomic_write_json
from bvp.report import compare, describe, report
from bvp.sweep import SWEEP_FILE, sweep_jobs

ACC = {  # (model, beta) -> fine-tuned accuracies of seeds 0, 1, 2
    ("beta_vae", 1): [0.90, 0.92, 0.91],
    ("beta_vae", 5): [0.95, 0.93, 0.96],
    ("cnn", 1): [0.97, 0.98, 0.975],
}


def fake_sweep(root: Path) -> Path:
    """metrics.json files as train.py writes them, plus one failed run and one job never started."""
    for (model, beta), accs in ACC.items():
        for seed, acc in enumerate(accs):
            run = root / f"model={model},beta={beta},seed={seed}"
            (run / ".hydra").mkdir(parents=True)
            (run / ".hydra" / "overrides.yaml").write_text(f"- variant={model}_{beta}\n- seed={seed}\n")
            metrics = {
                "dense_test_acc": acc + 0.01,
                "pruned_test_acc": acc - 0.02,
                "finetuned_test_acc": acc,
                "accuracy_drop": 0.01,
                "compression_ratio": 2.0 - 0.001 * seed,
                "compression_ratio_full": 4.0,
                "compression_ratio_bytes": 1.9,
                "val/active_units": 10 - beta,
                "val/kl": 20.0 / beta,
            }
            run_info = {"dataset": "mnist", "model": model, "beta": beta, "seed": seed}
            atomic_write_json(run / "metrics.json", {"status": "done", "run": run_info, "metrics": metrics})
    bad = root / "model=beta_vae,beta=5,seed=3"
    atomic_write_json(bad / "metrics.json", {"status": "failed", "error": "FloatingPointError: NaN", "run": {}})
    jobs = [[f"variant={m}_{b}", f"seed={s}"] for (m, b), accs in ACC.items() for s in range(len(accs))]
    jobs.append(["variant=beta_vae_10", "seed=0"])  # never ran
    atomic_write_json(root / SWEEP_FILE, {"jobs": jobs})
    return root


def test_report_numbers_equal_hand_computation(tmp_path: Path) -> None:
    result = report(fake_sweep(tmp_path / "sweep"), resamples=500)
    out = result["out_dir"]
    assert result["runs"] == 10 and result["done"] == 9 and result["missing"] == 1
    with (out / "summary.csv").open() as f:
        summary = {(r["model"], r["beta"]): r for r in csv.DictReader(f)}
    row = summary[("beta_vae", "5")]
    accs = np.array(ACC[("beta_vae", 5)])
    assert int(row["n"]) == 3
    assert float(row["finetuned_test_acc_mean"]) == pytest.approx(accs.mean())
    assert float(row["finetuned_test_acc_std"]) == pytest.approx(accs.std(ddof=1))
    assert float(row["finetuned_test_acc_min"]) == pytest.approx(0.93)
    assert float(row["dense_test_acc_max"]) == pytest.approx(0.97)
    assert float(row["compression_ratio_mean"]) == pytest.approx(2.0 - 0.001)
    assert float(row["active_units_mean"]) == pytest.approx(5.0)
    assert summary[("cnn", "")]["n"] == "3"  # the baseline has no beta

    with (out / "runs.csv").open() as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 10 and sum(r["status"] == "failed" for r in runs) == 1

    md = (out / "summary.md").read_text()
    assert "| mnist | beta_vae | 5 | 3 | 95.67 ± 1.53 (94.00..97.00)" in md  # dense = fine-tuned + 1 point
    assert "FloatingPointError: NaN" in md and "variant=beta_vae_10 seed=0" in md

    with (out / "comparisons.csv").open() as f:
        comps = [r for r in csv.DictReader(f) if r["beta"] == "5" and r["metric"] == "finetuned_test_acc"]
    vs_beta1 = next(c for c in comps if c["versus"] == "beta=1")
    expected = stats.ttest_ind(accs, ACC[("beta_vae", 1)], equal_var=False)
    assert float(vs_beta1["diff"]) == pytest.approx(accs.mean() - np.mean(ACC[("beta_vae", 1)]))
    assert float(vs_beta1["p_welch"]) == pytest.approx(expected.pvalue)
    assert any(c["versus"] == "cnn" for c in comps)

    for name in ("accuracy_mnist", "latent_vs_beta"):
        with Image.open(out / f"{name}.png") as img:
            img.verify()
            assert img.format == "PNG" and img.size[0] > 200
    assert list((out / "tb").glob("events.out.tfevents.*"))


def test_welch_and_bootstrap_match_independent_computation() -> None:
    a = np.array([0.91, 0.93, 0.92, 0.95, 0.94])
    b = np.array([0.88, 0.90, 0.87, 0.91])
    got = compare(a, b, resamples=20_000, seed=1)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))  # Welch-Satterthwaite
    assert got["p_welch"] == pytest.approx(2 * stats.t.sf(abs(t), dof), rel=1e-9)
    rng = np.random.default_rng(0)  # a plain percentile bootstrap, resampling each group
    diffs = [rng.choice(a, len(a)).mean() - rng.choice(b, len(b)).mean() for _ in range(20_000)]
    low, high = np.percentile(diffs, [2.5, 97.5])
    assert got["ci_low"] == pytest.approx(low, abs=3e-3) and got["ci_high"] == pytest.approx(high, abs=3e-3)
    assert got["ci_low"] < got["diff"] < got["ci_high"]
    single = compare(a, b[:1])
    assert math.isnan(single["p_welch"]) and math.isnan(single["ci_low"])
    assert describe(np.array([2.0]))["n"] == 1 and math.isnan(describe(np.array([2.0]))["std"])


def test_sweep_jobs_expand_like_hydra() -> None:
    jobs = sweep_jobs({"dataset": "mnist,cifar10"}, ["beta=1,5", "seed=0"])
    assert jobs == [
        ["dataset=mnist", "beta=1", "seed=0"],
        ["dataset=mnist", "beta=5", "seed=0"],
        ["dataset=cifar10", "beta=1", "seed=0"],
        ["dataset=cifar10", "beta=5", "seed=0"],
    ]


def test_report_refuses_a_folder_without_runs(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no metrics\.json"):
        report(tmp_path)
