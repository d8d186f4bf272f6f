"""bvp-report: fake sweeps written as metrics.json; numbers equal hand and scipy computations, every run
is counted or listed, the files and figures exist; the statistics are checked function by function."""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from scipy import stats as sps

from bvp.io import atomic_write_json
from bvp.report import main, report
from bvp.report import stats as st
from bvp.report.collect import Run, group_runs, sweeps, varying_keys
from bvp.report.prunability import dense_models, points, spearman_rows
from bvp.report.tables import STATS_COLUMNS, curves, stat_rows
from bvp.sweep import SWEEP_FILE

RESAMPLES = 300
BASE = {"dataset": "mnist", "latent_dim": 10, "epochs": 30, "pruning.amount": 0.9, "pruning.finetune_loss": "ce"}
FINETUNED = {  # (model, beta) -> fine-tuned test accuracy of seeds 0..3
    ("beta_vae", 1.0): [0.950, 0.962, 0.955, 0.958],
    ("beta_vae", 10.0): [0.930, 0.925, 0.941, 0.936],
    ("cnn", 1.0): [0.975, 0.981, 0.979, 0.977],
}
DENSE_GAIN = {"beta_vae": [0.010, 0.014, 0.011, 0.019], "cnn": [0.004, 0.006, 0.002, 0.007]}  # dense - fine-tuned
PRUNED_LOSS = [0.020, 0.031, 0.027, 0.024]  # fine-tuned - pruned


def write_run(
    root: Path,
    overrides: list[str],
    identity: dict[str, Any],
    metrics: dict[str, Any],
    status: str = "done",
    error: str | None = None,
) -> Path:
    """A run folder as a Hydra sweep job leaves it: named by its overrides, metrics.json and .hydra/overrides.yaml."""
    run = root / ",".join(overrides)
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    atomic_write_json(
        run / "metrics.json", {"status": status, "error": error, "identity": identity, "metrics": metrics, "config": {}}
    )
    return run


def accuracies(dense: float, pruned: float, finetuned: float, sparsity: float) -> dict[str, float]:
    return {
        "dense_test_acc": dense,
        "pruned_test_acc": pruned,
        "finetuned_test_acc": finetuned,
        "accuracy_drop": dense - finetuned,
        "pruning_drop": dense - pruned,
        "sparsity": sparsity,
        "compression_ratio": 1 / (1 - sparsity),
    }


