"""MNIST (torchvision): 55k train / 5k validation (carved from train by seed) / 10k test."""

import torchvision

from bvp.data.base import DeviceDataModule


class MNISTDataModule(DeviceDataModule):
    """MNIST, 55k/5k/10k; pixels stay in [0, 1] (mean 0, std 1) so the Bernoulli decoder can target them."""

    name = "MNIST"
    dataset_cls = torchvision.datasets.MNIST
    shape = (1, 28, 28)
    recon = "bernoulli"
    mean, std = (0.0,), (1.0,)
    subfolder = "MNIST/raw"
    expected_files = tuple(name for name, _ in torchvision.datasets.MNIST.resources)
