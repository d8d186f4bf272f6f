"""Checks a composed config before any training starts; each error names the key and what to write."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from bvp.pruning import check_pruning_args


class ConfigError(ValueError):
    """The configuration cannot run; the message lists every bad key."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def pruning_enabled(cfg: DictConfig) -> bool:
    return bool(cfg.get("pruning")) and "_target_" in cfg.pruning


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError listing every bad value of ``cfg`` (top-level keys and the pruning group)."""
    errors = []
    rules = [
        ("beta", lambda v: _number(v) and v >= 0, "a number >= 0, e.g. beta=4"),
        ("lr", lambda v: _number(v) and v > 0, "a number > 0, e.g. lr=1e-3"),
        ("latent_dim", lambda v: _integer(v) and v >= 1, "an integer >= 1, e.g. latent_dim=10"),
        ("epochs", lambda v: _integer(v) and v >= 1, "an integer >= 1, e.g. epochs=30"),
        ("finetune_epochs", lambda v: _integer(v) and v >= 0, "an integer >= 0, e.g. finetune_epochs=2"),
        ("batch_size", lambda v: _integer(v) and v >= 1, "an integer >= 1, e.g. batch_size=128"),
        ("seed", _integer, "an integer, e.g. seed=0"),
    ]
    for key, ok, what in rules:
        value = cfg.get(key)
        if not ok(value):
            errors.append(f"{key}={value!r}: must be {what}")
    if pruning_enabled(cfg) and _integer(cfg.get("epochs")):
        errors += check_pruning_args(OmegaConf.to_container(cfg.pruning, resolve=True), cfg.epochs)
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