def fake_sweep(root: Path) -> Path:
    """beta 1 and 10 and the CNN (run once per beta, as a sweep over beta repeats it), seeds 0..3, one
    failed run and one job that never started."""
    jobs = []
    for beta in (1.0, 10.0):
        for model in ("beta_vae", "cnn"):
            for seed in range(4):
                identity = {
                    **BASE,
                    "model": model,
                    "beta": beta,
                    "seed": seed,
                    "model.cls_weight": 10.0 if model == "beta_vae" else 1.0,
                }
                ft = FINETUNED[(model, beta if model == "beta_vae" else 1.0)][seed]
                metrics = accuracies(ft + DENSE_GAIN[model][seed], ft - PRUNED_LOSS[seed], ft, 0.9) | {
                    "dense_active_units": 10 - beta
                }
                jobs.append([f"model={model}", f"beta={beta}", f"seed={seed}"])
                write_run(root, jobs[-1], identity, metrics)
    identity = {**BASE, "model": "beta_vae", "beta": 10.0, "seed": 4, "model.cls_weight": 10.0}
    jobs.append(["model=beta_vae", "beta=10.0", "seed=4"])
    write_run(root, jobs[-1], identity, {}, status="failed", error="FloatingPointError: NaN loss\ntraceback line")
    jobs.append(["model=beta_vae", "beta=3.0", "seed=0"])  # never started
    atomic_write_json(root / SWEEP_FILE, {"jobs": jobs})
    return root


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_report_counts_every_run_and_its_numbers_equal_scipy(tmp_path: Path) -> None:
    result = report(fake_sweep(tmp_path / "sweep"), resamples=RESAMPLES)
    out = result["out_dir"]
    assert (result["runs"], result["done"], result["missing"], result["groups"]) == (17, 16, 1, 3)

    summary = {r["group"]: r for r in read_csv(out / "summary.csv")}
    assert sorted(summary) == [
        "model=beta_vae beta=1 model.cls_weight=10",
        "model=beta_vae beta=10 model.cls_weight=10",
        "model=cnn model.cls_weight=1",
    ]
    cnn = summary["model=cnn model.cls_weight=1"]
    assert cnn["n"] == "4" and cnn["beta"] == "" and cnn["beta_norm"] == ""  # the CNN once per seed, beta not applicable
    row = summary["model=beta_vae beta=10 model.cls_weight=10"]
    x = np.array(FINETUNED[("beta_vae", 10.0)])
    assert float(row["beta_norm"]) == pytest.approx(10 * 10 / 784)
    assert int(row["finetuned_test_acc_n"]) == 4
    assert float(row["finetuned_test_acc_mean"]) == pytest.approx(x.mean())
    low, high = sps.t.interval(0.95, 3, loc=x.mean(), scale=x.std(ddof=1) / 2)
    assert (float(row["finetuned_test_acc_t_low"]), float(row["finetuned_test_acc_t_high"])) == pytest.approx((low, high))
    assert (float(row["finetuned_test_acc_bca_low"]), float(row["finetuned_test_acc_bca_high"])) == pytest.approx(
        st.bootstrap_ci(x, RESAMPLES)
    )

    runs = read_csv(out / "runs.csv")
    assert len(runs) == 17 and [r["status"] for r in runs].count("failed") == 1
    assert {"model", "beta", "model.cls_weight", "seed", "beta_norm", "finetuned_test_acc", "sparsity"} <= set(runs[0])

    tests = read_csv(out / "stats.csv")
    assert tuple(tests[0]) == STATS_COLUMNS

    def find(comparison: str, metric: str, method: str = "") -> dict[str, str]:
        (hit,) = [t for t in tests if t["comparison"] == comparison and t["metric"] == metric and t["method"].startswith(method)]
        return hit

    vae1, vae10 = np.array(FINETUNED[("beta_vae", 1.0)]), x
    dense10 = vae10 + DENSE_GAIN["beta_vae"]
    paired = find("paired drop, dense - fine-tuned: model=beta_vae beta=10 model.cls_weight=10", "accuracy_drop", "paired t")
    assert float(paired["p"]) == pytest.approx(sps.ttest_rel(dense10, vae10).pvalue)
    assert float(paired["estimate"]) == pytest.approx(np.mean(DENSE_GAIN["beta_vae"]))
    assert not any(t["method"].startswith("Wilcoxon") for t in tests)  # one test per hypothesis: the paired t
    beta = find("beta=10 vs beta=1 (model=beta_vae model.cls_weight=10)", "finetuned_test_acc")
    assert float(beta["estimate"]) == pytest.approx(vae10.mean() - vae1.mean())
    assert float(beta["p"]) == pytest.approx(sps.ttest_ind(vae10, vae1, equal_var=False).pvalue)
    # Beta-VAE vs CNN: model.cls_weight comes with the model, so it is not a key the two must share
    interaction = find("interaction: model=beta_vae beta=1 model.cls_weight=10 vs model=cnn model.cls_weight=1", "accuracy_drop")
    expected = sps.ttest_ind(DENSE_GAIN["beta_vae"], DENSE_GAIN["cnn"], equal_var=False)
    assert float(interaction["p"]) == pytest.approx(expected.pvalue) and interaction["n1"] == interaction["n2"] == "4"
    assert len([t for t in tests if t["comparison"].startswith("model=beta_vae")]) == 4  # beta 1, 10 x dense, fine-tuned

    p = np.array([float(t["p"]) for t in tests])
    order = np.argsort(p)
    by_hand = np.empty_like(p)
    by_hand[order] = np.minimum(1, np.maximum.accumulate([(len(p) - i) * p[j] for i, j in enumerate(order)]))
    assert np.array([float(t["p_holm"]) for t in tests]) == pytest.approx(by_hand)

    md = (out / "summary.md").read_text()
    assert "`model=beta_vae,beta=10.0,seed=4`: failed: FloatingPointError: NaN loss" in md and "traceback line" not in md
    assert "## Failed or unfinished runs (1)" in md and "## Missing runs (1)" in md and "model=beta_vae beta=3.0 seed=0" in md
    assert "## Repeated runs not counted (4)" in md and md.count("`model=cnn,beta=10.0,seed=") == 4  # listed, not counted
    assert "| beta_vae | 10 | 0.1276 | 10 | 4† | 0.9330 |" in md  # keys, beta_norm beside beta, n marked (< 5), mean
    assert f"## Exploratory tests ({len(tests)})" in md
    for name in ("curves", "accuracy"):
        with Image.open(out / f"{name}.png") as img:
            img.verify()
            assert img.format == "PNG" and img.size[0] > 200
    assert list((out / "tb").glob("events.out.tfevents.*"))
    # one amount (0.9) per seed: the drop at 90% sparsity is each run's own accuracy_drop
    points = read_csv(out / "prunability.csv")
    assert len(points) == 12 and {p["stratum"] for p in points} == {""}
    vae10 = [float(p["drop_at_90"]) for p in points if p["model"] == "beta_vae" and p["beta"] == "10.0"]
    assert vae10 == pytest.approx(DENSE_GAIN["beta_vae"])


AMOUNTS = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99)
CURVE = (0.985, 0.980, 0.975, 0.965, 0.950, 0.900)  # mean fine-tuned accuracy per amount; dense 0.980
SEED_SHIFT = (-0.001, 0.0, 0.001)


