"""Sweep plumbing: Hydra callbacks that check a sweep's values before its first job, record its jobs (and those
refused for a bad setting) and show its progress, and the per-job device and thread assignment for parallel
launchers. The config resolvers are in bvp.resolvers."""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from tqdm import tqdm

from bvp.config import ConfigError, OutputFolders, Parts, check_config, config_error_lines, refuse
from bvp.io import atomic_write_json, locked, read_json, readable_json, remove_if_empty
from bvp.names import METRICS_FILE, OVERRIDES_FILE, SWEEP_FILE, SWEEP_LOCK
from bvp.resolvers import job_key, launch_errors

HYDRA_FILES = (".hydra/config.yaml", ".hydra/hydra.yaml", OVERRIDES_FILE)  # what Hydra writes in a job's folder


def sweep_jobs(params: dict[str, Any], task_overrides: list[str]) -> list[list[str]]:
    """The override list of every job, expanded as Hydra's BasicSweeper does (params, then command line)."""
    args = [f"{k}={v}" for k, v in params.items()] + list(task_overrides)
    (batch,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)
    return batch


BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def sweep_config_errors(config: DictConfig) -> list[str]:
    """The 'key=value: what to write instead' lines of every job of the sweep, each composed as Hydra will compose
    it and put through ``check_config`` (types, ranges, options, keys, the checks across keys), one line per
    distinct error; then, if the settings pass, ``sweep_data_errors`` of the jobs' data sets. About 0.1 s a job;
    the other checks that need the data or a built part wait for the job."""
    params = config.hydra.sweeper.get("params")
    jobs = sweep_jobs(OmegaConf.to_container(params) if params else {}, list(config.hydra.overrides.task))
    loader = GlobalHydra.instance().config_loader()
    errors: list[str] = []
    composed: list[DictConfig] = []
    for job in jobs:
        try:
            cfg = loader.load_sweep_config(config, list(job))
            with open_dict(cfg):
                cfg.output_dir = str(config.hydra.sweep.dir)  # the job's own folder is named later, inside it
                del cfg["hydra"]  # as Hydra hands the job its config
            check_config(cfg)
            composed.append(cfg)
        except Exception as err:
            lines = config_error_lines(err)
            if lines is None:  # not a setting's fault: the job itself will say what it is
                continue
            errors += [line for line in lines if line not in errors]
    return errors or sweep_data_errors(composed)


def sweep_data_errors(cfgs: list[DictConfig]) -> list[str]:
    """Each distinct data set of the sweep's jobs found (or downloaded) as its first job would find it
    (``prepare_data``), so that ``dataset=mnist,cifar10`` without CIFAR-10 is an error line now, not refused jobs
    after the MNIST ones have trained for hours. Its warnings wait for the jobs, which give them again."""
    errors: list[str] = []
    seen: set[str] = set()
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        for cfg in cfgs:
            if (key := OmegaConf.to_yaml(cfg.dataset, resolve=True)) in seen:
                continue
            seen.add(key)
            parts = Parts(cfg)
            if (dm := parts.make("dataset")) is not None:
                parts.run(dm.prepare_data)
            errors += [line for line in parts.errors if line not in errors]
    finally:
        logging.disable(previous)
    return errors


