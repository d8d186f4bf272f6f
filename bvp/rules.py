"""A setting's type and range, declared once, and the errors that refuse a bad one.

A ``Spec`` declares one key's type and range; a class lists its settings' specs in ``SETTINGS``, checks its
arguments against them at the top of its constructor (``Rules.of``), and bvp.config checks the composed config
against the same specs before anything is built. ``Rules`` collects the bad values as 'key=value: what to write
instead' lines and ``check()`` raises them together as one ``ConfigError``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SEED_MAX = 2**32 - 1  # Lightning's seed_everything silently replaces a seed outside [0, 2**32 - 1] by 0


class ConfigError(ValueError):
    """The configuration cannot run: one 'key=value: what to write instead' line per bad key."""

    def __init__(self, errors: str | Iterable[str]) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))

    def __reduce__(self) -> tuple[Any, ...]:  # whole through a launcher's worker processes
        return type(self), (self.errors,)

    def renamed(self, name: Callable[[str], str]) -> ConfigError:
        """The same errors with each line's key ``k`` written as ``name(k)``, in its example too ('e.g. k=1')."""
        out = []
        for line in self.errors:
            key = line.split("=", 1)[0]
            out.append(re.sub(rf"(?<![\w.]){re.escape(key)}=", lambda _, k=key: f"{name(k)}=", line))
        return ConfigError(out)

    def prefixed(self, prefix: str) -> ConfigError:
        """The same errors with their keys under ``prefix`` ('batch_size=0: ...' -> 'dataset.batch_size=0: ...')."""
        return self.renamed(lambda key: f"{prefix}.{key}")


def is_number(value: Any) -> bool:
    """A finite int or float (bools and NaN/inf are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bound(b: float) -> str:
    return str(int(b)) if float(b).is_integer() else f"{b:g}"


def shown(value: Any) -> str:
    """A value in an error line as the command line and YAML spell it: null, true, false; others as repr."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)