def test_a_study_folder_lists_the_missing_and_refused_jobs_of_each_part(tmp_path: Path) -> None:
    """bvp-report outputs/study/mnist reads every part's sweep.json (curves/, random/, ...), not only a top one."""
    study = tmp_path / "study"
    fake_sweep(study / "curves")
    fake_sweep(study / "random")
    info = json.loads((study / "random" / SWEEP_FILE).read_text())
    refused = {"overrides": ["model=cnn", "beta=-1"], "errors": ["beta=-1: must be a finite number >= 0, e.g. beta=4"]}
    atomic_write_json(study / "random" / SWEEP_FILE, info | {"jobs": [*info["jobs"], refused["overrides"]], "refused": [refused]})
    md = (report(study, resamples=RESAMPLES)["out_dir"] / "summary.md").read_text()
    assert "2 jobs of sweep.json never started." in md and "## Missing runs (2)" in md
    assert "- `curves/`: model=beta_vae beta=3.0 seed=0" in md and "- `random/`: model=beta_vae beta=3.0 seed=0" in md
    assert "## Refused runs (1)\n\n- `random/`: model=cnn beta=-1: beta=-1: must be" in md
    for damaged in ('{"jobs": [', "[1, 2]", '{"jobs": 5}', '{"jobs": [], "refused": [1]}'):  # read as missing, with a warning
        (study / "random" / SWEEP_FILE).write_text(damaged)
        assert dict(sweeps(study))["random"] == {} and dict(sweeps(study))["curves"]["jobs"]
    md = (report(study, resamples=RESAMPLES)["out_dir"] / "summary.md").read_text()
    assert "1 job of sweep.json never started." in md and "## Refused runs (0)" in md


def test_six_amounts_give_six_rows_a_curve_and_its_endpoints(tmp_path: Path) -> None:
    root = tmp_path / "amounts"
    for amount, acc in zip(AMOUNTS, CURVE, strict=True):
        for seed, shift in enumerate(SEED_SHIFT):
            identity = {**BASE, "model": "cnn", "beta": 1.0, "seed": seed, "pruning.amount": amount}
            write_run(
                root,
                [f"pruning.amount={amount}", f"seed={seed}"],
                identity,
                accuracies(0.980, acc + shift - 0.05, acc + shift, amount),
            )
    result = report(root, resamples=RESAMPLES)
    out = result["out_dir"]
    summary = read_csv(out / "summary.csv")
    assert [float(r["pruning.amount"]) for r in summary] == list(AMOUNTS) and all(r["n"] == "3" for r in summary)

    # mean curve: 0.975 at 0.9 is inside (>= 0.97), 0.965 at 0.95 outside; margins +0.005 / -0.005 cross
    # halfway between x = ln 10 and ln 20, so s = 1 - 1/sqrt(200)
    x = np.log(1 / (1 - np.array(AMOUNTS)))
    auc = sum((x[i + 1] - x[i]) * (CURVE[i] + CURVE[i + 1]) / 2 for i in range(5)) / (x[-1] - x[0])
    md = (out / "summary.md").read_text()
    curve_row = next(line for line in md.splitlines() if line.startswith("| all runs | 3† | 0.9800 - |"))
    assert f"| {1 - 1 / math.sqrt(200):.4f} |" in curve_row and f"| {auc:.4f} |" in curve_row

    seeds = read_csv(out / "endpoints.csv")
    assert [int(s["seed"]) for s in seeds] == [0, 1, 2] and all(s["points"] == "6" for s in seeds)
    for s, shift in zip(seeds, SEED_SHIFT, strict=True):  # margins 0.005 + shift and -0.005 + shift
        crossing = np.log(10) + (0.005 + shift) / 0.01 * np.log(2)
        assert float(s["tolerated_sparsity"]) == pytest.approx(1 - np.exp(-crossing))
        assert float(s["auc"]) == pytest.approx(auc + shift)
    with Image.open(out / "curves.png") as img:
        assert img.size[0] > 200
    assert not [t for t in read_csv(out / "stats.csv") if t["comparison"].startswith("beta=")]  # nothing to compare


SETTINGS = (("beta_vae", 1.0), ("beta_vae", 4.0), ("cnn", 1.0))  # the CNN ignores beta
MIG = {("beta_vae", 1.0): [0.10, 0.14, 0.12], ("beta_vae", 4.0): [0.30, 0.25, 0.35], ("cnn", 1.0): [0.05, 0.08, 0.03]}
SLOPE = {("beta_vae", 1.0): [1.0, 0.6, 1.4], ("beta_vae", 4.0): [0.5, 0.9, 0.3], ("cnn", 1.0): [1.2, 1.1, 2.0]}
LOSS = (0.0, 0.002, 0.005, 0.01, 0.02, 0.05)  # dense - fine-tuned per amount, times the seed's slope


def dsprites_sweep(root: Path) -> Path:
    """dSprites at beta 1 and 4 and the CNN, seeds 0..2, a six-amount curve each (18 runs per dense model),
    with the dense measures, and cost figures whose pruned/dense ratio differs by seed."""
    for setting in SETTINGS:
        model, beta = setting
        for seed in range(3):
            dense = 0.98 + 0.001 * seed
            measures = {"dense_mig": MIG[setting][seed], "dense_label_mig": 0.2 + 0.1 * seed, "dense_active_units": 10.0 - seed}
            for amount, loss in zip(AMOUNTS, LOSS, strict=True):
                finetuned = dense - SLOPE[setting][seed] * loss
                costs = {"dense_latency_ms_b1": 2.0 + seed, "pruned_latency_ms_b1": 1.0 + seed, "dense_params": 1000}
                identity = {**BASE, "dataset": "dsprites", "model": model, "beta": beta, "seed": seed, "pruning.amount": amount}
                metrics = accuracies(dense, finetuned - 0.05, finetuned, amount) | measures | costs | {"pruned_params": 1000}
                write_run(root, [f"model={model}", f"beta={beta}", f"pruning.amount={amount}", f"seed={seed}"], identity, metrics)
    return root


