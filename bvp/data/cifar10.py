"""CIFAR10 (torchvision): 45k train / 5k validation (carved from train by seed) / 10k test."""

import torchvision

from bvp.data.base import DeviceDataModule


class CIFAR10DataModule(DeviceDataModule):
    """CIFAR10, 45k/5k/10k; per-channel standardised, Gaussian reconstruction."""

    name = "CIFAR10"
    dataset_cls = torchvision.datasets.CIFAR10
    shape = (3, 32, 32)
    recon = "gaussian"
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    subfolder = "cifar-10-batches-py"
    expected_files = tuple(f for f, _ in torchvision.datasets.CIFAR10.train_list + torchvision.datasets.CIFAR10.test_list)
