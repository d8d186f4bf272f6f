"""CIFAR10 (torchvision): 45k train / 5k validation (carved from train by seed) / 10k test.

``jpeg_stand_in=True`` reads a stand-in instead where the real CIFAR-10 cannot be had: the batches that
``make data`` decodes from a JPEG copy of the 60,000 images (real labels and order, lossy pixels, about 30 dB
PSNR) into ``<data_dir>/cifar10-jpeg-stand-in/cifar-10-batches-py/``. torchvision's md5 check rightly refuses
those files, so ``JPEGStandIn`` checks only that they are there. Every such run warns, and its metrics.json
says ``dataset_source: jpeg-stand-in`` (part of the dense-cache key and of the report's cells): its figures are
"CIFAR-10 (JPEG stand-in)", never CIFAR-10 results. Where the real, md5-passing files are in
``<data_dir>/cifar-10-batches-py/``, they win, and the run says so.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import ClassVar

import torchvision
from torchvision.datasets import cifar

from bvp.data.base import DataNotFoundError, DeviceDataModule
from bvp.rules import Boolean, Rules, Spec

log = logging.getLogger(__name__)

STAND_IN_FOLDER = "cifar10-jpeg-stand-in"  # under data_dir, apart from the real set's cifar-10-batches-py/
STAND_IN_SOURCE = "jpeg-stand-in"  # metrics.json's dataset_source for a run on it
STAND_IN_WARNING = "CIFAR-10 (JPEG stand-in): lossy pixels, not CIFAR-10 results"
REAL = torchvision.datasets.CIFAR10
FILES = (*(f for f, _ in REAL.train_list + REAL.test_list), REAL.meta["filename"])  # data_batch_1..5, test_batch, batches.meta


class JPEGStandIn(torchvision.datasets.CIFAR10):
    """torchvision's CIFAR10 on the decoded JPEG stand-in: its files are checked to be there, not by md5 (they
    are not the original bytes). Never downloads."""

    def _check_integrity(self) -> bool:
        folder = Path(self.root) / self.base_folder
        return all((folder / name).is_file() for name in FILES)

    def _load_meta(self) -> None:
        path = Path(self.root) / self.base_folder / self.meta["filename"]
        if not path.is_file():
            raise RuntimeError(f"no {path}")
        with open(path, "rb") as f:
            self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    def download(self) -> None:
        raise RuntimeError("the JPEG stand-in is never downloaded: `make data` decodes it")


def real_files_pass(folder: Path) -> bool:
    """Whether ``folder`` holds the original CIFAR-10 python batches, by torchvision's md5s."""
    files = [*REAL.train_list, *REAL.test_list, (REAL.meta["filename"], REAL.meta["md5"])]
    return all(cifar.check_integrity(str(folder / name), md5) for name, md5 in files)


class CIFAR10DataModule(DeviceDataModule):
    """CIFAR10, 45k/5k/10k; per-channel standardised, Gaussian reconstruction."""

    name = "CIFAR10"
    dataset_cls = torchvision.datasets.CIFAR10
    shape = (3, 32, 32)
    recon = "gaussian"
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    subfolder = "cifar-10-batches-py"
    expected_files = tuple(f for f, _ in torchvision.datasets.CIFAR10.train_list + torchvision.datasets.CIFAR10.test_list)
    SETTINGS: ClassVar[dict[str, Spec]] = {**DeviceDataModule.SETTINGS, "jpeg_stand_in": Boolean()}

    def __init__(
        self,
        data_dir: str | os.PathLike = "data",
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int = 5000,
        seed: int = 0,
        crop_padding: int = 0,
        hflip: bool = False,
        jpeg_stand_in: bool = False,
    ) -> None:
        """``jpeg_stand_in``: read the decoded JPEG stand-in from ``<data_dir>/cifar10-jpeg-stand-in/`` unless
        the real files are in ``<data_dir>/cifar-10-batches-py/`` (no download either way)."""
        Rules.of(self.SETTINGS, locals()).check()
        super().__init__(data_dir, batch_size, eval_batch_size, val_size, seed, crop_padding, hflip)
        self.jpeg_stand_in = jpeg_stand_in
        self.source: str | None = None  # "jpeg-stand-in" once chosen; None: the real CIFAR10 (data_source: its name)
        self._chosen = False

    @property
    def stand_in_root(self) -> Path:
        """The root the stand-in's cifar-10-batches-py/ sits in."""
        return self.data_dir / STAND_IN_FOLDER

    def choose_files(self) -> None:
        """With jpeg_stand_in: the real files if they pass torchvision's md5 check, else the stand-in's, else
        refuse naming the folder, the files and how to make them. Says which, once per DataModule."""
        if self._chosen:
            return
        real = self.data_dir / self.subfolder
        if real_files_pass(real):
            log.warning(
                "dataset.jpeg_stand_in=true: the real CIFAR-10 files in %s pass torchvision's md5 check; "
                "using them, not the JPEG stand-in",
                real,
            )
            self.source = None
        else:
            folder = self.stand_in_root / self.subfolder
            missing = [name for name in FILES if not (folder / name).is_file()]
            if missing:
                some = f"; missing {', '.join(missing)}" if len(missing) < len(FILES) else ""
                raise DataNotFoundError(
                    f"dataset.jpeg_stand_in=true: no decoded CIFAR-10 (JPEG stand-in) batches in {folder} (expected "
                    f"{', '.join(FILES)}{some}) and no md5-passing real CIFAR-10 files in {real}. "
                    "Make them with `make data` (it decodes ../shared/data/cifar10-jpeg; SHARED_DATA=... elsewhere) or "
                    f"`python .../cifar10-jpeg/make_batches.py {self.stand_in_root}`, or set dataset.jpeg_stand_in=false"
                )
            log.warning("%s (dataset_source: %s, from %s)", STAND_IN_WARNING, STAND_IN_SOURCE, folder)
            self.source = STAND_IN_SOURCE
        self._chosen = True

    def _dataset(self, train: bool, download: bool):
        if self.source == STAND_IN_SOURCE:
            return JPEGStandIn(str(self.stand_in_root), train=train, download=False)
        return super()._dataset(train, download)

    def prepare_data(self) -> None:
        if self.splits:
            return
        if self.jpeg_stand_in:
            self.choose_files()
            return
        try:
            super().prepare_data()
        except DataNotFoundError as err:
            raise DataNotFoundError(
                f"{err} Offline, a JPEG stand-in (lossy pixels, not CIFAR-10) can be read with dataset.jpeg_stand_in=true "
                f"(or dataset=cifar10_jpeg) from {self.stand_in_root / self.subfolder}, which `make data` writes (docs/data.md)."
            ) from err.__cause__

    def setup(self, stage: str | None = None) -> None:
        if self.jpeg_stand_in and not self.splits:
            self.choose_files()
        super().setup(stage)