def test_disentanglement_of_dense_models_against_their_prunability(tmp_path: Path) -> None:
    out = report(dsprites_sweep(tmp_path / "dsprites"), resamples=RESAMPLES)["out_dir"]

    dense = {r["group"]: r for r in read_csv(out / "disentanglement.csv")}  # one row per setting, each dense model once
    assert sorted(dense) == ["model=beta_vae beta=1", "model=beta_vae beta=4", "model=cnn"]
    row, mig4 = dense["model=beta_vae beta=4"], np.array(MIG[("beta_vae", 4.0)])
    assert row["n"] == row["dense_mig_n"] == "3" and float(row["dense_mig_mean"]) == pytest.approx(mig4.mean())
    low, high = sps.t.interval(0.95, 2, loc=mig4.mean(), scale=mig4.std(ddof=1) / math.sqrt(3))
    assert (float(row["dense_mig_t_low"]), float(row["dense_mig_t_high"])) == pytest.approx((low, high))
    assert "dense_active_units_cov_n" not in row  # never measured: no column

    points = read_csv(out / "prunability.csv")  # one point per seed's curve
    assert len(points) == 9 and all(p["points"] == "6" for p in points)
    migs = np.array([MIG[s][seed] for s in SETTINGS for seed in range(3)])
    drops = np.array([SLOPE[s][seed] * LOSS[2] for s in SETTINGS for seed in range(3)])  # 0.9 is a measured point
    assert [float(p["dense_mig"]) for p in points] == pytest.approx(migs)
    assert [float(p["drop_at_90"]) for p in points] == pytest.approx(drops)
    for p, s in zip(points, [(s, seed) for s in SETTINGS for seed in range(3)], strict=True):
        dense_acc = 0.98 + 0.001 * s[1]
        curve = [dense_acc - SLOPE[s[0]][s[1]] * loss for loss in LOSS]
        assert float(p["tolerated_sparsity"]) == pytest.approx(st.tolerated_sparsity(AMOUNTS, curve, dense_acc))

    tests = read_csv(out / "stats.csv")
    (rho,) = [t for t in tests if t["comparison"] == "spearman dense_mig vs drop_at_90"]
    vae = [i for i, (s, _) in enumerate((s, seed) for s in SETTINGS for seed in range(3)) if s[0] == "beta_vae"]
    migs, drops = migs[vae], drops[vae]  # the CNN's points are never pooled with the Beta-VAEs'
    expected = sps.spearmanr(migs, drops)
    assert rho["metric"] == "rho" and rho["n1"] == "6" and float(rho["estimate"]) == pytest.approx(expected.statistic)
    assert float(rho["p"]) == pytest.approx(st.exact_spearman_p(migs, drops))  # n = 6: exact
    assert (float(rho["ci_low"]), float(rho["ci_high"])) == pytest.approx(st.bonett_wright_ci(expected.statistic, 6))
    p_all = np.array([float(t["p"]) for t in tests])
    assert [float(t["p_holm"]) for t in tests] == pytest.approx(st.holm(p_all), nan_ok=True)  # Holm over the whole report
    spearman = read_csv(out / "spearman.csv")
    assert len(spearman) == 6 and {t["measure"] for t in spearman} == {"dense_mig", "dense_label_mig", "dense_active_units"}
    assert float(next(t for t in spearman if t["comparison"] == rho["comparison"])["p_holm"]) == float(rho["p_holm"])

    costs = {r["group"]: r for r in read_csv(out / "cost.csv")}
    cost = costs["model=beta_vae beta=1 pruning.amount=0.9"]
    assert float(cost["dense_latency_ms_b1"]) == pytest.approx(3.0) and float(cost["pruned_latency_ms_b1"]) == pytest.approx(2.0)
    assert float(cost["latency_ms_b1_ratio"]) == pytest.approx(np.mean([1 / 2, 2 / 3, 3 / 4]))  # per-run ratios, then mean
    assert float(cost["params_ratio"]) == 1.0 and "macs_n" not in cost  # no MACs measured: no column

    md = (out / "summary.md").read_text()
    assert "## Disentanglement of the dense models" in md and "## Disentanglement and prunability" in md
    assert f"| model=beta_vae beta=4 | 3† | {mig4.mean():.4f} [{low:.4f}, {high:.4f}] n=3† |" in md
    assert "## What pruning buys" in md and "| model=beta_vae beta=1 pruning.amount=0.9 | 3† | 1000 -> 1000 (1.0000x) |" in md
    with Image.open(out / "disentanglement.png") as img:
        img.verify()
        assert img.format == "PNG" and img.size[0] > 500


