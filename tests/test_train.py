"""End-to-end runs on tiny data: the loss falls, TensorBoard and metrics.json are written, seeds repeat."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bvp.config import ConfigError
from bvp.io import FileLock, locked
from bvp.module import ClassifModule
from bvp.names import RUN_LOCK
from bvp.run import train
from tests.conftest import CONF

TIMING = "timing"


def scalars(run_dir: Path) -> tuple[EventAccumulator, dict[str, list[float]]]:
    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    return acc, {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_fit_lowers_loss_and_logs_every_term(make_cfg, tmp_path: Path) -> None:
    record = train(make_cfg("pruning=none", "epochs=4"))
    run = tmp_path / "run"
    acc, values = scalars(run)
    for term in ("loss", "recon", "kl", "ce", "acc"):
        assert len(values[f"train/{term}"]) == 4 and len(values[f"val/{term}"]) == 4
    assert values["train/loss"][-1] < values["train/loss"][0] and values["val/loss"][-1] < values["val/loss"][0]
    assert values["train/ce"][-1] < values["train/ce"][0]
    assert {"val/active_units", "val/kl_dim/0", "val/kl_dim/3"} <= set(values)
    assert "val/reconstruction" in acc.Tags()["images"]
    assert acc.PluginTagToContent("hparams")  # the HParams tab has this run

    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["status"] == "done" and on_disk["error"] is None
    assert on_disk["config"]["beta"] == 1.0 and on_disk["config"]["dataset"]["_target_"].endswith("MNISTDataModule")
    assert on_disk["metrics"]["dense_test_acc"] == pytest.approx(record["metrics"]["dense_test_acc"])
    assert 0.0 <= on_disk["metrics"]["dense_test_acc"] <= 1.0 and on_disk["timing"]["epochs_timed"] == 4
    assert on_disk["metrics"]["dense_active_units"] == on_disk["metrics"]["active_units"] <= 4


def test_cnn_and_cifar_train_end_to_end(make_cfg, lenient_cifar: None, tmp_path: Path) -> None:
    record = train(make_cfg("dataset=cifar10", "model=cnn", "pruning=none", "epochs=1"))
    metrics = record["metrics"]
    assert record["status"] == "done" and "dense_kl" not in metrics and "kl" not in metrics
    assert 0.0 <= metrics["dense_test_acc"] <= 1.0 and "kl" not in metrics


def test_same_seed_same_metrics_other_seed_differs(make_cfg) -> None:
    a = train(make_cfg("seed=7", name="a"))
    b = train(make_cfg("seed=7", name="b"))
    c = train(make_cfg("seed=8", name="c"))
    timed = {k for k in a["metrics"] if "latency" in k}  # wall-clock measurements, the only thing allowed to differ
    assert timed and {k: v for k, v in a["metrics"].items() if k not in timed} == {
        k: v for k, v in b["metrics"].items() if k not in timed
    }
    assert a["sparsity"] == b["sparsity"]
    assert a["metrics"]["dense_kl_dims"] != c["metrics"]["dense_kl_dims"]


def test_finished_run_is_skipped(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("pruning=none", "epochs=1")
    first = train(cfg)
    stamp = (tmp_path / "run" / "metrics.json").stat().st_mtime_ns
    assert train(cfg) == first
    assert (tmp_path / "run" / "metrics.json").stat().st_mtime_ns == stamp


def test_a_folder_holding_a_run_with_other_settings_is_refused_not_skipped_or_resumed(make_cfg, tmp_path: Path) -> None:
    """Skipping a finished run would report it under the new settings; resuming a checkpoint would train two
    configs as one run. Either way the folder's record stays as it was."""
    first = train(make_cfg("pruning=none", "epochs=1"))
    with pytest.raises(ConfigError, match=r"hydra.run.dir=.*run: holds a run with other settings \(beta=3 here"):
        train(make_cfg("pruning=none", "epochs=1", "beta=3"))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == first
    crash = ("+callbacks.crash._target_=helpers.CrashAt", "+callbacks.crash.epoch=1")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg("pruning=none", "epochs=2", *crash, name="killed"))
    with pytest.raises(ConfigError, match=r"\(model.cls_weight=3 here"):
        train(make_cfg("pruning=none", "epochs=2", "model.cls_weight=3", name="killed"))
    assert train(make_cfg("pruning=none", "epochs=2", name="killed"))["status"] == "done"  # its own settings resume it
    with pytest.raises(ConfigError, match=r"\(pruning.amount=0.5 here, null there"):  # a dense run is no pruned run
        train(make_cfg("epochs=1", "pruning.amount=0.5"))
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    del record["identity"]["model.cls_weight"]  # as if newer code had added that setting to the model: no difference
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(record))
    assert train(make_cfg("pruning=none", "epochs=1"))["status"] == "done"


