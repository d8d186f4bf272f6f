"""bvp.names is the one list of metrics.json's keys: every scalar a real run writes is in a group (so the dashboard
and the report read it), and the report's shapes of old records agree with the DataModules."""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real

import pytest
from omegaconf import DictConfig

from bvp import names
from bvp.data import DeviceDataModule
from bvp.report.collect import RECORDED_BEFORE
from bvp.run import train

RUNS = {  # between them, every stage a run can measure: dense, pruned, units_removed, finetuned; both engines
    "weights": ("pruning.latent_units=inactive",),
    "channels": ("model=cnn", "pruning=structured", "pruning.amount=0.5"),
    "dense": ("pruning=none", "epochs=1"),
}


@pytest.mark.parametrize("run", list(RUNS))
def test_every_scalar_a_run_writes_is_in_a_group(make_cfg: Callable[..., DictConfig], run: str) -> None:
    record = train(make_cfg(*RUNS[run], "logger=none"))
    scalars = {k for k, v in record["metrics"].items() if isinstance(v, Real) and not isinstance(v, bool)}
    assert scalars - names.SCALARS == set(), "add these keys to their group in bvp/names.py"
    assert record["input_shape"] == [1, 28, 28]
    assert all(math.isfinite(record["metrics"][k]) for k in names.ACCURACIES if k in record["metrics"])


def test_summary_and_markdown_lists_are_known_keys_without_repeats() -> None:
    for listed in (names.SUMMARY, names.MARKDOWN):
        assert set(listed) <= names.SCALARS and len(set(listed)) == len(listed)


def test_old_records_dataset_sizes_agree_with_the_datamodules() -> None:
    shapes = {cls.__module__.rsplit(".", 1)[-1]: math.prod(cls.shape) for cls in DeviceDataModule.__subclasses__()}
    assert RECORDED_BEFORE.items() <= shapes.items()  # a dataset added later has no old records