def test_missing_keys_leave_their_tables_out_without_a_crash(tmp_path: Path) -> None:
    """An old run (accuracies only), one with a curve but a single measure, one with a dense cost and no pruned one."""
    root = tmp_path / "old"
    base = {**BASE, "model": "beta_vae", "beta": 1.0}
    write_run(root, ["seed=0"], base | {"seed": 0}, {"dense_test_acc": 0.97, "finetuned_test_acc": 0.96})
    write_run(root, ["seed=1"], base | {"seed": 1}, accuracies(0.98, 0.9, 0.97, 0.9) | {"dense_label_mig": "nan"})
    write_run(root, ["seed=2"], base | {"seed": 2}, accuracies(0.98, 0.9, 0.975, 0.9) | {"dense_params": 10})
    out = report(root, resamples=RESAMPLES)["out_dir"]
    assert not (out / "cost.csv").exists() and not (out / "disentanglement.png").exists()
    (row,) = read_csv(out / "disentanglement.csv")
    assert row["dense_label_mig_n"] == "1" and row["dense_label_mig_mean"] == "nan"  # a NaN is kept, counted, shown
    assert not (out / "spearman.csv").exists()  # no point has a finite measure and endpoint together
    md = (out / "summary.md").read_text()
    assert "## What pruning buys" not in md and "## Disentanglement and prunability" not in md
    assert "## Disentanglement of the dense models" in md


def test_a_sweep_over_data_sets_gets_one_table_per_data_set_with_its_own_keys(tmp_path: Path) -> None:
    """dsprites' factor and the stand-in's source are keys of their own data set: columns or notes of its table
    alone, never a column of '-' in the others."""
    root = tmp_path / "mixed"
    own = {"mnist": {}, "dsprites": {"dataset.target_factor": "shape"}, "cifar10": {"dataset_source": "jpeg-stand-in"}}
    for (dataset, extra), model, seed in itertools.product(own.items(), ("beta_vae", "cnn"), range(2)):
        identity = BASE | extra | {"dataset": dataset, "model": model, "beta": 1.0, "seed": seed}
        write_run(root, [f"dataset={dataset}", f"model={model}", f"seed={seed}"], identity, accuracies(0.9, 0.8, 0.85, 0.9))
    md = (report(root, resamples=RESAMPLES)["out_dir"] / "summary.md").read_text()
    section = md.split("## dense_test_acc\n", 1)[1].split("\n## ", 1)[0]
    assert [line for line in section.splitlines() if line.startswith("### ")] == ["### cifar10", "### dsprites", "### mnist"]
    tables = {t.split("\n", 1)[0]: t for t in section.split("### ")[1:]}
    assert "In every row: `dataset.target_factor=shape`." in tables["dsprites"]
    assert "In every row: `dataset_source=jpeg-stand-in`." in tables["cifar10"]
    assert "In every row" not in tables["mnist"]  # no key of another data set, as a note or a column
    assert "| model | beta | beta_norm | n |" in tables["mnist"]


def test_points_are_correlated_within_their_dataset_and_pruning_setting() -> None:
    """Two structures branch from each dense model: two strata, never pooled; each dense model counted once."""
    runs = [
        Run(
            f"{structure},{seed},{amount}",
            "done",
            "",
            {**BASE, "seed": seed, "pruning.amount": amount, "pruning.structure": structure, "model": "beta_vae", "beta": 1.0},
            accuracies(0.98, 0.9, 0.98 - amount * (0.01 + 0.01 * seed), amount) | {"dense_mig": 0.1 * seed},
        )
        for structure in ("weights", "channels")
        for seed in range(5)
        for amount in (0.5, 0.95)
    ]
    assert [m.metrics for m in dense_models(runs)] == [{"dense_mig": 0.1 * seed} for seed in range(5)]
    keys = varying_keys(runs)
    rows = spearman_rows(points(curves(group_runs(runs, keys), keys)))
    assert [r["comparison"] for r in rows] == [
        "spearman dense_mig vs tolerated_sparsity (pruning.structure=channels)",
        "spearman dense_mig vs drop_at_90 (pruning.structure=channels)",
        "spearman dense_mig vs tolerated_sparsity (pruning.structure=weights)",
        "spearman dense_mig vs drop_at_90 (pruning.structure=weights)",
    ]
    assert all(r["n1"] == 5 for r in rows) and rows[1]["estimate"] == pytest.approx(1.0)  # larger MIG, larger drop here


def test_cli_refuses_a_folder_without_runs_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no metrics.json under" in err and "Traceback" not in err