class SweepCheck(Callback):
    """Refuses a sweep that has a job with a bad setting, or data that is not there, before its first job runs:
    every job is composed and checked (``sweep_config_errors``), so a typo in the last value of a long sweep, a pair
    of values that do not go together, or a data set left out of ``make data``, is an error line now, not a refused
    job hours later. Hydra's basic sweeper only: another
    sweeper (Optuna, say) chooses its jobs as it goes, and each is checked as it starts."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.launcher.get("_target_") == SLURM_LAUNCHER and shutil.which("srun") is None:  # submitit needs it
            refuse(["hydra/launcher=slurm: no SLURM here (srun is not on PATH); sweep from a SLURM login node, or drop it"])
        if launch_errors(config) or config.hydra.sweeper.get("_target_") != BASIC_SWEEPER:
            return  # launch errors: refused already, by the launcher's n_jobs (bvp.resolvers.parallel_jobs)
        if errors := sweep_config_errors(config):
            refuse(errors)


def statuses(sweep_dir: Path) -> dict[str, int]:
    """How many runs under ``sweep_dir`` are in each metrics.json status."""
    counts: dict[str, int] = {}
    for path in sweep_dir.glob(f"*/{METRICS_FILE}"):
        status = (readable_json(path) or {}).get("status", "unknown")
        counts[status] = counts.get(status, 0) + 1
    return counts


def discard_job_dir() -> bool:
    """Remove the folder Hydra made for this job before any of bvp's checks ran (its .hydra/ files and its
    log), if it holds nothing else, and the empty folders above it that Hydra made (a single run's
    ``outputs/runs/<date>/``): a refused run leaves nothing behind. A folder with anything of a run's own (a
    checkpoint, metrics.json) is kept. Returns whether the folder was removed."""
    hydra = HydraConfig.get()
    log_file = ((hydra.job_logging.get("handlers") or {}).get("file") or {}).get("filename")
    run_dir = Path(hydra.runtime.output_dir)
    own = {run_dir / f for f in HYDRA_FILES} | ({Path(log_file)} if log_file else set())
    files = {p for p in run_dir.rglob("*") if not p.is_dir()}
    if not run_dir.is_dir() or not files <= own:
        return False
    for path in files:
        path.unlink()
    made = OutputFolders.made  # a single run: the outermost folder Hydra made for it (a sweep keeps its folder)
    above = [] if made is None or not run_dir.absolute().is_relative_to(made) else run_dir.absolute().parents
    remove_if_empty((run_dir / ".hydra", run_dir, *(f for f in above if f.is_relative_to(made))))
    return True


class SweepProgress(Callback):
    """Writes ``sweep.json`` (every job's overrides, for the report's missing-run list) when a sweep
    starts and draws a progress line of finished runs after each job, also from launcher workers. In a
    sweep, a job's console shows warnings only (its log file keeps everything), so the sweep prints one
    line per run. A job refused for a bad setting (its folder is gone: ``discard_job_dir``) is listed in
    ``sweep.json`` under ``refused``, with its overrides and error lines, and the other jobs run."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if launch_errors(config):  # refused before any job, by the launcher's n_jobs (bvp.resolvers.parallel_jobs): write nothing
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        params = config.hydra.sweeper.get("params")
        jobs = sweep_jobs(OmegaConf.to_container(params) if params else {}, list(config.hydra.overrides.task))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with locked(sweep_dir / SWEEP_LOCK):  # a sweep re-run with other seeds (bvp.study) adds its jobs to the record
            info = read_json(sweep_dir / SWEEP_FILE) or {}
            known = info.get("jobs", [])
            now = {job_key(job) for job in jobs}
            refused = [r for r in info.get("refused", []) if job_key(r["overrides"]) not in now]  # these run again now
            seen = {job_key(job) for job in known}
            for job in jobs:  # beta=1,1.0 is one job: one folder
                if (key := job_key(job)) not in seen:
                    known.append(job)
                    seen.add(key)
            # the bar's rate and time left count this invocation's runs over its own time, not the days since the first
            counts = self._counts(sweep_dir, refused)
            since = {"started": time.time(), "finished": self._finished(counts)}
            atomic_write_json(sweep_dir / SWEEP_FILE, {"jobs": known, "refused": refused, "invocation": since})
        self._draw(sweep_dir, counts)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if in_multirun():
            quiet_console()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not in_multirun():
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        err = job_return._return_value  # the job's exception, if it failed (return_value would raise it)
        lines = config_error_lines(err) if isinstance(err, Exception) else None
        if lines is not None:
            overrides = list(config.hydra.overrides.task)
            with locked(sweep_dir / SWEEP_LOCK):
                info = read_json(sweep_dir / SWEEP_FILE) or {}
                info.setdefault("refused", []).append({"overrides": overrides, "errors": lines})
                atomic_write_json(sweep_dir / SWEEP_FILE, info)
            print(f"sweep: refused {' '.join(overrides)}: {'; '.join(lines)}", file=sys.stderr, flush=True)
        self._draw(sweep_dir)

    @staticmethod
    def _counts(sweep_dir: Path, refused: list[Any]) -> dict[str, int]:
        counts = statuses(sweep_dir)
        return counts | ({"refused": len(refused)} if refused else {})

    @staticmethod
    def _finished(counts: dict[str, int]) -> int:
        return counts.get("done", 0) + counts.get("failed", 0) + counts.get("refused", 0)

    @classmethod
    def _draw(cls, sweep_dir: Path, counts: dict[str, int] | None = None) -> None:
        """The progress line; ``counts``: the statuses just counted (else counted here)."""
        info = read_json(sweep_dir / SWEEP_FILE) or {}
        counts = cls._counts(sweep_dir, info.get("refused", [])) if counts is None else counts
        since = info.get("invocation") or {}
        finished = cls._finished(counts)
        elapsed = time.time() - since.get("started", time.time())
        bar = tqdm.format_meter(finished, len(info.get("jobs", [])), elapsed, prefix="sweep", initial=since.get("finished", 0))
        print(f"{bar} [{', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}]", file=sys.stderr, flush=True)


def quiet_console() -> None:
    """Console handlers (Hydra's, and Lightning's own) show warnings only; log files keep every line."""
    for name in ("", "lightning.pytorch", "lightning.fabric"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.WARNING)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def unlaunched_sweep() -> str | None:
    """A warning for a single run whose config lists a sweep (an experiment's hydra.sweeper.params) that only
    -m would launch: it runs one job with the config's own values, which is rarely what was meant."""
    if not HydraConfig.initialized() or in_multirun():
        return None
    params = HydraConfig.get().sweeper.get("params") or {}
    if not params:
        return None
    swept = ", ".join(params)
    return f"this config lists a sweep over {swept}; without -m it runs one job with its own values: add -m to run the sweep"


def assign_job_resources(cfg: DictConfig) -> list[int] | None:
    """In a multirun: the GPU index for this job (job number modulo ``launch.gpus``) and, for parallel
    CPU jobs, a fair share of the cores. Returns the devices to give the Trainer (None: leave as is)."""
    if not in_multirun():
        return None
    hydra = HydraConfig.get()
    devices = cfg.trainer.get("devices", 1)
    if devices not in (1, "1"):
        raise ConfigError(
            f"trainer.devices={devices!r}: must be 1 in a sweep: run one process per job and "
            "parallelise across jobs with hydra/launcher=gpus; multirun + DDP re-launches nested sweeps"
        )
    n_jobs = int(hydra.launcher.get("n_jobs") or 1)
    if torch.cuda.is_available() and cfg.trainer.get("accelerator") in ("auto", "gpu", "cuda"):
        return [hydra.job.num % max(1, int(cfg.launch.gpus))]
    if n_jobs > 1:
        torch.set_num_threads(max(1, math.floor((os.cpu_count() or 1) / n_jobs)))
    return None
