"""Fixtures: tiny datasets written in the real on-disk formats, and composed Hydra configs."""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torchvision
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

CONF = Path(__file__).resolve().parents[1] / "conf"
N_TRAIN, N_TEST = 320, 100


def class_images(n: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images whose class k is a bright block at a class-specific place, on noise: learnable."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, *shape)).astype(np.uint8)
    for i, k in enumerate(labels):
        r, c = 2 + (k // 5) * 12, 2 + (k % 5) * 5
        images[i, r : r + 8, c : c + 5] = 255
    return images, labels


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format MNIST ships in: magic (0, 0, 0x08 = ubyte, ndim), big-endian dims, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n, seed in (("train", N_TRAIN, 0), ("t10k", N_TEST, 1)):
        x, y = class_images(n, (28, 28), seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    return root


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CIFAR-10 python pickles (data: N x 3072 uint8 in CHW order, labels: list) plus batches.meta."""
    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    x, y = class_images(N_TRAIN, (32, 32, 3), 2)
    chw = x.transpose(0, 3, 1, 2).reshape(N_TRAIN, -1)
    for b, part in enumerate(np.array_split(np.arange(N_TRAIN), 5), start=1):
        batch = {"data": chw[part], "labels": y[part].tolist(), "batch_label": f"training batch {b} of 5"}
        (folder / f"data_batch_{b}").write_bytes(pickle.dumps(batch, protocol=2))
    xt, yt = class_images(N_TEST, (32, 32, 3), 3)
    test = {"data": xt.transpose(0, 3, 1, 2).reshape(N_TEST, -1), "labels": yt.tolist()}
    (folder / "test_batch").write_bytes(pickle.dumps(test, protocol=2))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return root


@pytest.fixture
def lenient_cifar(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our synthetic pickles are not the real bytes: skip torchvision's md5 checks (tests only)."""
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())


TINY = [
    "epochs=2",
    "finetune_epochs=1",
    "batch_size=32",
    "latent_dim=4",
    "dataset.val_size=64",
    "dataset.eval_batch_size=64",
    "model.net.hidden_dim=32",
    "model.net.width=8",
    "model.net.head_dim=16",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture
def make_cfg(mnist_root: Path, cifar_root: Path, tmp_path: Path) -> Callable[..., DictConfig]:
    """compose('train') for a tiny run writing into tmp_path/<name> (overrides go after TINY)."""

    def make(*overrides: str, name: str = "run") -> DictConfig:
        root = cifar_root if "dataset=cifar10" in overrides else mnist_root
        args = [*TINY, f"data_dir={root}", f"output_dir={tmp_path / name}", f"cache_dir={tmp_path / 'cache'}", *overrides]
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose("train", overrides=args)

    return make
