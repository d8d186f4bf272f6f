"""Fashion-MNIST (Xiao et al. 2017; torchvision): 55k train / 5k validation (carved from train by seed) / 10k test."""

from pathlib import Path

import torchvision

from bvp.data.base import DataNotFoundError, DeviceDataModule

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")  # `apt-get install dataset-fashion-mnist`


class FashionMNISTDataModule(DeviceDataModule):
    """Fashion-MNIST, 55k/5k/10k, 28x28 grey; pixels stay in [0, 1] (mean 0, std 1) for the Bernoulli decoder.

    torchvision accepts the four extracted IDX files in ``FashionMNIST/raw`` as they are (it checks md5s
    only of the .gz files it downloads). Debian's ``dataset-fashion-mnist`` ships the real files, re-gzipped
    (other md5s than torchvision's), in ``/usr/share/datasets/fashion-mnist``; ``make data`` extracts them.
    """

    name = "FashionMNIST"
    dataset_cls = torchvision.datasets.FashionMNIST
    shape = (1, 28, 28)
    recon = "bernoulli"
    mean, std = (0.0,), (1.0,)
    subfolder = "FashionMNIST/raw"
    expected_files = tuple(Path(name).stem for name, _ in torchvision.datasets.FashionMNIST.resources)

    def prepare_data(self) -> None:
        try:
            super().prepare_data()
        except DataNotFoundError as err:
            raise DataNotFoundError(
                f"{err} Offline: `apt-get install dataset-fashion-mnist` puts them, gzipped, in {DEBIAN_FOLDER}; "
                "`make data` extracts them into data/FashionMNIST/raw."
            ) from err.__cause__
