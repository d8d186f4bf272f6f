"""DataModules: real torchvision loaders on files in the real formats, device tensors, batching, transforms."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bvp.config import ConfigError
from bvp.data import CIFAR10DataModule, DataNotFoundError, DeviceLoader, EpochSampler, MNISTDataModule
from bvp.data.base import random_crop_flip
from tests.conftest import N_TEST, N_TRAIN


def test_mnist_reads_idx_files_and_splits_by_seed(mnist_root: Path) -> None:
    dm = MNISTDataModule(mnist_root, batch_size=32, val_size=64, seed=0)
    dm.prepare_data()
    dm.setup("fit")
    (xtr, ytr), (xv, yv), (xte, _) = dm.splits["train"], dm.splits["val"], dm.splits["test"]
    assert xtr.shape == (N_TRAIN - 64, 1, 28, 28) and xv.shape == (64, 1, 28, 28) and xte.shape == (N_TEST, 1, 28, 28)
    assert xtr.dtype == torch.uint8 and ytr.dtype == torch.long
    raw = (mnist_root / "MNIST/raw/train-labels-idx1-ubyte").read_bytes()[8:]
    assert sorted(torch.cat([ytr, yv]).tolist()) == sorted(raw)  # train + val is exactly the file
    again = MNISTDataModule(mnist_root, val_size=64, seed=0)
    again.setup()
    other = MNISTDataModule(mnist_root, val_size=64, seed=1)
    other.setup()
    assert torch.equal(again.splits["val"][0], xv)
    assert not torch.equal(other.splits["val"][0], xv)


def test_cifar_reads_pickles_in_chw_order(cifar_root: Path, lenient_cifar: None) -> None:
    dm = CIFAR10DataModule(cifar_root, val_size=20, seed=0)
    dm.prepare_data()
    dm.setup()
    x, y = dm.splits["test"]
    assert x.shape == (N_TEST, 3, 32, 32)
    batch = pickle.loads((cifar_root / "cifar-10-batches-py/test_batch").read_bytes())
    expected = torch.from_numpy(np.asarray(batch["data"][7]).reshape(3, 32, 32))
    assert torch.equal(x[7], expected) and y[7].item() == batch["labels"][7]


def test_missing_files_fail_naming_folder_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("torchvision.datasets.utils.urllib.request.urlopen", offline)
    with pytest.raises(DataNotFoundError) as err:
        MNISTDataModule(tmp_path / "nowhere").prepare_data()
    message = str(err.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte.gz" in message and "network unreachable" in message
    assert isinstance(err.value, ConfigError) and err.value.errors == [message]  # one line for train.py, no traceback
    assert message.startswith(f"data_dir='{tmp_path / 'nowhere'}': ")


def test_damaged_files_are_named_damaged_not_missing(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"\x00\x00\x08\x03" + bytes(100))  # a header, then far too few pixels
    with pytest.raises(DataNotFoundError) as err:
        MNISTDataModule(tmp_path).prepare_data()
    assert f"the MNIST files in {raw} cannot be read (" in str(err.value) and "Put intact copies of " in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "line"),
    [
        ({"batch_size": 0}, "batch_size=0: must be an integer >= 1, e.g. batch_size=128"),
        ({"eval_batch_size": 2.5}, "eval_batch_size=2.5: must be an integer >= 1, e.g. eval_batch_size=1000"),
        ({"val_size": True}, "val_size=true: must be an integer >= 1, e.g. val_size=5000"),
        ({"seed": 2**32}, "seed=4294967296: must be an integer >= 0 and <= 4294967295, e.g. seed=0"),
        ({"crop_padding": 28}, "crop_padding=28: must be an integer >= 0 and < 28, e.g. crop_padding=3"),
        ({"hflip": "yes"}, "hflip='yes': must be true or false"),
        ({"data_dir": ""}, "data_dir='': must be a path, e.g. data_dir=data"),
    ],
)
def test_constructor_refuses_a_bad_setting(kwargs: dict, line: str, mnist_root: Path) -> None:
    with pytest.raises(ConfigError) as err:
        MNISTDataModule(**{"data_dir": mnist_root, **kwargs})
    assert err.value.errors == [line]


def test_constructor_refuses_every_bad_setting_at_once(mnist_root: Path) -> None:
    with pytest.raises(ConfigError) as err:
        CIFAR10DataModule(mnist_root, batch_size=-1, val_size=0, crop_padding=32)
    assert [e.split("=")[0] for e in err.value.errors] == ["batch_size", "val_size", "crop_padding"]


def test_val_size_is_checked_against_the_data_before_any_split(mnist_root: Path) -> None:
    with pytest.raises(ConfigError) as err:
        MNISTDataModule(mnist_root, val_size=N_TRAIN).setup()
    (line,) = err.value.errors
    assert line.startswith(f"dataset.val_size={N_TRAIN}: must be an integer between 1 and {N_TRAIN - 1} (MNIST has {N_TRAIN}")
    dm = MNISTDataModule(mnist_root, val_size=N_TRAIN - 1)
    dm.setup()
    assert len(dm.splits["train"][1]) == 1


def test_epoch_sampler_is_a_seeded_permutation_per_epoch_and_shards_ranks() -> None:
    s = EpochSampler(10, shuffle=True, seed=3)
    first = s.indices()
    assert sorted(first.tolist()) == list(range(10))
    s.set_epoch(1)
    second = s.indices()
    s.set_epoch(0)
    assert torch.equal(s.indices(), first) and not torch.equal(second, first)
    shards = [EpochSampler(10, True, 3, rank=r, world_size=3).indices() for r in range(3)]
    assert all(len(sh) == 3 for sh in shards)  # 10 // 3 each, same count on every rank
    assert len(set(torch.cat(shards).tolist())) == 9


def test_loader_batches_by_index() -> None:
    x = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    y = torch.arange(10)
    loader = DeviceLoader(x, y, 4, EpochSampler(10, shuffle=True, seed=0))
    batches = list(loader)
    assert len(loader) == len(batches) == 3 and [len(b[1]) for b in batches] == [4, 4, 2]
    assert all(torch.equal(bx.flatten().long(), by) for bx, by in batches)  # images stay paired with labels
    ordered = list(DeviceLoader(x, y, 4, EpochSampler(10, shuffle=False, seed=0)))
    assert torch.equal(torch.cat([b[1] for b in ordered]), y)


def test_transform_normalises_and_augments_on_device(cifar_root: Path, lenient_cifar: None, mnist_root: Path) -> None:
    mnist = MNISTDataModule(mnist_root, val_size=64)
    mnist.setup()
    xm, _ = mnist.transform(mnist.splits["train"], augment=True)
    assert xm.dtype == torch.float32 and xm.min() >= 0 and xm.max() <= 1  # Bernoulli targets
    assert torch.equal(xm, mnist.splits["train"][0].float() / 255)  # crop_padding=0: no augmentation
    shifted = MNISTDataModule(mnist_root, val_size=64, crop_padding=2)
    shifted.setup()
    xs, _ = shifted.transform(shifted.splits["train"], augment=True)
    assert not torch.equal(xs, xm) and torch.equal(shifted.transform(shifted.splits["train"], augment=False)[0], xm)

    cifar = CIFAR10DataModule(cifar_root, val_size=20, crop_padding=4, hflip=True)
    cifar.setup()
    plain, _ = cifar.transform(cifar.splits["train"], augment=False)
    mean = torch.tensor(cifar.mean).view(1, 3, 1, 1)
    std = torch.tensor(cifar.std).view(1, 3, 1, 1)
    assert torch.allclose(plain, (cifar.splits["train"][0].float() / 255 - mean) / std)
    torch.manual_seed(0)
    aug, _ = cifar.transform(cifar.splits["train"], augment=True)
    assert aug.shape == plain.shape and not torch.equal(aug, plain)


@pytest.mark.parametrize("hflip", [True, False])
def test_random_crop_flip_is_a_shifted_window_of_the_padded_image(hflip: bool) -> None:
    torch.manual_seed(0)
    x = torch.rand(16, 3, 8, 8)
    out = random_crop_flip(x, padding=2, hflip=hflip)
    padded = F.pad(x, (2, 2, 2, 2))
    flipped = 0
    for i in range(16):
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        if any(torch.equal(out[i], w) for w in windows):
            continue
        assert hflip and any(torch.equal(out[i], w.flip(2)) for w in windows)
        flipped += 1
    assert (flipped > 0) == hflip
