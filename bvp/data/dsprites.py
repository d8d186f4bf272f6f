"""dSprites (Matthey et al. 2017): 737,280 binary 64x64 sprites, one per combination of five factors.

Factors, in the official file's order (its constant ``color`` factor left out, as disentanglement_lib does):
shape (square, ellipse, heart), scale (6 values in [0.5, 1]), orientation (40 values in [0, 2 pi]),
pos_x and pos_y (32 values each in [0, 1]). Sprite ``i`` of the grid has the factor classes
``np.unravel_index(i, SIZES)``.

Source, in order: the official npz in ``data_dir`` (md5-checked), else a download of it, else a procedural
rendering of the same factor grid (``source="procedural"`` asks for it directly). The procedural sprites are
deterministic but not pixel-identical to the official ones; ``DSpritesDataModule.source`` says which a run used.
Only the sprites the splits need are materialised: the official images are streamed out of the npz, the
procedural ones are rendered by index.
"""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torchvision.datasets.utils import calculate_md5, download_url

from bvp.data.base import Batch, DataNotFoundError, DeviceDataModule
from bvp.rules import Choice, Integer, Rules, Spec

log = logging.getLogger(__name__)

FACTORS = ("shape", "scale", "orientation", "pos_x", "pos_y")
SIZES = (3, 6, 40, 32, 32)
NUM_SPRITES = int(np.prod(SIZES))  # 737,280
SIDE = 64
FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
MD5 = "7da33b31b13a06f4b04a70402ce90c2e"
URL = f"https://github.com/deepmind/dsprites-dataset/raw/master/{FILENAME}"
SOURCES = ("auto", "official", "procedural")
RENDERER_VERSION = 1


def factor_values() -> dict[str, np.ndarray]:
    """The value of each factor class, as in the official ``latents_values`` (shape: 1, 2, 3)."""
    pos = np.linspace(0, 1, SIZES[3])
    return {
        "shape": np.arange(1.0, 4.0),
        "scale": np.linspace(0.5, 1, SIZES[1]),
        "orientation": np.linspace(0, 2 * np.pi, SIZES[2]),
        "pos_x": pos,
        "pos_y": pos,
    }


def factor_classes(indices: np.ndarray) -> np.ndarray:
    """(N, 5) int64 factor classes of grid indices (the official row-major order)."""
    return np.stack(np.unravel_index(np.asarray(indices, dtype=np.int64), SIZES), axis=1).astype(np.int64)


