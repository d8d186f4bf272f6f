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
