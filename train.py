"""Train one Beta-VAE-Classif / CNN-Classif run (or a sweep with -m). Configuration: conf/train.yaml.
`python train.py --help` lists the config groups; `python train.py --cfg job` prints the composed config.

A bad setting is refused before anything is written: `error: key=value: what to write instead` lines on
stderr (every bad key), no traceback, exit status 2. A crash prints its traceback as Hydra does (from the
run down; HYDRA_FULL_ERROR=1: the whole stack) and exits with status 1.
"""

import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import hydra
from omegaconf import DictConfig

from bvp.config import command_line_errors, config_error_lines, refuse, sweep_key_lines
from bvp.run import train
from bvp.sweep import discard_job_dir, in_multirun

CONF = Path(__file__).resolve().parent / "conf"


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the final test accuracy (for sweepers that optimise it). A refused run
    removes the folder Hydra made for it; in a sweep it fails alone (bvp.sweep.SweepProgress lists it)."""
    try:
        metrics = train(cfg).get("metrics") or {}  # none: skipped, another process runs it
    except Exception as err:
        lines = config_error_lines(err)
        if lines is None:  # a crash
            raise
        discard_job_dir()
        if in_multirun():
            raise
        refuse(lines)
    return metrics.get("finetuned_test_acc", metrics.get("dense_test_acc"))  # None for a skipped run


def crash(err: BaseException) -> NoReturn:
    """Hydra's short report of a crash: the traceback from its job runner down, and how to see all of it."""
    report = traceback.TracebackException.from_exception(err)
    names = [frame.name for frame in report.stack]
    if "run_job" in names:  # Hydra's own frames above the run say nothing about the crash
        report.stack = traceback.StackSummary.from_list(report.stack[names.index("run_job") + 1 :])
    print("".join(report.format()), end="", file=sys.stderr)
    print("\nSet the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.", file=sys.stderr, flush=True)
    sys.exit(1)


if __name__ == "__main__":
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"  # the user's choice, for a crash
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra hands every error to the lines below, which sort them
    try:
        main()
    except Exception as err:  # the command line's errors (Hydra composes it before main runs), a sweep's refused job
        lines = config_error_lines(err)
        if lines is not None:
            overrides = sys.argv[1:]
            if overrides and not any(arg.startswith(("-", "hydra.mode")) for arg in overrides):  # one run, plain overrides
                lines = command_line_errors(CONF, "train", overrides) or lines
            elif {"-m", "--multirun"} & set(overrides):  # a sweep: Hydra's line for an unknown key, as a run's
                lines = sweep_key_lines(CONF, "train", overrides, lines)
            refuse(lines)
        if full_error:
            raise
        crash(err)