# -- procedural renderer -------------------------------------------------------------------------
PATCH = 32  # every sprite fits in a 32x32 patch around its centre, at any scale and orientation
SUPERSAMPLE = 4  # 4x4 samples per pixel; a pixel is on when at least half of them fall inside the shape
PIXELS_PER_UNIT = {0: 10.0, 1: 12.0, 2: 9.0}  # square half-side, ellipse semi-major axis, heart size at scale 1


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether shape coordinates (u right, v up, unit size) fall inside the square, ellipse or heart."""
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= 1
    if shape == 1:
        return u**2 + (v / 0.5) ** 2 <= 1
    v = v + 0.1  # the heart curve (x^2 + y^2 - 1)^3 = x^2 y^3 spans y in [-1, 1.25]: centre it
    return (u**2 + v**2 - 1) ** 3 - u**2 * v**3 <= 0


def sprite_patches(combos: np.ndarray) -> np.ndarray:
    """(M, 32, 32) uint8 0/1 sprites centred in their patch, one per (shape, scale, orientation) class triple."""
    values = factor_values()
    offsets = (np.arange(PATCH * SUPERSAMPLE) + 0.5) / SUPERSAMPLE - PATCH / 2  # sample points, pixels from centre
    y, x = np.meshgrid(offsets, offsets, indexing="ij")  # image rows go down
    out = np.empty((len(combos), PATCH, PATCH), dtype=np.uint8)
    for k, (shape, scale, orient) in enumerate(np.asarray(combos).reshape(-1, 3)):
        size = values["scale"][scale] * PIXELS_PER_UNIT[int(shape)]
        cos, sin = np.cos(values["orientation"][orient]), np.sin(values["orientation"][orient])
        u = (x * cos - y * sin) / size  # rotate the sample points by -angle (counter-clockwise sprite)
        v = (-x * sin - y * cos) / size
        cover = _inside(int(shape), u, v).reshape(PATCH, SUPERSAMPLE, PATCH, SUPERSAMPLE).mean((1, 3))
        out[k] = cover >= 0.5
    return out


def render(indices: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """(N, 64, 64) uint8 0/1 procedural sprites of the given grid indices (renderer ``RENDERER_VERSION``).

    Each (shape, scale, orientation) patch is rendered once, then placed by translation: pos_x/pos_y class
    ``k`` puts the sprite's centre ``k`` pixels right of/below pixel 16, so centres span pixels 16..47.
    """
    classes = factor_classes(indices)
    combo_ids = np.ravel_multi_index(tuple(classes[:, :3].T), SIZES[:3])
    unique, inverse = np.unique(combo_ids, return_inverse=True)
    patches = sprite_patches(np.stack(np.unravel_index(unique, SIZES[:3]), axis=1))
    images = np.zeros((len(classes), SIDE, SIDE), dtype=np.uint8)
    offsets = np.arange(PATCH)
    for start in range(0, len(classes), chunk):
        part = slice(start, start + chunk)
        rows = (classes[part, 4, None] + offsets)[:, :, None]
        cols = (classes[part, 3, None] + offsets)[:, None, :]
        images[np.arange(start, start + len(rows))[:, None, None], rows, cols] = patches[inverse[part]]
    return images


# -- official file --------------------------------------------------------------------------------
def read_official(path: Path, indices: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 64, 64) uint8 0/1, factor classes (N, 5) int64) of the given indices of the official npz.

    ``imgs`` is 3 GB once decompressed, so it is streamed out of the zip in chunks and only the requested
    sprites are kept, ``chunk`` sprites at a time.
    """
    indices = np.asarray(indices, dtype=np.int64)
    order = np.argsort(indices)
    images = np.empty((len(indices), SIDE, SIDE), dtype=np.uint8)
    with zipfile.ZipFile(path) as zf, zf.open("imgs.npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        if len(indices) and indices[order[-1]] >= shape[0]:
            raise ValueError(f"{path}: imgs holds {shape[0]} sprites, index {indices[order[-1]]} was asked for")
        per_sprite = int(np.prod(shape[1:])) * dtype.itemsize
        done, pos = 0, 0
        while done < len(order):
            block = np.frombuffer(f.read(chunk * per_sprite), dtype=dtype).reshape(-1, *shape[1:])
            take = order[done:][indices[order[done:]] < pos + len(block)]  # a prefix: order sorts the indices
            images[take] = block[indices[take] - pos]
            done, pos = done + len(take), pos + len(block)
    with np.load(path, allow_pickle=False) as npz:
        classes = npz["latents_classes"][indices][:, 1:].astype(np.int64)  # drop the constant color factor
    return images, classes


class DSpritesDataModule(DeviceDataModule):
    """dSprites on the device: train/val/test drawn from the grid by seed; the class target is one factor.

    ``dm.factors[split]`` holds each split's (N, 5) factor classes (CPU, int64) in the split's order (for MIG), and
    ``dm.source`` says where the sprites came from: "official" or "procedural-v<renderer version>".
    Pixels are stored as 0/255 so the shared x/255 transform gives binary images (Bernoulli decoder).
    """

    name = "dSprites"
    shape = (1, SIDE, SIDE)
    recon = "bernoulli"
    mean, std = (0.0,), (1.0,)
    subfolder = ""
    expected_files = (FILENAME,)
    factor_names = FACTORS  # the columns of factors[split] (bvp.evaluation.monitor checks a run's factor names here)
    SETTINGS: ClassVar[dict[str, Spec]] = {  # the base class's, but crop_padding and hflip
        **{key: spec for key, spec in DeviceDataModule.SETTINGS.items() if key not in ("crop_padding", "hflip")},
        "train_size": Integer(ge=1, example=10_000),
        "val_size": Integer(ge=1, example=10_000),
        "test_size": Integer(ge=1, example=10_000),
        "target_factor": Choice(FACTORS),
        "source": Choice(SOURCES),
    }

    def __init__(
        self,
        data_dir: str | os.PathLike = "data",
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        train_size: int = 100_000,
        val_size: int = 10_000,
        test_size: int = 10_000,
        seed: int = 0,
        target_factor: str = "shape",
        source: str = "auto",
    ) -> None:
        """``source``: "auto" (the official file if present or downloadable, else procedural), "official"
        (fail without it) or "procedural" (render, ignoring any file)."""
        rules = Rules.of(self.SETTINGS, locals())
        if not rules.errors and train_size + val_size + test_size > NUM_SPRITES:
            rules.add("train_size", train_size, f"train_size + val_size + test_size must be <= {NUM_SPRITES:,}")
        rules.check()
        super().__init__(data_dir, batch_size=batch_size, eval_batch_size=eval_batch_size, val_size=val_size, seed=seed)
        self.train_size, self.test_size = train_size, test_size
        self.target_factor, self.requested_source = target_factor, source
        self.num_classes = SIZES[FACTORS.index(target_factor)]
        self.factors: dict[str, torch.Tensor] = {}
        self.source: str | None = None

    @property
    def official_path(self) -> Path:
        return self.data_dir / FILENAME

    def prepare_data(self) -> None:
        """Check the official file's md5 (refuse a wrong one), or download it; else fall back to rendering."""
        if self.splits or self.requested_source == "procedural":
            return
        path = self.official_path
        if path.is_file():
            md5 = calculate_md5(str(path))
            if md5 != MD5:
                raise DataNotFoundError(
                    f"data_dir={str(self.data_dir)!r}: {path} has md5 {md5}, not {MD5} (a partial download or another "
                    "file); delete it to download it again, or set dataset.source=procedural"
                )
            return
        try:
            download_url(URL, str(self.data_dir), FILENAME, MD5)
        except Exception as err:  # offline: URLError, OSError, RuntimeError from torchvision
            if self.requested_source == "official":
                raise DataNotFoundError(
                    f"dataset.source='official': no {FILENAME} in {self.data_dir} and the download failed "
                    f"({type(err).__name__}: {err}); put it there, or set dataset.source=procedural (or auto)"
                ) from err
            log.warning("dSprites: no %s in %s and no download (%s): rendering the sprites", FILENAME, self.data_dir, err)

    def split_indices(self) -> dict[str, np.ndarray]:
        """Disjoint grid indices of each split, drawn by ``seed`` (test, then val, then train)."""
        order = torch.randperm(NUM_SPRITES, generator=torch.Generator().manual_seed(self.seed)).numpy()
        ends = np.cumsum([self.test_size, self.val_size, self.train_size])
        test, val, train = np.split(order[: ends[-1]], ends[:-1])
        return {"train": train, "val": val, "test": test}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        parts = self.split_indices()
        every = np.concatenate(list(parts.values()))
        official = self.requested_source != "procedural" and self.official_path.is_file()
        if official:
            images, classes = read_official(self.official_path, every)
        else:
            images, classes = render(every), factor_classes(every)
        self.source = "official" if official else f"procedural-v{RENDERER_VERSION}"
        x = torch.from_numpy(images).mul_(255).unsqueeze(1)
        factors = torch.from_numpy(classes)
        splits: dict[str, Batch] = {}
        start = 0
        target = FACTORS.index(self.target_factor)
        for name, idx in parts.items():
            part = slice(start, start + len(idx))
            splits[name] = (x[part], factors[part, target].clone())
            self.factors[name] = factors[part]
            start += len(idx)
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        self.use_splits(splits, device)