@pytest.mark.parametrize("when", ["on_train_end", "export"])
def test_sigterm_at_the_end_of_training_or_after_it_records_an_interrupted_run(
    make_cfg, tmp_path: Path, monkeypatch, when: str
) -> None:
    """Lightning stops at the next batch on SIGTERM; at the end of training there is none, and after fit its handler
    is gone: either way the run stops as interrupted, and the handler from before the run is back."""
    import signal

    from bvp import run

    def export_then_sigterm(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return export(*args, **kwargs)

    export = run.export_classifier
    crash = ("+callbacks.crash._target_=helpers.CrashAt", "+callbacks.crash.at_end=true", "+callbacks.crash.sigterm=true")
    if when == "export":
        monkeypatch.setattr(run, "export_classifier", export_then_sigterm)
    ignore = lambda *_: None  # noqa: E731  never the default (kill pytest)
    handler = signal.signal(signal.SIGTERM, ignore)
    try:
        with pytest.raises(SystemExit) as stop:
            train(make_cfg("pruning=none", "epochs=1", *(crash if when == "on_train_end" else ())))
        assert signal.getsignal(signal.SIGTERM) is ignore
    finally:
        signal.signal(signal.SIGTERM, handler)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert stop.value.code == 143 and record["status"] == "interrupted" and "ended" in record["process"]


def test_nan_loss_stops_the_run_and_records_failure(make_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = ClassifModule.loss_terms

    def poisoned(self, out, x, y):
        terms = original(self, out, x, y)
        terms["loss"] = terms["loss"] * torch.tensor(float("nan"))
        return terms

    monkeypatch.setattr(ClassifModule, "loss_terms", poisoned)
    with pytest.raises(FloatingPointError, match="NaN/inf in epoch 0"):
        train(make_cfg("pruning=none"))
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "failed" and "FloatingPointError" in record["error"]
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()  # no NaN checkpoint saved


def test_dsprites_run_trains_prunes_and_records_disentanglement(make_cfg, tmp_path: Path) -> None:
    sizes = ("dataset.train_size=256", "dataset.val_size=64", "dataset.test_size=200", "dataset.source=procedural")
    record = train(make_cfg("dataset=dsprites", *sizes, "epochs=1"))
    metrics = record["metrics"]
    assert record["status"] == "done" and record["dataset_source"].startswith("procedural")
    for stage in ("dense_", ""):  # at the branch point and at the end
        assert 0.0 <= metrics[f"{stage}mig"] <= 1.0 and 0.0 <= metrics[f"{stage}label_mig"] <= 1.0
        assert len(metrics[f"{stage}label_info_dims"]) == 4 and 0 <= metrics[f"{stage}active_units_cov"] <= 4
    assert "kl" not in metrics and "dense_kl" in metrics  # ce fine-tuning drops the log-variance layer
    acc, _ = scalars(tmp_path / "run")
    assert "val/latent_traversal" in acc.Tags()["images"]


@pytest.mark.parametrize("damaged", ['{"status": "do', "[1, 2]"], ids=["half", "not-an-object"])
def test_a_damaged_metrics_json_is_run_again_with_a_warning(make_cfg, tmp_path: Path, caplog, damaged: str) -> None:
    """Atomic writes never leave half a record, but a disk or a hand can: the run is read as not done and runs again;
    the new record has a plain file's mode (0o666 less the umask), not a temp file's 0o600."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text(damaged)
    record = train(make_cfg("pruning=none", "epochs=1"))
    assert record["status"] == "done" and json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "done"
    assert "metrics.json is damaged (" in caplog.text and "read as missing" in caplog.text
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "run" / "metrics.json").stat().st_mode) == 0o666 & ~umask


def test_a_damaged_checkpoint_is_refused_with_what_to_do(make_cfg, tmp_path: Path) -> None:
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ConfigError) as err:
        train(make_cfg("pruning=none", "epochs=1"))
    (line,) = err.value.errors
    assert line.startswith(f"{tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}: not a Lightning checkpoint (")
    assert line.endswith("; delete it to train this run from the start") and not (tmp_path / "run" / "metrics.json").exists()


def test_a_file_lock_is_held_by_one_process_at_a_time_and_freed_by_release_or_death(tmp_path: Path) -> None:
    """FileLock: a second holder is refused (wait=False) until the first releases it, or until its process dies."""
    path = tmp_path / "a" / ".lock"
    first, second = FileLock(path), FileLock(path)
    assert first.acquire() and path.is_file()  # made, with its folder
    assert not second.acquire(wait=False)
    first.release()
    assert second.acquire(wait=False)
    second.release()
    code = f"from bvp.io import FileLock; FileLock({str(path)!r}).acquire(); import os; os.kill(os.getpid(), 9)"
    assert subprocess.run([sys.executable, "-c", code], cwd=CONF.parent).returncode == -9  # killed holding it
    with locked(path, wait=False) as mine:
        assert mine


def test_a_run_another_process_is_running_is_skipped(make_cfg, tmp_path: Path, caplog) -> None:
    """Two sweeps over one folder: the second skips the run the first holds (its lock) instead of training it too."""
    cfg = make_cfg("pruning=none", "epochs=1")
    with locked(tmp_path / "run" / RUN_LOCK, wait=False) as mine:  # the first process
        assert mine
        assert train(cfg) == {} and not (tmp_path / "run" / "metrics.json").exists()
    assert "another process is running it" in caplog.text
    assert train(cfg)["status"] == "done"  # once it let go, the run is free
