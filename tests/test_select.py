"""Choosing a setting on validation data (bvp.report.select): the best mean wins, test data and confounded sweeps
are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_report import write_run

from bvp.report import select

VAL = {1.0: (0.80, 0.82), 10.0: (0.86, 0.84), 100.0: (0.83, 0.85)}  # per cls_weight, the two seeds' val accuracy
TEST = {1.0: 0.99, 10.0: 0.50, 100.0: 0.50}  # a test accuracy that would choose otherwise


def sweep(root: Path, extra: dict | None = None) -> Path:
    for weight, accs in VAL.items():
        for seed, acc in enumerate(accs):
            identity = {"dataset": "cifar10", "model": "beta_vae", "beta": 1.0, "seed": seed, "model.cls_weight": weight}
            identity |= (extra or {}) if weight == 100.0 else {}
            metrics = {"dense_val_acc": acc, "dense_test_acc": TEST[weight]}
            write_run(root, [f"model.cls_weight={weight}", f"seed={seed}"], identity, metrics)
    return root


def test_the_highest_mean_validation_accuracy_is_chosen_and_recorded(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "choice.json"
    select.main([str(sweep(tmp_path / "s")), "--key", "model.cls_weight", "--out", str(out)])
    assert "chosen: model.cls_weight=10" in capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["chosen"] == 10.0 and [c["value"] for c in record["candidates"]] == [10.0, 100.0, 1.0]
    assert record["candidates"][0]["mean"] == pytest.approx(0.85) and record["candidates"][0]["n"] == 2


def test_test_metrics_and_confounded_sweeps_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = str(sweep(tmp_path / "s"))
    for argv, said in (
        (
            [runs, "--key", "model.cls_weight", "--metric", "dense_test_acc"],
            "--metric=dense_test_acc: a setting is chosen on validation",
        ),
        ([runs, "--key", "model.cls_weight", "--metric", "accuracy_drop"], "--metric=accuracy_drop: a setting is chosen on"),
        ([runs, "--key", "model.cls_weight", "--floor", "dense_label_mig=0.1"], "--floor=dense_label_mig: a setting is"),
        ([str(sweep(tmp_path / "c", {"lr": 0.01})), "--key", "model.cls_weight"], "also differ in lr"),
        ([runs, "--key", "beta"], "--key=beta: the runs also differ in model.cls_weight"),
        (
            [runs, "--key", "model.cls_wieght"],
            "--key=model.cls_wieght: not a setting of these runs; did you mean model.cls_weight?",
        ),
        ([str(tmp_path / "nowhere"), "--key", "model.cls_weight"], "no metrics.json under it"),
        ([runs + "/model.cls_weight=10.0,seed=0", "--key", "model.cls_weight"], "one value of it (10); nothing to choose"),
    ):
        with pytest.raises(SystemExit):
            select.main(argv)
        assert said in capsys.readouterr().err


MIG = {1.0: 0.20, 10.0: 0.05, 100.0: 0.15}  # per cls_weight, the monitor's validation MIG at the branch point


def with_curves(root: Path) -> Path:
    """The sweep's runs with a disentanglement curve: a point before training, the branch point (MIG), then a
    fine-tuning point whose MIG would choose otherwise."""
    for path in root.rglob("metrics.json"):
        record = json.loads(path.read_text())
        mig = MIG[record["identity"]["model.cls_weight"]]
        record["disentanglement_curve"] = [
            {"stage": "dense", "epoch": 0, "step": 0, "samples": 0, "mig": 0.0},
            {"stage": "dense", "epoch": 1, "step": 10, "samples": 100, "mig": mig},
            {"stage": "finetune", "epoch": 2, "step": 20, "samples": 200, "mig": 1.0 - mig},
        ]
        path.write_text(json.dumps(record))
    return root


def test_a_floor_on_the_branch_points_validation_mig_rules_out_the_best_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "choice.json"
    runs = str(with_curves(sweep(tmp_path / "s")))
    select.main([runs, "--key", "model.cls_weight", "--floor", "curve.mig=0.1", "--out", str(out)])
    assert "chosen: model.cls_weight=100 (highest mean dense_val_acc, curve.mig >= 0.1)" in capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["chosen"] == 100.0 and record["floors"] == {"curve.mig": 0.1}
    assert [(c["value"], c["eligible"]) for c in record["candidates"]] == [(10.0, False), (100.0, True), (1.0, True)]
    assert record["candidates"][0]["floors"]["curve.mig"] == pytest.approx(0.05)
    for argv, said in (
        (["--floor", "curve.mig=0.5"], "--floor: no value reaches every floor (model.cls_weight=10: curve.mig 0.0500"),
        (["--floor", "curve.test_mig=0.1"], "--floor=curve.test_mig: a setting is chosen on validation data only"),
        (["--floor", "curve.dci_completeness=0.1"], "--floor=curve.dci_completeness: the runs at model.cls_weight=1 do not"),
        (["--floor", "curve.mig=high"], "'curve.mig=high': give METRIC=VALUE with a number"),
        (["--out", str(tmp_path)], "is a folder; give a file in it"),
        (["--out", str(out / "x.json")], "choice.json is a file"),
    ):
        with pytest.raises(SystemExit):
            select.main([runs, "--key", "model.cls_weight", *argv])
        assert said in capsys.readouterr().err