def test_cli_refuses_bad_figures_and_an_unwritable_default_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--figures is where the results page's figures go: without --results it would be ignored, and a file there
    would fail only after the whole report; both are refused before anything is read."""
    a_file = tmp_path / "page.md"
    a_file.write_text("")
    for argv, said in (
        ([str(tmp_path), "--figures", str(tmp_path / "figs")], "only the results page's figures go there; add --results"),
        ([str(tmp_path), "--figures", str(a_file), "--results", str(a_file)], "is a file, not a folder"),
    ):
        with pytest.raises(SystemExit):
            main(argv)
        err = capsys.readouterr().err
        assert said in err and "--figures" in err and "Traceback" not in err
    assert not (tmp_path / "figs").exists()
    (tmp_path / "report").write_text("")  # the default --out, SWEEP_DIR/report, cannot be a folder
    with pytest.raises(SystemExit):
        main([str(tmp_path)])
    assert "(the default --out): is a file, not a folder; give --out" in capsys.readouterr().err


# -- the statistics, one function at a time -------------------------------------------------------------
A = np.array([0.91, 0.93, 0.92, 0.95, 0.94, 0.90])
B = np.array([0.88, 0.90, 0.87, 0.91])


def test_t_ci_and_welch_match_the_textbook_formulas() -> None:
    half = sps.t.ppf(0.975, len(A) - 1) * A.std(ddof=1) / math.sqrt(len(A))
    assert st.t_ci(A) == pytest.approx((A.mean() - half, A.mean() + half))
    va, vb = A.var(ddof=1) / len(A), B.var(ddof=1) / len(B)
    dof = (va + vb) ** 2 / (va**2 / (len(A) - 1) + vb**2 / (len(B) - 1))  # Welch-Satterthwaite
    diff, se = A.mean() - B.mean(), math.sqrt(va + vb)
    got = st.welch(A, B)
    assert got.p == pytest.approx(2 * sps.t.sf(diff / se, dof))
    assert (got.ci_low, got.ci_high) == pytest.approx((diff - sps.t.ppf(0.975, dof) * se, diff + sps.t.ppf(0.975, dof) * se))
    pooled = math.sqrt(((len(A) - 1) * A.var(ddof=1) + (len(B) - 1) * B.var(ddof=1)) / 8)
    assert got.effect_size == pytest.approx(diff / pooled * (1 - 3 / (4 * 8 - 1)), rel=2e-3)  # J ~ 1 - 3/(4 dof - 1)
    assert st.hedges_correction(8) == pytest.approx(math.gamma(4) / (2 * math.gamma(3.5)))


def test_bca_matches_a_hand_written_bca() -> None:
    """Efron's BCa by hand: bias z0 from the bootstrap distribution, acceleration from the jackknife."""
    x = np.array([2.1, 3.4, 1.9, 5.8, 2.7, 3.1, 9.0, 2.2])
    rng = np.random.default_rng(7)
    boot = rng.choice(x, (40_000, len(x))).mean(axis=1)
    z0 = sps.norm.ppf(np.mean(boot < x.mean()))
    jack = np.array([np.delete(x, i).mean() for i in range(len(x))])
    d = jack.mean() - jack
    a = (d**3).sum() / (6 * (d**2).sum() ** 1.5)
    z = sps.norm.ppf([0.025, 0.975])
    expected = np.percentile(boot, 100 * sps.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))
    assert st.bootstrap_ci(x, resamples=40_000, seed=1) == pytest.approx(tuple(expected), abs=0.08)
    percentile = st.bootstrap_ci(x, resamples=40_000, seed=1, method="percentile")
    assert percentile == pytest.approx(tuple(np.percentile(boot, [2.5, 97.5])), abs=0.08)
    assert st.bootstrap_ci(x, 40_000, seed=1)[1] > percentile[1] + 0.1  # BCa moves right with the right skew


def test_paired_tests_match_scipy() -> None:
    dense, finetuned = A + 0.02, A - np.array([0.001, 0.004, -0.002, 0.003, 0.006, 0.002])
    d = dense - finetuned
    t = st.paired_t(d)
    assert t.p == pytest.approx(sps.ttest_rel(dense, finetuned).pvalue) and t.n1 == t.n2 == 6
    assert t.effect_size == pytest.approx(st.hedges_correction(5) * d.mean() / d.std(ddof=1))


def test_spearman_exact_p_and_bonett_wright_ci() -> None:
    x, y = np.arange(1.0, 9.0), np.array([2.0, 1, 4, 3, 6, 5, 8, 7])
    got = st.spearman(np.append(x, np.nan), np.append(y, 0.5))  # the NaN pair is left out
    assert got.estimate == pytest.approx(1 - 6 * 8 / (8 * 63)) and got.n1 == 8  # 1 - 6 sum d^2 / (n (n^2 - 1))
    assert got.effect_size == got.estimate and (got.ci_low, got.ci_high) == st.bonett_wright_ci(got.estimate, 8)
    # the exact p against every pairing, by brute force with scipy's rho (ties included)
    a, b = np.array([1.0, 1, 2, 3, 5, 4]), np.array([2.0, 1, 3, 3, 6, 4])
    observed = sps.spearmanr(a, b).statistic
    null = np.array([sps.spearmanr(a, b[list(p)]).statistic for p in itertools.permutations(range(6))])
    brute = 2 * min((null >= observed - 1e-12).mean(), (null <= observed + 1e-12).mean())
    assert st.spearman(a, b).p == pytest.approx(min(1.0, brute))
    many = np.arange(12.0)
    drawn = st.spearman(many, many**2 % 7)  # n > 10: 100,000 random pairings, near the t approximation here
    assert "random pairings" in drawn.method and drawn.p == pytest.approx(sps.spearmanr(many, many**2 % 7).pvalue, abs=0.02)
    three, constant = st.spearman([1, 2, 3], [1, 3, 2]), st.spearman([1, 1, 1, 1], [1, 2, 3, 4])
    assert three.estimate == pytest.approx(0.5) and math.isnan(three.ci_low)  # n < 4: no CI
    assert math.isnan(constant.estimate) and math.isnan(st.spearman([1, 2], [2, 1]).estimate)


