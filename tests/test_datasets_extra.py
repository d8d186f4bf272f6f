"""dSprites (procedural renderer, official npz reader, splits, factors, refusals) and Fashion-MNIST (real IDX files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets.utils import calculate_md5

from bvp.config import ConfigError
from bvp.data import DataNotFoundError, DSpritesDataModule, FashionMNISTDataModule
from bvp.data import dsprites as ds
from bvp.models import BetaVAEClassif
from tests.conftest import N_TEST, N_TRAIN, class_images, write_idx

SMALL = {"train_size": 120, "val_size": 40, "test_size": 40}


def grid_index(*classes: int) -> int:
    return int(np.ravel_multi_index(classes, ds.SIZES))


def test_factor_grid_has_the_official_sizes_and_order() -> None:
    assert dict(zip(ds.FACTORS, ds.SIZES, strict=True)) == {"shape": 3, "scale": 6, "orientation": 40, "pos_x": 32, "pos_y": 32}
    assert ds.NUM_SPRITES == 737_280
    values = ds.factor_values()
    assert values["scale"][[0, -1]].tolist() == [0.5, 1.0] and len(values["scale"]) == 6
    assert values["orientation"][[0, -1]].tolist() == [0.0, 2 * np.pi] and len(values["orientation"]) == 40
    assert values["pos_x"][[0, -1]].tolist() == [0.0, 1.0] and len(values["pos_y"]) == 32
    classes = ds.factor_classes(np.array([0, 1, 32, ds.NUM_SPRITES - 1]))  # row-major: pos_y varies fastest
    assert classes.tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [2, 5, 39, 31, 31]]


def test_renderer_is_deterministic_binary_and_places_by_translation() -> None:
    idx = np.array([grid_index(s, 5, 7, 10, 12) for s in range(3)] + [grid_index(1, 5, 7, 11, 12), grid_index(1, 5, 7, 10, 13)])
    images = ds.render(idx)
    assert images.shape == (5, 64, 64) and images.dtype == np.uint8 and set(np.unique(images)) == {0, 1}
    assert np.array_equal(images, ds.render(idx[::-1])[::-1])  # same sprites whatever else is in the batch
    assert len({im.tobytes() for im in images[:3]}) == 3  # three different shapes
    assert np.array_equal(images[3], np.roll(images[1], 1, axis=1))  # pos_x + 1: one pixel right
    assert np.array_equal(images[4], np.roll(images[1], 1, axis=0))  # pos_y + 1: one pixel down
    areas = ds.render(np.array([grid_index(0, sc, 0, 16, 16) for sc in range(6)])).sum((1, 2))
    assert np.all(np.diff(areas) > 0) and areas[-1] == 400  # the unrotated square: 20 x 20 at scale 1
    # every sprite stays inside the image: the extreme positions at full scale, rotated, lose no pixels
    placed = ds.render(np.array([grid_index(2, 5, 5, px, py) for px, py in ((16, 16), (0, 0), (0, 31), (31, 0), (31, 31))]))
    assert len(set(placed.sum((1, 2)).tolist())) == 1


def small_dm(root: Path, **kwargs) -> DSpritesDataModule:
    dm = DSpritesDataModule(root, **{**SMALL, "source": "procedural", **kwargs})
    dm.prepare_data()
    dm.setup()
    return dm


def test_procedural_splits_carry_aligned_factors_and_the_target(tmp_path: Path) -> None:
    dm = small_dm(tmp_path)
    assert dm.source == f"procedural-v{ds.RENDERER_VERSION}" and dm.num_classes == 3
    parts = dm.split_indices()
    assert {k: len(v) for k, v in parts.items()} == {"train": 120, "val": 40, "test": 40}
    assert len(np.unique(np.concatenate(list(parts.values())))) == 200  # disjoint
    x, y = dm.splits["val"]
    assert x.shape == (40, 1, 64, 64) and x.dtype == torch.uint8 and set(x.unique().tolist()) == {0, 255}
    assert torch.equal(x[:, 0], torch.from_numpy(ds.render(parts["val"])) * 255)
    assert torch.equal(dm.factors["val"], torch.from_numpy(ds.factor_classes(parts["val"])))
    assert torch.equal(y, dm.factors["val"][:, 0])
    xb, _ = dm.transform(next(iter(dm.val_dataloader())), augment=False)
    assert set(xb.unique().tolist()) == {0.0, 1.0}  # binary Bernoulli targets

    again, other = small_dm(tmp_path), small_dm(tmp_path, seed=1)
    assert torch.equal(again.splits["train"][0], dm.splits["train"][0])
    assert not torch.equal(other.factors["train"], dm.factors["train"])
    orient = small_dm(tmp_path, target_factor="orientation")
    assert orient.num_classes == 40 and torch.equal(orient.splits["test"][1], orient.factors["test"][:, 2])


def test_a_64x64_batch_goes_through_the_beta_vae(tmp_path: Path) -> None:
    dm = small_dm(tmp_path)
    net = BetaVAEClassif(dm.shape, num_classes=dm.num_classes, latent_dim=4, hidden_dim=16, width=4, head_dim=8)
    convs = [m for m in net.encoder.net if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and net.encoder.out_shape == (32, 4, 4)  # 64 -> 32 -> 16 -> 8 -> 4
    x, _ = dm.transform(next(iter(dm.val_dataloader())), augment=False)
    out = net(x)
    assert out.recon.shape == x.shape == (40, 1, 64, 64) and out.logits.shape == (40, 3)


def test_bad_arguments_are_refused_in_one_line_each(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        DSpritesDataModule(tmp_path, target_factor="colour", source="web")
    lines = str(err.value).splitlines()
    assert lines == [
        "target_factor='colour': must be one of ['shape', 'scale', 'orientation', 'pos_x', 'pos_y']",
        "source='web': must be one of ['auto', 'official', 'procedural']",
    ]
    with pytest.raises(ConfigError, match="train_size=737000: train_size \\+ val_size \\+ test_size must be <= 737,280"):
        DSpritesDataModule(tmp_path, train_size=737_000)


def write_fake_npz(path: Path, n: int) -> np.ndarray:
    """An npz in the official layout (imgs uint8 0/1, latents_classes with the color column first), n sprites."""
    rng = np.random.default_rng(0)
    classes = np.concatenate([np.zeros((n, 1), np.int64), ds.factor_classes(rng.permutation(n))], axis=1)
    imgs = rng.integers(0, 2, (n, 64, 64), dtype=np.uint8)
    np.savez_compressed(path, imgs=imgs, latents_classes=classes, latents_values=classes.astype(np.float64))
    return imgs


def test_official_reader_streams_the_requested_sprites(tmp_path: Path) -> None:
    path = tmp_path / ds.FILENAME
    imgs = write_fake_npz(path, 50)
    idx = np.array([41, 3, 17, 4, 49, 0])
    images, classes = ds.read_official(path, idx, chunk=7)  # several chunks, indices out of order
    assert np.array_equal(images, imgs[idx])
    assert np.array_equal(classes, np.load(path)["latents_classes"][idx, 1:])
    with pytest.raises(ValueError, match="imgs holds 50 sprites"):
        ds.read_official(path, np.array([3, 60]), chunk=7)


def test_official_file_is_used_when_its_md5_matches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / ds.FILENAME
    imgs = write_fake_npz(path, 300)
    monkeypatch.setattr(ds, "MD5", calculate_md5(str(path)))
    monkeypatch.setattr(ds, "NUM_SPRITES", 300)
    dm = DSpritesDataModule(tmp_path, **SMALL)
    dm.prepare_data()
    dm.setup()
    test = dm.split_indices()["test"]
    assert dm.source == "official"
    assert torch.equal(dm.splits["test"][0][:, 0], torch.from_numpy(imgs[test]) * 255)
    assert torch.equal(dm.factors["test"], torch.from_numpy(np.load(path)["latents_classes"][test, 1:]))


def test_an_npz_with_the_wrong_md5_is_refused_naming_the_file(tmp_path: Path) -> None:
    write_fake_npz(tmp_path / ds.FILENAME, 4)
    with pytest.raises(DataNotFoundError, match=f"{tmp_path / ds.FILENAME} has md5 .*, not {ds.MD5}"):
        DSpritesDataModule(tmp_path, **SMALL).prepare_data()


def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("torchvision.datasets.utils.urllib.request.urlopen", refuse)


def test_offline_without_the_file_auto_renders_and_official_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    offline(monkeypatch)
    dm = DSpritesDataModule(tmp_path, **SMALL)
    dm.prepare_data()
    dm.setup()
    assert dm.source == f"procedural-v{ds.RENDERER_VERSION}"
    with pytest.raises(
        DataNotFoundError, match=f"dataset.source='official': no {ds.FILENAME} in {tmp_path}.*dataset.source=procedural"
    ):
        DSpritesDataModule(tmp_path, **SMALL, source="official").prepare_data()


def write_fashion(raw: Path, names: tuple[str, ...]) -> None:
    """Fashion-MNIST's four uncompressed IDX files (or some of them), as `make data` extracts them."""
    raw.mkdir(parents=True)
    for prefix, n, seed in (("train", N_TRAIN, 4), ("t10k", N_TEST, 5)):
        x, y = class_images(n, (28, 28), seed)
        for kind, array in (("images-idx3-ubyte", x), ("labels-idx1-ubyte", y)):
            if f"{prefix}-{kind}" in names:
                write_idx(raw / f"{prefix}-{kind}", array)


def test_fashion_mnist_reads_the_extracted_idx_files(tmp_path: Path) -> None:
    write_fashion(tmp_path / "FashionMNIST" / "raw", FashionMNISTDataModule.expected_files)
    dm = FashionMNISTDataModule(tmp_path, val_size=20)
    dm.prepare_data()
    dm.setup()
    (xtr, _), (xte, yte) = dm.splits["train"], dm.splits["test"]
    assert xtr.shape == (N_TRAIN - 20, 1, 28, 28) and xte.shape == (N_TEST, 1, 28, 28)
    x, y = class_images(N_TEST, (28, 28), 5)
    assert torch.equal(xte[:, 0], torch.from_numpy(x)) and yte.tolist() == y.tolist()


def test_fashion_mnist_missing_files_name_the_folder_and_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    offline(monkeypatch)
    raw = tmp_path / "FashionMNIST" / "raw"
    write_fashion(raw, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"))  # the test files are missing
    with pytest.raises(DataNotFoundError) as err:
        FashionMNISTDataModule(tmp_path).prepare_data()
    message = str(err.value)
    assert str(raw) in message and "dataset-fashion-mnist" in message and "make data" in message
    assert all(name in message for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte"))
