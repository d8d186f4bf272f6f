"""The shared on-device DataModule: every split is held on the training device and batched by index.

Each split is one uint8 tensor (N, C, H, W) on the device; batches are drawn by index, and
normalisation and augmentation run batched on the device, so no per-sample Python or PIL work
sits in the training loop.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import Tensor

from bvp.io import remove_empty_folders
from bvp.rules import SEED, Boolean, ConfigError, Integer, PathName, Rules, Spec
from bvp.torchutil import derived_seed

Batch = tuple[Tensor, Tensor]


class DataNotFoundError(ConfigError, FileNotFoundError):
    """The dataset files are missing and could not be downloaded: a setting (data_dir) to fix, not a crash."""


class EpochSampler:
    """A permutation of ``range(n)`` fixed by (seed, epoch) and sharded across ranks.

    Lightning calls ``set_epoch`` at the start of every epoch (as for a DistributedSampler), so a
    resumed run draws the same order as an uninterrupted one.
    """

    def __init__(self, n: int, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n // self.world_size if self.world_size > 1 else self.n

    def indices(self) -> Tensor:
        if self.shuffle:
            gen = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch))
            order = torch.randperm(self.n, generator=gen)
        else:
            order = torch.arange(self.n)
        if self.world_size > 1:  # equal shards so every rank runs the same number of steps
            order = order[: len(self) * self.world_size][self.rank :: self.world_size]
        return order


class DeviceLoader:
    """Iterates (uint8 images, labels) batches cut from tensors that already live on the device."""

    batch_sampler = None  # Lightning inspects it like a DataLoader's; batching is done here

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, sampler: EpochSampler) -> None:
        self.x, self.y, self.batch_size, self.sampler = x, y, batch_size, sampler

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        if not self.sampler.shuffle and self.sampler.world_size == 1:  # contiguous views, no copy
            for i in range(0, len(self.sampler), self.batch_size):
                yield self.x[i : i + self.batch_size], self.y[i : i + self.batch_size]
            return
        order = self.sampler.indices().to(self.x.device)
        for idx in order.split(self.batch_size):
            yield self.x[idx], self.y[idx]


def random_crop_flip(x: Tensor, padding: int, hflip: bool = True) -> Tensor:
    """Batched RandomCrop(size, padding) with zero fill (a random shift of up to ``padding`` pixels),
    plus RandomHorizontalFlip if ``hflip``, on x's device."""
    b, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (padding,) * 4)
    oy = torch.randint(0, 2 * padding + 1, (b,), device=dev)
    ox = torch.randint(0, 2 * padding + 1, (b,), device=dev)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    out = padded[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None], rows, cols]
    if not hflip:
        return out
    flip = torch.rand(b, device=dev) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