def test_drop_at_90_by_hand() -> None:
    # between 0.5 (x = ln 2) and 0.95 (x = ln 20): ln 10 is ln 5 / ln 10 of the way
    acc = 0.97 + math.log(5) / math.log(10) * (0.93 - 0.97)
    assert st.drop_at([0.5, 0.95], [0.97, 0.93], dense=0.98) == pytest.approx(0.98 - acc)
    assert st.drop_at([0.95], [0.93], dense=0.98) == pytest.approx(0.05 * math.log(10) / math.log(20))  # dense at x = 0
    assert st.drop_at([0.5, 0.9000004, 0.99], [0.97, 0.95, 0.5], dense=0.98) == pytest.approx(0.03)  # measured there
    assert math.isnan(st.drop_at([0.5, 0.8], [0.97, 0.96], dense=0.98))  # no extrapolation
    assert math.isnan(st.drop_at([0.9], [0.97], dense=math.nan))


def test_holm_step_down_by_hand() -> None:
    got = st.holm([0.01, 0.04, 0.03, math.nan, 0.005])
    assert got[[0, 1, 2, 4]] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and math.isnan(got[3])
    assert st.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_degenerate_data_gives_nan_not_a_crash() -> None:
    one, constant, zeros = np.array([0.9]), np.full(5, 0.01), np.zeros(5)
    assert all(math.isnan(v) for v in (*st.t_ci(one), *st.bootstrap_ci(one), *st.t_ci(constant), *st.bootstrap_ci(constant)))
    t = st.paired_t(constant)
    assert t.estimate == pytest.approx(0.01) and math.isnan(t.p) and math.isnan(t.ci_low) and math.isnan(t.effect_size)
    assert st.paired_t(zeros).effect_size == 0.0
    same = st.welch(np.full(3, 0.9), np.full(4, 0.9))
    assert same.estimate == 0 and math.isnan(same.p) and same.effect_size == 0.0
    assert math.isnan(st.welch(A, one).p) and st.welch(A, one).estimate == pytest.approx(A.mean() - 0.9)
    assert math.isnan(st.paired_t([]).estimate) and math.isnan(st.welch([], B).effect_size)


def test_tolerated_sparsity_and_auc_by_hand() -> None:
    s = [0.5, 0.9, 0.99]
    assert st.tolerated_sparsity(s, [0.98, 0.978, 0.975], dense=0.98) == pytest.approx(0.99)  # never leaves: highest measured
    # inside at 0.5 (0.975 >= 0.97), outside at 0.9 (0.96): margins 0.005, -0.01 -> a third of the way from ln 2 to ln 10
    crossing = math.log(2) + (1 / 3) * (math.log(10) - math.log(2))
    assert st.tolerated_sparsity(s, [0.975, 0.96, 0.9], dense=0.98) == pytest.approx(1 - math.exp(-crossing))
    # already outside at 0.5: the dense model (s = 0, margin 0.01) is the point inside; 0.94 at 0.5 is -0.03
    assert st.tolerated_sparsity(s, [0.94, 0.9, 0.8], dense=0.98) == pytest.approx(1 - math.exp(-0.25 * math.log(2)))
    assert math.isnan(st.tolerated_sparsity([0.0, 0.5], [0.95, 0.94], dense=0.98))  # measured at 0 and outside there
    assert st.tolerated_sparsity([0.9, 0.0, 0.5], [0.96, 0.98, 0.975], dense=0.98) == pytest.approx(
        1 - math.exp(-crossing)
    )  # unsorted input, an amount-0 point at x = 0
    x = np.log([2.0, 10.0, 100.0])
    expected = ((x[1] - x[0]) * (0.975 + 0.96) / 2 + (x[2] - x[1]) * (0.96 + 0.9) / 2) / (x[2] - x[0])
    assert st.curve_auc(s, [0.975, 0.96, 0.9]) == pytest.approx(expected)
    assert math.isnan(st.curve_auc([0.9], [0.95]))
    assert st.curve_endpoints(s, [0.975, 0.96, 0.9], 0.98)["auc"] == pytest.approx(expected)
    assert st.axis_sparsity(st.sparsity_axis([0.0, 0.9, 0.99])) == pytest.approx([0.0, 0.9, 0.99])


