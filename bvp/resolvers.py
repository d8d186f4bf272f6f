"""The config resolvers of conf/: ``${mul:a,b}`` (hydra/launcher=gpus: jobs at once = launch.gpus x
launch.jobs_per_gpu) and ``${join:a,b,...}`` (sweep folder names without empty parts). ``import bvp`` registers
them, so any import of the package makes conf/ compose: train.py, launcher workers, Hydra's compose API."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from bvp.rules import ConfigError, Integer, Rules

LAUNCH = {"launch.gpus": Integer(ge=1, example=4), "launch.jobs_per_gpu": Integer(ge=1, example=2)}  # conf/train.yaml


def launch_errors(cfg: DictConfig) -> list[str]:
    """The launch keys (hydra/launcher=gpus runs launch.gpus x launch.jobs_per_gpu jobs at once)."""
    return Rules.of(LAUNCH, {f"launch.{key}": value for key, value in (cfg.get("launch") or {}).items()}).errors


def parallel_jobs(gpus: Any, jobs_per_gpu: Any) -> int:
    """${mul:${launch.gpus},${launch.jobs_per_gpu}}: the jobs hydra/launcher=gpus runs at once, refused
    (ConfigError) unless both are integers >= 1; it is resolved before any job, so the check is here."""
    errors = launch_errors(OmegaConf.create({"launch": {"gpus": gpus, "jobs_per_gpu": jobs_per_gpu}}))
    if errors:
        raise ConfigError(errors)
    return gpus * jobs_per_gpu


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("mul"):
        OmegaConf.register_new_resolver("mul", parallel_jobs)
    if not OmegaConf.has_resolver("join"):
        OmegaConf.register_new_resolver("join", lambda *parts: ",".join(str(p) for p in parts if str(p)))
