"""Train one Beta-VAE-Classif / CNN-Classif run (or a sweep with -m). Configuration: conf/train.yaml."""

import hydra
from omegaconf import DictConfig

from bvp.run import train
from bvp.sweep import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the final test accuracy (for sweepers that optimise it)."""
    return train(cfg)["metrics"].get("test/acc")


if __name__ == "__main__":
    main()
