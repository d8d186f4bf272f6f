"""Sweep plumbing: a Hydra callback that records a sweep's jobs and shows its progress, the config
resolvers, and the per-job device and thread assignment for parallel launchers."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from bvp.io import atomic_write_json, read_json

SWEEP_FILE = "sweep.json"


def register_resolvers() -> None:
    """${mul:a,b} (jobs = gpus x jobs_per_gpu) and ${join:a,b,...} (run names without empty parts)."""
    if not OmegaConf.has_resolver("mul"):
        OmegaConf.register_new_resolver("mul", lambda a, b: int(a) * int(b))
    if not OmegaConf.has_resolver("join"):
        OmegaConf.register_new_resolver("join", lambda *parts: ",".join(str(p) for p in parts if str(p)))


def sweep_jobs(params: dict[str, Any], task_overrides: list[str]) -> list[list[str]]:
    """The override list of every job, expanded as Hydra's BasicSweeper does (params, then command line)."""
    args = [f"{k}={v}" for k, v in params.items()] + list(task_overrides)
    (batch,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)
    return batch


def statuses(sweep_dir: Path) -> dict[str, int]:
    """How many runs under ``sweep_dir`` are in each metrics.json status."""
    counts: dict[str, int] = {}
    for path in sweep_dir.glob("*/metrics.json"):
        status = (read_json(path) or {}).get("status", "unknown")
        counts[status] = counts.get(status, 0) + 1
    return counts


class SweepProgress(Callback):
    """Writes ``sweep.json`` (every job's overrides, for the report's missing-run list) when a sweep
    starts and draws a progress bar of finished runs after each job, also from launcher workers."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        params = config.hydra.sweeper.get("params")
        jobs = sweep_jobs(OmegaConf.to_container(params) if params else {}, list(config.hydra.overrides.task))
        atomic_write_json(sweep_dir / SWEEP_FILE, {"jobs": jobs, "started": time.time()})
        self._draw(sweep_dir)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if in_multirun():
            self._draw(Path(config.hydra.sweep.dir))

    @staticmethod
    def _draw(sweep_dir: Path) -> None:
        info = read_json(sweep_dir / SWEEP_FILE) or {}
        total, counts = len(info.get("jobs", [])), statuses(sweep_dir)
        finished = counts.get("done", 0) + counts.get("failed", 0)
        bar = tqdm.format_meter(finished, total, time.time() - info.get("started", time.time()), prefix="sweep")
        print(f"{bar} [{', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}]", file=sys.stderr, flush=True)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def assign_job_resources(cfg: DictConfig) -> list[int] | None:
    """In a multirun: the GPU index for this job (job number modulo ``launch.gpus``) and, for parallel
    CPU jobs, a fair share of the cores. Returns the devices to give the Trainer (None: leave as is)."""
    if not in_multirun():
        return None
    hydra = HydraConfig.get()
    devices = cfg.trainer.get("devices", 1)
    if devices not in (1, "1"):
        from bvp.config import ConfigError

        raise ConfigError(
            f"trainer.devices={devices!r} in a sweep: run one process per job (trainer.devices=1) and "
            "parallelise across jobs with hydra/launcher=gpus; multirun + DDP re-launches nested sweeps"
        )
    n_jobs = int(hydra.launcher.get("n_jobs") or 1)
    if torch.cuda.is_available() and cfg.trainer.get("accelerator") in ("auto", "gpu", "cuda"):
        return [hydra.job.num % max(1, int(cfg.launch.gpus))]
    if n_jobs > 1:
        torch.set_num_threads(max(1, math.floor((os.cpu_count() or 1) / n_jobs)))
    return None