class DeviceDataModule(L.LightningDataModule):
    """Shared logic: load a torchvision dataset once, split it, keep it on the device, batch by index."""

    name: str
    dataset_cls: type
    shape: tuple[int, int, int]
    num_classes: int = 10
    recon: str  # reconstruction likelihood the images suit: "bernoulli" or "gaussian"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    expected_files: tuple[str, ...]
    subfolder: str
    factor_names: ClassVar[tuple[str, ...]] = ()  # the ground-truth factors of ``self.factors[split]``, if it has any
    SETTINGS: ClassVar[dict[str, Spec]] = {  # dataset.<key>; val_size is checked against the data's size in setup()
        "data_dir": PathName(),
        "batch_size": Integer(ge=1, example=128),
        "eval_batch_size": Integer(ge=1, example=1000),
        "val_size": Integer(ge=1, example=5000),
        "seed": SEED,
        "crop_padding": Integer(ge=0, example=2),  # and < the image side: each dataset's own (__init_subclass__)
        "hflip": Boolean(),
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A dataset's crop_padding stays below its image side."""
        super().__init_subclass__(**kwargs)
        if "crop_padding" in cls.SETTINGS:
            side = cls.shape[1]
            cls.SETTINGS = {**cls.SETTINGS, "crop_padding": Integer(ge=0, lt=side, example=side // 8)}

    def __init__(
        self,
        data_dir: str | os.PathLike = "data",
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int = 5000,
        seed: int = 0,
        crop_padding: int = 0,
        hflip: bool = False,
    ) -> None:
        """``crop_padding`` > 0: training batches are randomly shifted by up to that many pixels (zero
        padded, as RandomCrop(size, padding)); ``hflip``: and flipped left-right with probability 1/2."""
        Rules.of(self.SETTINGS, locals()).check()
        super().__init__()
        self.data_dir = Path(data_dir).expanduser()
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.seed = val_size, seed
        self.crop_padding, self.hflip = crop_padding, hflip
        self.splits: dict[str, Batch] = {}
        self.norm = (torch.tensor(self.mean).view(1, -1, 1, 1), torch.tensor(self.std).view(1, -1, 1, 1))

    # -- loading ------------------------------------------------------------------------------
    def _dataset(self, train: bool, download: bool):
        return self.dataset_cls(str(self.data_dir), train=train, download=download)

    @staticmethod
    def _tensors(ds) -> Batch:
        """(N, C, H, W) uint8 images and int64 labels from a torchvision dataset's arrays."""
        data = torch.as_tensor(ds.data)
        x = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)
        return x.contiguous(), torch.as_tensor(ds.targets, dtype=torch.long)

    def prepare_data(self) -> None:
        """Find the files (torchvision checks them) or download them; fail with what to put where."""
        if self.splits:  # already in memory (handed over by the caller)
            return
        folder = self.data_dir / self.subfolder
        missing = [f for f in (folder, *folder.parents) if not f.exists()]
        try:
            for train in (True, False):
                self._dataset(train, download=True)
        except Exception as err:  # torchvision raises URLError, RuntimeError, OSError, ... offline
            if missing:  # a refused run leaves nothing behind: not even the empty folders the download made
                remove_empty_folders(missing[-1])
            failure = textwrap.shorten(str(err), 160, placeholder=" ...")  # one short line: torchvision's span several
            present = [
                n for n in self.expected_files if (folder / n).is_file() or (folder / Path(n).stem).is_file()
            ]  # or extracted
            what = (  # all there, yet unreadable: damaged, not missing
                f"the {self.name} files in {folder} cannot be read"
                if len(present) == len(self.expected_files)
                else f"no usable {self.name} files in {folder} and the download failed"
            )
            raise DataNotFoundError(
                f"data_dir={str(self.data_dir)!r}: {what} ({type(err).__name__}: {failure}). Put "
                f"{'intact copies of ' if present else ''}{', '.join(self.expected_files)} there, or point data_dir=... "
                f"(or $BVP_DATA_DIR) at a writable folder that holds {self.subfolder}/."
            ) from err

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        x, y = self._tensors(self._dataset(train=True, download=False))
        if not 0 < self.val_size < len(x):  # the constructor cannot know the data's size
            raise ConfigError(
                f"dataset.val_size={self.val_size!r}: must be an integer between 1 and {len(x) - 1} ({self.name} has "
                f"{len(x)} training images; the rest train), e.g. dataset.val_size={min(5000, len(x) // 10)}"
            )
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        val, train = order[: self.val_size], order[self.val_size :]
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        test = self._tensors(self._dataset(train=False, download=False))
        self.use_splits({"train": (x[train], y[train]), "val": (x[val], y[val]), "test": test}, device)

    def use_splits(self, splits: dict[str, Batch], device: torch.device) -> None:
        """Hold these (uint8 images, labels) splits on ``device``; setup() and prepare_data() then keep them."""
        self.splits = {name: (xs.to(device), ys.to(device)) for name, (xs, ys) in splits.items()}
        self.norm = tuple(t.to(device) for t in self.norm)

    # -- batches ------------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DeviceLoader:
        x, y = self.splits[split]
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer is not None else (0, 1)
        size = self.batch_size if split == "train" else self.eval_batch_size
        return DeviceLoader(x, y, size, EpochSampler(len(x), shuffle, self.seed, rank, world))

    def train_dataloader(self) -> DeviceLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DeviceLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DeviceLoader:
        return self._loader("test", shuffle=False)

    def transform(self, batch: Batch, augment: bool) -> Batch:
        """uint8 -> float in [0, 1], optional crop/flip, then (x - mean) / std; all batched on device."""
        x, y = batch
        x = x.float().div_(255)
        if augment and self.crop_padding:
            x = random_crop_flip(x, self.crop_padding, self.hflip)
        mean, std = self.norm
        return (x - mean) / std, y

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        return self.transform(batch, augment=self.trainer is not None and self.trainer.training)
