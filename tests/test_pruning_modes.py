"""Structured, gradual and latent-unit pruning in real runs: smaller shapes that survive export and resume, a
gradual schedule hit exactly at every step, inactive units removed without changing the function."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bvp.config import ConfigError
from bvp.evaluation.compression import count_params
from bvp.pruning.schedules import CubicSchedule
from bvp.pruning.structured import kept
from bvp.run import train
from tests.test_branching import assert_same_weights


def test_structured_run_ships_a_smaller_classifier_that_loads_in_plain_pytorch(make_cfg, tmp_path: Path) -> None:
    record = train(make_cfg("pruning=structured", "finetune_epochs=2"))
    m = record["metrics"]
    assert m["pruned_params"] < 0.4 * m["dense_params"] and m["pruned_macs"] < 0.4 * m["dense_macs"]
    assert m["sparsity"] == pytest.approx(1 - m["pruned_params"] / m["dense_params"]) == pytest.approx(m["params_removed"])
    assert record["sparsity"]["channels"] == pytest.approx(0.5, abs=0.05)
    exported = torch.export.load(record["artifacts"]["exported"]).module()
    assert count_params(exported) == m["pruned_params"] == m["params_classifier"] / m["compression_ratio"]
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    conv = ckpt["state_dict"]["net.encoder.net.0.weight"]
    assert conv.shape[0] == 4  # width 8 -> 4 channels, in the checkpoint too
    assert m["exported_test_acc"] == m["finetuned_test_acc"]


def test_structured_run_resumed_during_finetuning_rebuilds_the_smaller_shapes(make_cfg) -> None:
    overrides = ("pruning=structured", "epochs=2", "finetune_epochs=2")
    whole = train(make_cfg(*overrides, name="whole"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg(*overrides, "+callbacks.crash._target_=helpers.CrashAt", "+callbacks.crash.epoch=3", name="killed"))
    resumed = train(make_cfg(*overrides, name="killed"))
    assert resumed["timing"]["epochs_timed"] == 1
    for key in ("finetuned_test_acc", "pruned_test_acc", "pruned_params", "pruned_macs", "nonzero_classifier"):
        assert resumed["metrics"][key] == whole["metrics"][key], key
    assert_same_weights(resumed, whole)


@pytest.mark.parametrize("structure", ["weights", "channels"])
def test_gradual_schedule_is_hit_at_every_step(make_cfg, tmp_path: Path, structure: str) -> None:
    column = "overall" if structure == "weights" else "channels"
    overrides = ("pruning=gradual", "epochs=5", "pruning.prune_epoch=1", "pruning.steps=4", "pruning.step_epochs=1")
    record = train(make_cfg(*overrides, f"pruning.structure={structure}", "pruning.amount=0.8", "finetune_epochs=1"))
    schedule = CubicSchedule(0.8, start_epoch=1, steps=4)
    steps = record["metrics"]["schedule"]
    assert [s["epoch"] for s in steps] == [1, 2, 3, 4, 5] and record["timing"]["epochs_timed"] == 6
    assert [s["target"] for s in steps] == pytest.approx(schedule.targets())
    logged = [e.value for e in EventAccumulator(str(tmp_path / "run" / "tb")).Reload().Scalars(f"sparsity/{column}")]
    if structure == "weights":  # exact counts: the logged overall sparsity is the schedule's, to one weight
        total = record["metrics"]["params_classifier"]
        assert logged == pytest.approx(schedule.targets(), abs=2 / total)
        assert [s["overall"] for s in steps] == pytest.approx(logged)
    else:  # whole channels: each of the 3 pruned layers of 8, 16 and 32 channels keeps round(n (1 - s_k)) of them
        dense = {"encoder.net.0": 8, "encoder.net.2": 16, "encoder.net.5": 32, "head.0": 16}
        expected = [1 - sum(kept(n, s) for n in dense.values()) / sum(dense.values()) for s in schedule.targets()]
        assert logged == pytest.approx(expected, abs=1e-6)


def test_inactive_latent_units_are_removed_without_changing_the_function(make_cfg) -> None:
    record = train(make_cfg("beta=30", "latent_dim=6", "pruning.latent_units=inactive", "pruning.amount=0"))
    m = record["metrics"]
    inactive = sum(kl <= 0.01 for kl in m["dense_kl_dims"])
    assert m["latent_units_removed"] >= 1 and abs(m["latent_units_removed"] - inactive) <= 1  # decided on val, not test
    assert len(m["latent_removed_dims"]) == m["latent_units_removed"]
    assert abs(m["units_removed_test_acc"] - m["dense_test_acc"]) <= 0.02  # constant codes folded into the bias
    exported = torch.export.load(record["artifacts"]["exported"])
    assert exported.state_dict["1.weight"].shape[0] == 6 - m["latent_units_removed"]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (("pruning=structured", "pruning.amount=0.95"), "pruning.amount=0.95: removes every channel"),
        (("pruning.latent_units=all",), "pruning.latent_units='all'"),
        (
            ("pruning=gradual", "epochs=22"),
            "pruning.prune_epoch=20: the gradual window (prune_epoch + steps * step_epochs = 30) ends "
            "after epochs=22; write pruning.prune_epoch=12 or less",
        ),
        (("pruning=structured", "pruning.scope=[head]"), "pruning.scope=['head']: applies to pruning.structure=weights only"),
        (("pruning.structure=filters",), "pruning.structure='filters'"),
        (("model=cnn", "pruning.latent_units=inactive"), "pruning.latent_units='inactive'"),
    ],
    ids=["structured-empties-a-layer", "latent-units", "window-after-last-epoch", "structured-scope", "structure", "cnn-units"],
)
def test_bad_pruning_modes_are_refused_before_anything_is_written(make_cfg, tmp_path: Path, overrides, named) -> None:
    with pytest.raises(ConfigError) as err:
        train(make_cfg(*overrides))
    assert named in str(err.value)
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


def test_gradual_pruning_with_channels_last_weights(make_cfg) -> None:
    overrides = ("pruning=gradual", "epochs=3", "pruning.prune_epoch=1", "pruning.steps=2", "pruning.step_epochs=1")
    record = train(make_cfg(*overrides, "channels_last=true", "pruning.amount=0.8"))
    assert record["metrics"]["sparsity"] == pytest.approx(0.8, abs=1e-3)


def test_a_one_dimensional_latent_trains_and_validates(make_cfg) -> None:
    record = train(make_cfg("latent_dim=1", "pruning.finetune_loss=full"))
    assert len(record["metrics"]["dense_kl_dims"]) == 1 and "label_mig" not in record["metrics"]  # no runner-up


def test_cost_figures_are_recorded(make_cfg, tmp_path: Path) -> None:
    m = train(make_cfg())["metrics"]
    for key in ("params", "macs", "latency_ms_b1", "latency_ms_b256", "export_bytes"):
        assert m[f"dense_{key}"] > 0 and m[f"pruned_{key}"] > 0, key
    assert m["dense_params"] == m["pruned_params"] and m["dense_macs"] == m["pruned_macs"]  # zeros cost the same
    assert m["pruned_nonzero"] < 0.6 * m["dense_nonzero"] and m["latency_threads"] >= 1
    assert m["params_removed"] == m["macs_removed"] == 0.0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]["pruned_macs"] == m["pruned_macs"]
