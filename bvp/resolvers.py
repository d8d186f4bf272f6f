"""The config resolvers of conf/: ``${mul:a,b}`` (hydra/launcher=gpus: jobs at once = launch.gpus x
launch.jobs_per_gpu) and ``${join:a,b,...}`` (sweep folder names without empty parts, numbers written one way).
``import bvp`` registers them, so any import of the package makes conf/ compose: train.py, launcher workers,
Hydra's compose API."""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import cache
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
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


@cache
def canonical_number(text: str) -> str:
    """A number written one way (``1.0`` and ``1e0`` -> ``1``; ``0.50`` -> ``0.5``), anything Hydra's override
    grammar reads as something else (``007``, ``true``, ``[1,2]``) as it is: ``beta=1`` typed and the default
    ``beta: 1.0`` name one run folder, so a re-run finds the run it finished."""
    try:
        value = OverridesParser.create().parse_override(f"x={text}").value()
    except HydraException:
        return text
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return text
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return text
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def folder_name(*parts: Any) -> str:
    """${join:...}: the non-empty ``key=value`` parts joined by commas, each value a ``canonical_number``."""
    items = (item for part in parts for item in str(part).split(",") if item)
    return ",".join(f"{key}={canonical_number(value)}" if sep else key for key, sep, value in (i.partition("=") for i in items))


def job_key(overrides: Iterable[str]) -> frozenset[str]:
    """A sweep job as a set of overrides, in any order and with numbers written one way: ``beta=1.0`` typed
    again is the job ``beta=1`` was, which the run folder it shares says too."""
    return frozenset(folder_name(o) for o in overrides)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("mul"):
        OmegaConf.register_new_resolver("mul", parallel_jobs)
    if not OmegaConf.has_resolver("join"):
        OmegaConf.register_new_resolver("join", folder_name)
