"""Datasets: one module per dataset around the shared on-device DataModule (``bvp.data.base``)."""

from bvp.data.base import DataNotFoundError, DeviceDataModule, DeviceLoader, EpochSampler
from bvp.data.cifar10 import CIFAR10DataModule
from bvp.data.dsprites import DSpritesDataModule
from bvp.data.fashion_mnist import FashionMNISTDataModule
from bvp.data.mnist import MNISTDataModule

__all__ = [
    "CIFAR10DataModule",
    "DSpritesDataModule",
    "DataNotFoundError",
    "DeviceDataModule",
    "DeviceLoader",
    "EpochSampler",
    "FashionMNISTDataModule",
    "MNISTDataModule",
]
