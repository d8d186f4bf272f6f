"""CIFAR-10's JPEG stand-in (dataset.jpeg_stand_in): off by default, refused without its files, warned about and
recorded as dataset_source when read, and never chosen over the real, md5-passing files."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from bvp.config import ConfigError, check_config
from bvp.data import CIFAR10DataModule, DataNotFoundError
from bvp.data import cifar10 as c10
from bvp.identity import run_identity
from bvp.run import data_source, train
from tests.conftest import CONF, N_TEST, N_TRAIN, TINY, class_images

BATCHES = tuple(f"data_batch_{b}" for b in range(1, 6))
EXPECTED = (*BATCHES, "test_batch", "batches.meta")


def write_batches(folder: Path, seed: int, names: tuple[str, ...] = EXPECTED) -> np.ndarray:
    """CIFAR-10 python pickles as make_batches.py writes them (or some of them); returns the test images, CHW rows."""
    folder.mkdir(parents=True)
    x, y = class_images(N_TRAIN, (32, 32, 3), seed)
    rows = x.transpose(0, 3, 1, 2).reshape(N_TRAIN, -1)
    for name, part in zip(BATCHES, np.array_split(np.arange(N_TRAIN), 5), strict=True):
        if name in names:
            batch = {"data": rows[part], "labels": y[part].tolist(), "batch_label": f"{name} (JPEG stand-in)"}
            (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    xt, yt = class_images(N_TEST, (32, 32, 3), seed + 1)
    test = xt.transpose(0, 3, 1, 2).reshape(N_TEST, -1)
    if "test_batch" in names:
        (folder / "test_batch").write_bytes(pickle.dumps({"data": test, "labels": yt.tolist()}, protocol=2))
    if "batches.meta" in names:
        meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
        (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return test


def stand_in(root: Path, seed: int = 10, names: tuple[str, ...] = EXPECTED) -> np.ndarray:
    return write_batches(root / "cifar10-jpeg-stand-in" / "cifar-10-batches-py", seed, names)


def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("torchvision.datasets.utils.urllib.request.urlopen", refuse)


def loaded(root: Path, **kwargs) -> CIFAR10DataModule:
    dm = CIFAR10DataModule(root, val_size=20, **kwargs)
    dm.prepare_data()
    dm.setup()
    return dm


def stand_in_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "JPEG stand-in" in r.getMessage()]


def test_off_by_default_the_real_set_alone_and_the_identity_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert CIFAR10DataModule(tmp_path).jpeg_stand_in is False
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["dataset=cifar10"])
        on = compose("train", overrides=["dataset=cifar10", "dataset.jpeg_stand_in=true"])
    assert cfg.dataset.jpeg_stand_in is False
    identity = run_identity(cfg)
    assert identity["dataset"] == "cifar10" and not any("jpeg" in key for key in identity)  # no new key: old runs match
    assert run_identity(on) == identity  # which files were read is dataset_source's to say
    # off, a stand-in on disk is never read: without the real files the run is refused, and told of the option
    offline(monkeypatch)
    stand_in(tmp_path)
    with caplog.at_level(logging.WARNING), pytest.raises(DataNotFoundError) as err:
        CIFAR10DataModule(tmp_path).prepare_data()
    message = str(err.value)
    assert message.startswith(f"data_dir='{tmp_path}': no usable CIFAR10 files in {tmp_path / 'cifar-10-batches-py'}")
    assert "dataset.jpeg_stand_in=true" in message and "network unreachable" in message and "\n" not in message
    assert not stand_in_lines(caplog)


def test_off_the_real_files_load_as_before(cifar_root: Path, lenient_cifar: None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        dm = loaded(cifar_root)
    assert dm.source is None and data_source(dm) == "CIFAR10" and not stand_in_lines(caplog)
    assert dm.splits["test"][0].shape == (N_TEST, 3, 32, 32)


def test_refused_without_the_decoded_batches_naming_the_folder_and_the_files(tmp_path: Path) -> None:
    stand_in(tmp_path, names=("data_batch_1", "data_batch_2", "batches.meta"))
    with pytest.raises(DataNotFoundError) as err:
        CIFAR10DataModule(tmp_path, jpeg_stand_in=True).prepare_data()
    message = str(err.value)
    folder = tmp_path / "cifar10-jpeg-stand-in" / "cifar-10-batches-py"
    assert isinstance(err.value, ConfigError) and err.value.errors == [message]  # one line, no traceback
    assert message.startswith(f"dataset.jpeg_stand_in=true: no decoded CIFAR-10 (JPEG stand-in) batches in {folder} ")
    expected = "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch, batches.meta"
    assert f"(expected {expected}; missing data_batch_3, data_batch_4, data_batch_5, test_batch)" in message
    assert "`make data`" in message and "make_batches.py" in message and str(tmp_path / "cifar10-jpeg-stand-in") in message
    with pytest.raises(DataNotFoundError) as empty:  # an empty data_dir: everything is missing, setup() refuses too
        CIFAR10DataModule(tmp_path / "empty", jpeg_stand_in=True).setup()
    assert f"(expected {expected}) and no md5-passing real CIFAR-10 files in {tmp_path / 'empty'}" in str(empty.value)


def test_refused_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "run"
    overrides = [*TINY, "dataset=cifar10", "dataset.jpeg_stand_in=true", f"data_dir={tmp_path}", f"output_dir={out}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"cache_dir={tmp_path / 'cache'}"])
    with pytest.raises(DataNotFoundError, match="no decoded CIFAR-10 \\(JPEG stand-in\\) batches"):
        train(cfg)
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_on_reads_the_stand_in_warns_every_run_and_names_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    test_rows = stand_in(tmp_path)
    with caplog.at_level(logging.WARNING):
        dm = loaded(tmp_path, jpeg_stand_in=True)
        dm.prepare_data()  # Lightning calls both again in fit: still one line for this run
        dm.setup("fit")
    assert dm.source == c10.STAND_IN_SOURCE == "jpeg-stand-in" and data_source(dm) == "jpeg-stand-in"
    x, _ = dm.splits["test"]
    assert torch.equal(x.reshape(N_TEST, -1), torch.from_numpy(test_rows))  # the stand-in's pixels, as written
    assert len(dm.splits["train"][0]) == N_TRAIN - 20
    lines = stand_in_lines(caplog)
    assert len(lines) == 1 and lines[0].startswith("CIFAR-10 (JPEG stand-in): lossy pixels, not CIFAR-10 results")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        loaded(tmp_path, jpeg_stand_in=True)  # the next run warns again
    assert len(stand_in_lines(caplog)) == 1


def test_the_real_files_win_when_they_pass_the_md5_check(
    cifar_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "both"
    stand_in(root)
    (root / "cifar-10-batches-py").symlink_to(cifar_root / "cifar-10-batches-py")
    with caplog.at_level(logging.WARNING):
        fake = loaded(root, jpeg_stand_in=True)  # the real folder's md5s fail (our pickles are not the real bytes)
    assert fake.source == "jpeg-stand-in"
    # now the "real" files pass: torchvision's check, made lenient, is what decides
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda path, md5=None: Path(path).is_file())
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        dm = loaded(root, jpeg_stand_in=True)
    real = pickle.loads((cifar_root / "cifar-10-batches-py" / "test_batch").read_bytes())["data"]
    assert dm.source is None and data_source(dm) == "CIFAR10"
    assert torch.equal(dm.splits["test"][0].reshape(N_TEST, -1), torch.from_numpy(np.asarray(real)))
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "the real CIFAR-10 files in" in lines[0] and "not the JPEG stand-in" in lines[0]
    assert not any("lossy pixels" in line for line in lines)


def test_a_bad_value_is_refused_by_the_schema(tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["dataset=cifar10", "dataset.jpeg_stand_in=1", f"output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"^dataset.jpeg_stand_in=1: must be true or false$"):
        check_config(cfg)
    with pytest.raises(ConfigError, match="jpeg_stand_in='yes': must be true or false"):
        CIFAR10DataModule("data", jpeg_stand_in="yes")


def test_a_run_on_the_stand_in_records_it_and_keys_its_dense_model_by_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stand_in(tmp_path)
    out, cache = tmp_path / "run", tmp_path / "cache"
    overrides = [*TINY, "dataset=cifar10", "dataset.jpeg_stand_in=true", "model=cnn", "epochs=1", "finetune_epochs=0"]
    overrides += ["logger=none", f"data_dir={tmp_path}", f"output_dir={out}", f"cache_dir={cache}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with caplog.at_level(logging.WARNING):
        train(cfg)
    record = json.loads((out / "metrics.json").read_text())
    assert record["status"] == "done" and record["dataset_source"] == "jpeg-stand-in"
    assert record["config"]["dataset"]["jpeg_stand_in"] is True and record["identity"]["dataset"] == "cifar10"
    (meta,) = cache.glob("*/dense.json")
    assert json.loads(meta.read_text())["identity"]["data_source"] == "jpeg-stand-in"  # not a real CIFAR10 dense model
    assert len(stand_in_lines(caplog)) == 1


def test_the_cifar10_jpeg_option_is_cifar10_reading_the_stand_in(tmp_path: Path) -> None:
    """dataset=cifar10_jpeg: a sweep over data sets can name the stand-in (dataset.jpeg_stand_in would be refused
    by MNIST's DataModule); it is the same run as dataset=cifar10 dataset.jpeg_stand_in=true."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        option = compose("train", overrides=["dataset=cifar10_jpeg", f"output_dir={tmp_path}"])
        flag = compose("train", overrides=["dataset=cifar10", "dataset.jpeg_stand_in=true", f"output_dir={tmp_path}"])
    assert option.dataset == flag.dataset and option.dataset.jpeg_stand_in is True
    assert run_identity(option) == run_identity(flag)
    check_config(option)