def test_beta_vae_is_compared_with_the_cnn_of_its_own_dataset_only() -> None:
    """model.cls_weight comes with the model and is not matched; the dataset is."""
    runs = [
        Run(
            f"{ds},{model},{seed}",
            "done",
            "",
            {"dataset": ds, "model": model, "beta": None if model == "cnn" else 1.0, "seed": seed}
            | {"model.cls_weight": 1.0 if model == "cnn" else 10.0},
            {"finetuned_test_acc": 0.9 + 0.01 * seed},
        )
        for ds, model in (("mnist", "beta_vae"), ("cifar10", "beta_vae"), ("cifar10", "cnn"))
        for seed in range(3)
    ]
    keys = varying_keys(runs)
    assert keys == ["dataset", "model", "beta", "model.cls_weight"]
    comparisons = [t["comparison"] for t in stat_rows(group_runs(runs, keys), keys) if t["metric"] == "finetuned_test_acc"]
    assert comparisons == ["model=beta_vae beta=1 model.cls_weight=10 vs model=cnn model.cls_weight=1 (dataset=cifar10)"]


def test_a_sweep_with_no_finished_run_still_lists_what_went_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "broken"
    write_run(
        root, ["seed=0"], {**BASE, "model": "cnn", "beta": 1.0, "seed": 0}, {}, status="interrupted", error="KeyboardInterrupt: "
    )
    (root / "seed=2").mkdir()
    (root / "seed=2" / "metrics.json").write_text('{"status": "do')  # not JSON: listed, no crash
    for name, text in (("seed=3", "[1, 2]"), ("seed=4", '{"status": "done", "metrics": {"dense_test_acc": 0.9}}')):
        (root / name).mkdir()
        (root / name / "metrics.json").write_text(text)  # not an object; done without an identity: never counted
    atomic_write_json(root / SWEEP_FILE, {"jobs": [["seed=0"], ["seed=1"]]})
    main([str(root), "--resamples", "100"])
    md = capsys.readouterr().out
    assert "4 run folders: 0 done (0 counted), 4 failed or unfinished; 1 job of sweep.json never started." in md
    assert "- `seed=2`: unreadable: metrics.json: Unterminated string" in md
    assert "- `seed=3`: unreadable: metrics.json: not a JSON object but list [1, 2]" in md
    assert "- `seed=4`: unreadable: metrics.json: a finished run without an identity" in md
    assert "- `seed=0`: interrupted: KeyboardInterrupt: " in md and "- seed=1" in md and "## Exploratory tests (0)" in md
    assert read_csv(root / "report" / "runs.csv")[0]["status"] == "interrupted"


def test_a_monitored_run_gets_its_learning_curve_as_a_figure_and_a_csv(tmp_path: Path) -> None:
    root = tmp_path / "pilot"
    points = [
        {"epoch": e, "step": 10 * e, "samples": 640 * e, "stage": "dense", "val_acc": 0.3 + 0.1 * e, "mig": 0.02 * e}
        | {"mig_per_factor": {"shape": 0.01 * e, "scale": 0.03 * e}}
        for e in range(3)
    ]
    run = write_run(root, ["beta=4"], {**BASE, "model": "beta_vae", "beta": 4.0, "seed": 0}, accuracies(0.9, 0.8, 0.85, 0.9))
    record = json.loads((run / "metrics.json").read_text())
    atomic_write_json(run / "metrics.json", record | {"disentanglement_curve": points})
    write_run(root, ["beta=1"], {**BASE, "model": "beta_vae", "beta": 1.0, "seed": 0}, accuracies(0.9, 0.8, 0.85, 0.9))
    result = report(root, resamples=RESAMPLES)
    assert "learning" in result["figures"] and (result["out_dir"] / "learning.png").is_file()
    rows = read_csv(result["out_dir"] / "learning.csv")
    assert [(r["run"], r["samples"], r["mig"], r["mig_per_factor.scale"]) for r in rows] == [
        ("beta=4", str(640 * e), str(0.02 * e), str(0.03 * e)) for e in range(3)
    ]  # only the monitored run, every point, the per-factor gaps flattened


def test_the_summary_names_the_code_versions_and_says_when_it_pools_several(tmp_path: Path) -> None:
    root = fake_sweep(tmp_path / "s")
    md = (report(root, resamples=RESAMPLES)["out_dir"] / "summary.md").read_text()
    assert "Code: unknown (16 runs)." in md and "More than one code version" not in md
    first = sorted(root.rglob("metrics.json"))[0]
    atomic_write_json(first, json.loads(first.read_text()) | {"code": {"commit": "abc1234", "dirty": True}})
    md = (report(root, resamples=RESAMPLES, out_dir=tmp_path / "again")["out_dir"] / "summary.md").read_text()
    assert "Code: abc1234 (dirty) (1 run), unknown (15 runs). More than one code version: these tables pool them" in md


def test_a_run_finished_in_another_folder_is_listed_apart_from_the_unfinished(tmp_path: Path) -> None:
    root = fake_sweep(tmp_path / "s")
    identity = {**BASE, "model": "beta_vae", "beta": 1.0, "seed": 0, "model.cls_weight": 10.0}
    write_run(root, ["seed=0", "old=1"], identity, {}, status="resumed", error="resumed in outputs/runs/day/t2")
    md = (report(root, resamples=RESAMPLES)["out_dir"] / "summary.md").read_text()
    assert "1 failed or unfinished, 1 finished in another folder;" in md
    assert "## Runs finished in another folder (1)\n\n- `seed=0,old=1`: resumed in outputs/runs/day/t2" in md
