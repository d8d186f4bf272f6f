"""Train one Beta-VAE-Classif / CNN-Classif run (or a sweep with -m). Configuration: conf/train.yaml.

A bad setting is refused before anything is written: `error: key=value: what to write instead` lines on
stderr (every bad key), no traceback, exit status 2. A crash keeps its traceback.
"""

import os
import sys
from typing import NoReturn

import hydra
from omegaconf import DictConfig

from bvp.config import config_error_lines
from bvp.run import train
from bvp.sweep import discard_job_dir, in_multirun, register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the final test accuracy (for sweepers that optimise it). A refused run
    removes the folder Hydra made for it; in a sweep it fails alone (bvp.sweep.SweepProgress lists it)."""
    try:
        metrics = train(cfg)["metrics"]
    except Exception as err:
        lines = config_error_lines(err)
        if lines is None:  # a crash
            raise
        discard_job_dir()
        if in_multirun():
            raise
        refuse(lines)
    return metrics.get("finetuned_test_acc", metrics.get("dense_test_acc"))


def refuse(lines: list[str]) -> NoReturn:
    print("\n".join(f"error: {line}" for line in lines), file=sys.stderr, flush=True)
    sys.exit(2)


if __name__ == "__main__":
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises (instead of printing a traceback itself): sorted below
    try:
        main()
    except Exception as err:  # the command line's errors (Hydra composes it before main runs), a sweep's refused job
        lines = config_error_lines(err)
        if lines is None:
            raise
        refuse(lines)