class Rules:
    """Collects a constructor's bad arguments; ``check()`` raises them together as one ConfigError."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    @classmethod
    def of(cls, settings: Mapping[str, Spec], values: Mapping[str, Any]) -> Rules:
        """The errors of every value in ``values`` (a constructor's ``locals()``) that breaks its declared spec."""
        rules = cls()
        for key, spec in settings.items():
            if key in values:
                spec.check_argument(rules, key, values[key])
        return rules

    def add(self, key: str, value: Any, what: str) -> None:
        self.errors.append(f"{key}={shown(value)}: {what}")

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
            limits = " and ".join(f"{op} {_bound(b)}" for b, op, _ in bounds if b is not None)
            hint = f", e.g. {key}={example}" if example is not None else ""
            self.add(key, value, f"must be {kind}{' ' + limits if limits else ''}{hint}")

    def choice(self, key: str, value: Any, options: Iterable[Any]) -> None:
        options = list(options)
        if not any(value == o and type(value) is type(o) for o in options):  # 1 is not True, '16' is not 16
            self.add(key, value, f"must be one of {options}")

    def boolean(self, key: str, value: Any) -> None:
        if not isinstance(value, bool):
            self.add(key, value, "must be true or false")

    def path(self, key: str, value: Any) -> None:
        if not isinstance(value, os.PathLike) and (not isinstance(value, str) or not value.strip()):
            self.add(key, value, f"must be a path, e.g. {key}=data")

    def optimizer(self, key: str, factory: Any, params: Iterable[Any]) -> None:
        """A ``_partial_`` optimizer whose settings keep OPTIMIZER_SETTINGS and that accepts them: built once on
        ``params`` (torch checks its other settings only then, when training starts)."""
        bad = Rules.of(OPTIMIZER_SETTINGS, getattr(factory, "keywords", {})).errors
        if bad:
            self.errors += ConfigError(bad).prefixed(key).errors
            return
        try:
            factory(params)
        except (TypeError, ValueError) as err:
            name = getattr(getattr(factory, "func", factory), "__qualname__", factory)
            self.add(key, name, f"{err}; see its documentation")

    def check(self) -> None:
        if self.errors:
            raise ConfigError(self.errors)


@dataclass(frozen=True, kw_only=True)
class Spec:
    """One key's type and range. ``null``: None is a valid value too (e.g. 'no cache')."""

    null: bool = False

    def check(self, rules: Rules, key: str, value: Any) -> None:
        """Add to ``rules`` why ``value`` cannot be ``key``'s value in a config, if it cannot."""
        if value is not None or not self.null:
            self.refuse(rules, key, value)

    def check_argument(self, rules: Rules, key: str, value: Any) -> None:
        """The same, for a value a constructor is called with (bvp passes derived ones itself)."""
        self.check(rules, key, value)

    def refuse(self, rules: Rules, key: str, value: Any) -> None:
        """Add the error line for ``value`` unless it keeps this spec (each kind of spec says how)."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Number(Spec):
    """A finite number within the bounds; ``example``: what the error suggests instead."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    example: Any = None
    integer: bool = False

    def refuse(self, rules: Rules, key: str, value: Any) -> None:
        bounds = {"ge": self.ge, "gt": self.gt, "le": self.le, "lt": self.lt}
        rules.number(key, value, integer=self.integer, example=self.example, **bounds)


@dataclass(frozen=True, kw_only=True)
class Integer(Number):
    """An integer (not a bool, not 1.0) within the bounds."""

    integer: bool = True


SEED = Integer(ge=0, le=SEED_MAX, example=0)


@dataclass(frozen=True, kw_only=True)
class Boolean(Spec):
    """true or false (not 1, not 'yes')."""

    def refuse(self, rules: Rules, key: str, value: Any) -> None:
        rules.boolean(key, value)


@dataclass(frozen=True)
class Choice(Spec):
    """One of ``options``, of the same type (1 is not True, '16' is not 16)."""

    options: tuple[Any, ...]

    def refuse(self, rules: Rules, key: str, value: Any) -> None:
        rules.choice(key, value, self.options)


@dataclass(frozen=True, kw_only=True)
class PathName(Spec):
    """A file or folder path: a non-empty string (or an os.PathLike, from Python)."""

    def refuse(self, rules: Rules, key: str, value: Any) -> None:
        rules.path(key, value)


@dataclass(frozen=True, kw_only=True)
class Text(Spec):
    """Any string (a name, a file name pattern); ``integers``: an integer too (a logger's version)."""

    integers: bool = False

    def refuse(self, rules: Rules, key: str, value: Any) -> None:
        if not (isinstance(value, str) or (self.integers and is_integer(value))):
            rules.add(key, value, f"must be a string{' or an integer' if self.integers else ''}")


@dataclass(frozen=True)
class Subset(Spec):
    """A non-empty list of distinct ``options``."""

    options: tuple[str, ...]

    def refuse(self, rules: Rules, key: str, value: Any) -> None:
        items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else None  # a ListConfig too
        if not items or any(i not in self.options for i in items) or len(set(items)) < len(items):
            example = f"[{self.options[0]},{self.options[-1]}]"
            rules.add(key, value, f"must be a non-empty subset of {list(self.options)}, e.g. {key}={example}")


@dataclass(frozen=True, kw_only=True)
class Integers(Spec):
    """A non-empty list of integers >= ``ge`` (layer sizes, one per layer: their count is checked where the
    layers are known); ``example``: what the error suggests instead, as typed on the command line."""

    ge: int = 1
    example: str | None = None

    def refuse(self, rules: Rules, key: str, value: Any) -> None:
        items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else None  # a ListConfig too
        if not items or not all(is_integer(i) and i >= self.ge for i in items):
            hint = f", e.g. {key}={self.example}" if self.example is not None else ""
            rules.add(key, value, f"must be a non-empty list of integers >= {self.ge}{' or null' if self.null else ''}{hint}")


@dataclass(frozen=True)
class NotTaken(Spec):
    """A setting bvp refuses whatever its value, ``why`` saying what decides it instead (trainer.max_steps: the run's
    length comes from epochs and the pruning group)."""

    why: str

    def refuse(self, rules: Rules, key: str, value: Any) -> None:
        rules.add(key, value, f"bvp does not take this setting: {self.why}; leave it out")


@dataclass(frozen=True)
class Derived(Spec):
    """An argument bvp passes itself, computed from other settings (``by``): a config that sets it is refused,
    since bvp would overrule it. ``spec``: the argument's own type, checked when a constructor is called."""

    by: str
    spec: Spec | None = None

    def refuse(self, rules: Rules, key: str, value: Any) -> None:
        rules.add(key, value, f"bvp sets this itself, from {self.by}; leave it out, and set what it comes from instead")

    def check_argument(self, rules: Rules, key: str, value: Any) -> None:
        if self.spec is not None:
            self.spec.check(rules, key, value)


OPTIMIZER_SETTINGS: dict[str, Spec] = {"lr": Number(gt=0, example=1e-3)}  # any torch optimizer's, as model.optimizer
