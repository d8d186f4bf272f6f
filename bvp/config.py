"""Configuration errors: each names the key, its value and what to write instead, all bad keys at once.

Each configurable class checks its own arguments in its constructor with ``Rules`` (the rules sit next to
the options they describe); keys there are relative to the config group, and ``build`` prefixes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bvp.pruning import check_pruning_args


class ConfigError(ValueError):
    """The configuration cannot run: one 'key=value: what to write instead' line per bad key."""

    def __init__(self, errors: str | Iterable[str]) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))

    def prefixed(self, prefix: str) -> ConfigError:
        """The same errors with their keys under ``prefix`` (e.g. 'batch_size=0: ...' -> 'dataset.batch_size=0: ...')."""
        return ConfigError(f"{prefix}.{e}" for e in self.errors)


def is_number(value: Any) -> bool:
    """A finite int or float (bools and NaN/inf are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Rules:
    """Collects a constructor's bad arguments; ``check()`` raises them together as one ConfigError."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, key: str, value: Any, what: str) -> None:
        self.errors.append(f"{key}={value!r}: {what}")

    def number(
        self,
        key: str,
        value: Any,
        *,
        integer: bool = False,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        lt: float | None = None,
        example: Any = None,
    ) -> None:
        """A finite number (an integer if ``integer``) within the given bounds."""
        ok = is_integer(value) if integer else is_number(value)
        bounds = [(ge, ">=", lambda v, b: v >= b), (gt, ">", lambda v, b: v > b), (le, "<=", lambda v, b: v <= b)]
        bounds.append((lt, "<", lambda v, b: v < b))
        ok = ok and all(b is None or test(value, b) for b, _, test in bounds)
        if not ok:
            kind = "an integer" if integer else "a finite number"
            limits = " and ".join(f"{op} {b:g}" for b, op, _ in bounds if b is not None)
            hint = f", e.g. {key}={example}" if example is not None else ""
            self.add(key, value, f"must be {kind}{' ' + limits if limits else ''}{hint}")

    def choice(self, key: str, value: Any, options: Iterable[Any]) -> None:
        options = list(options)
        if value not in options:
            self.add(key, value, f"must be one of {options}")

    def boolean(self, key: str, value: Any) -> None:
        if not isinstance(value, bool):
            self.add(key, value, "must be true or false")

    def check(self) -> None:
        if self.errors:
            raise ConfigError(self.errors)


def pruning_enabled(cfg: DictConfig) -> bool:
    return bool(cfg.get("pruning")) and "_target_" in cfg.pruning


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError listing every bad value of ``cfg`` (top-level keys and the pruning group)."""
    errors = []
    rules = [
        ("beta", lambda v: is_number(v) and v >= 0, "a number >= 0, e.g. beta=4"),
        ("lr", lambda v: is_number(v) and v > 0, "a number > 0, e.g. lr=1e-3"),
        ("latent_dim", lambda v: is_integer(v) and v >= 1, "an integer >= 1, e.g. latent_dim=10"),
        ("epochs", lambda v: is_integer(v) and v >= 1, "an integer >= 1, e.g. epochs=30"),
        ("finetune_epochs", lambda v: is_integer(v) and v >= 0, "an integer >= 0, e.g. finetune_epochs=2"),
        ("batch_size", lambda v: is_integer(v) and v >= 1, "an integer >= 1, e.g. batch_size=128"),
        ("seed", is_integer, "an integer, e.g. seed=0"),
    ]
    for key, ok, what in rules:
        value = cfg.get(key)
        if not ok(value):
            errors.append(f"{key}={value!r}: must be {what}")
    if pruning_enabled(cfg) and is_integer(cfg.get("epochs")):
        errors += check_pruning_args(OmegaConf.to_container(cfg.pruning, resolve=True), cfg.epochs)
    if errors:
        raise ConfigError(errors)
