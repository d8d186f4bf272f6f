"""Configuration errors: each names the key, its value and what to write instead, all bad keys at once.

Each configurable class checks its own arguments at the top of its constructor with ``Rules``, so the rules
sit next to the options they describe; their keys are relative to the class's config group. ``Parts`` builds
a run's parts one after another, keeps going past a part that refuses its settings, names every refused key
as the user writes it (``dataset.batch_size``, or ``batch_size`` where the group copies that top-level key
with ``${batch_size}``) and raises them all at once. ``check_config`` checks the top-level keys of
conf/train.yaml that no constructor receives; ``lightning_trainer`` is the trainer group's constructor.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, get_args

from hydra._internal.utils import _locate  # hydra.utils.get_object, without its ERROR log line
from hydra.errors import CompactHydraException, InstantiationException, MissingConfigException, OverrideParseException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, ValidationError

from bvp.identity import REFERENCE

if TYPE_CHECKING:
    import lightning.pytorch as L

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


def _one_line(text: str) -> str:
    return " ".join(text.split())


def config_error_lines(err: BaseException) -> list[str] | None:
    """The 'key=value: what to write instead' lines of a configuration error: bvp's ConfigError, or Hydra's
    composing of the command line (an unknown option, an override it cannot parse, a key that is not in the
    config, an interpolation that does not resolve). None for anything else: a crash keeps its traceback."""
    if isinstance(err, ConfigError):
        return [_one_line(line) for line in err.errors]
    if isinstance(err, InterpolationResolutionError) and isinstance(err.__context__, ConfigError):  # from a resolver
        return config_error_lines(err.__context__)
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options:
        group, _, name = err.missing_cfg_file.rpartition("/")
        return [f"{group}={name}: no such option in conf/{group}/, choose one of {', '.join(sorted(err.options))}"]
    if isinstance(err, OverrideParseException):
        return [f"{err.override}: cannot be parsed ({_one_line(err.message)})"]
    if isinstance(err, CompactHydraException) and not isinstance(err, InstantiationException):
        return [_one_line(str(err))]  # e.g. "Could not override 'foo'. To append to your config use +foo=1"
    if isinstance(err, (InterpolationResolutionError, MissingMandatoryValue, ValidationError)):
        what = (str(err).splitlines() or [type(err).__name__])[0]  # OmegaConf appends full_key/object_type lines
        return [f"{err.full_key}: {what}" if err.full_key else what]
    return None


def is_number(value: Any) -> bool:
    """A finite int or float (bools and NaN/inf are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bound(b: float) -> str:
    return str(int(b)) if float(b).is_integer() else f"{b:g}"


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
            limits = " and ".join(f"{op} {_bound(b)}" for b, op, _ in bounds if b is not None)
            hint = f", e.g. {key}={example}" if example is not None else ""
            self.add(key, value, f"must be {kind}{' ' + limits if limits else ''}{hint}")

    def seed(self, key: str, value: Any) -> None:
        self.number(key, value, integer=True, ge=0, le=SEED_MAX, example=0)

    def choice(self, key: str, value: Any, options: Iterable[Any]) -> None:
        options = list(options)
        if not any(value == o and type(value) is type(o) for o in options):  # 1 is not True, '16' is not 16
            self.add(key, value, f"must be one of {options}")

    def boolean(self, key: str, value: Any) -> None:
        if not isinstance(value, bool):
            self.add(key, value, "must be true or false")

    def path(self, key: str, value: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            self.add(key, value, f"must be a path, e.g. {key}=data")

    def optimizer(self, key: str, factory: Any, params: Iterable[Any]) -> None:
        """A ``_partial_`` optimizer whose lr (if set) is a finite number > 0 and that accepts its settings:
        built once on ``params`` (torch checks its other settings only then, when training starts)."""
        lr = getattr(factory, "keywords", {}).get("lr")
        if lr is not None:
            self.number(f"{key}.lr", lr, gt=0, example=1e-3)
        if lr is None or (is_number(lr) and lr > 0):
            try:
                factory(params)
            except (TypeError, ValueError) as err:
                name = getattr(getattr(factory, "func", factory), "__qualname__", factory)
                self.add(key, name, f"{err}; see its documentation")

    def check(self) -> None:
        if self.errors:
            raise ConfigError(self.errors)


def pruning_enabled(cfg: DictConfig) -> bool:
    return bool(cfg.get("pruning")) and "_target_" in cfg.pruning


def unresolved(cfg: DictConfig) -> list[str]:
    """Errors for the values of ``cfg`` that do not resolve (``${nope}``, ``???``), each at the key where it is
    written, not at every key that copies it."""
    errors = []
    for key in _leaves(cfg):
        raw = _node(cfg, key)._value()
        copied = REFERENCE.match(raw) if isinstance(raw, str) else None
        if copied and _node(cfg, copied.group(1)) is not None:
            continue
        try:
            OmegaConf.select(cfg, key, throw_on_resolution_failure=True, throw_on_missing=True)
        except MissingMandatoryValue:
            errors.append(f"{key}={raw!r}: must be given a value, e.g. {key}=...")
        except InterpolationResolutionError as err:
            errors.append(f"{key}={raw!r}: {str(err).splitlines()[0]}")
    return errors


def launch_errors(cfg: DictConfig) -> list[str]:
    """The launch keys (hydra/launcher=gpus runs launch.gpus x launch.jobs_per_gpu jobs at once)."""
    launch, rules = cfg.get("launch") or {}, Rules()
    rules.number("launch.gpus", launch.get("gpus", 1), integer=True, ge=1, example=4)
    rules.number("launch.jobs_per_gpu", launch.get("jobs_per_gpu", 1), integer=True, ge=1, example=2)
    return rules.errors


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError listing every value that does not resolve, else every bad top-level key of
    conf/train.yaml that no constructor receives (the others, such as beta or batch_size, are checked where
    they are used) and the pruning group's settings."""
    errors = unresolved(cfg)
    if errors:  # every check below reads values: they would stop at the first of these
        raise ConfigError(errors)
    rules = Rules()
    rules.number("epochs", cfg.get("epochs"), integer=True, ge=1, example=30)
    rules.number("finetune_epochs", cfg.get("finetune_epochs"), integer=True, ge=0, example=2)
    rules.seed("seed", cfg.get("seed"))
    rules.boolean("resume", cfg.get("resume", False))
    for key in ("ckpt_path", "cache_dir"):
        if cfg.get(key) is not None:
            rules.path(key, cfg.get(key))
    rules.errors += launch_errors(cfg)
    if pruning_enabled(cfg) and is_integer(cfg.get("epochs")):
        from bvp.pruning import check_pruning_args  # here: bvp.pruning imports the modules that import this one

        rules.errors += check_pruning_args(OmegaConf.to_container(cfg.pruning, resolve=True), cfg.epochs)
    rules.check()


def _node(cfg: DictConfig, key: str) -> Any:
    """The node at dotted ``key`` (its ``_value()`` is unresolved, e.g. '${batch_size}'), or None."""
    node: Any = cfg
    for part in key.split("."):
        if not OmegaConf.is_dict(node) or (node := node._get_node(part, validate_access=False)) is None:
            return None
    return node


def _leaves(node: DictConfig, prefix: str = "") -> Iterator[str]:
    """The dotted keys of ``node``'s values (a list is one value), unresolved."""
    for key, _ in node.items_ex(resolve=False):
        child = node._get_node(key)
        if OmegaConf.is_dict(child) and not child._is_interpolation():
            yield from _leaves(child, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def _settings(target: Any) -> tuple[list[str], bool]:
    """The keyword settings ``target`` takes, and whether it takes any (``**kwargs``)."""
    params = inspect.signature(target).parameters.values()
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


class Parts:
    """Builds a run's parts one after another and keeps going past a part that refuses its settings, so that
    ``check()`` raises every bad key of every part (and of the top-level keys) at once.

    A part whose nested part is refused (``model`` when ``model.net`` is) is still built, on that nested part's
    class with its default settings, so that its own settings are checked too.
    """

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.errors: list[str] = []
        broken = unresolved(cfg)
        if broken:  # no part can be built from a value that does not resolve
            raise ConfigError(broken)
        self.run(check_config, cfg)

    def user_key(self, key: str) -> str:
        """``key`` as the user writes it: the key it copies (``${batch_size}``), followed to the end, else itself."""
        seen = set()
        while key not in seen and (node := _node(self.cfg, key)) is not None:
            seen.add(key)
            match = REFERENCE.match(raw) if isinstance(raw := node._value(), str) else None
            if match is None or _node(self.cfg, match.group(1)) is None:
                break
            key = match.group(1)
        return key

    def note(self, err: ConfigError, prefix: str | None = None) -> None:
        named = err.prefixed(prefix) if prefix else err
        self.errors += named.renamed(self.user_key).errors

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, or None if it raises a ConfigError (noted; its keys are full keys already)."""
        try:
            return fn(*args)
        except ConfigError as err:
            self.note(err)
            return None

    def make(self, key: str, **kwargs: Any) -> Any:
        """``instantiate(cfg.<key>, **kwargs)``, or None if it refuses its settings (noted, keys under ``key``).
        A nested part (a ``_target_`` that is not ``_partial_``) is built first, with ``kwargs[<its key>]``.
        Once the run is refused, parts are built only to check them: what they log (Lightning's device
        summary) is held back, so that the errors are all a refused run prints."""
        previous = logging.root.manager.disable
        if self.errors:
            logging.disable(logging.INFO)
        try:
            return self._make(key, OmegaConf.select(self.cfg, key), kwargs)
        finally:
            logging.disable(previous)

    def target(self, key: str) -> Any:
        """What cfg.<key>._target_ names (a class), or None if it cannot be imported (noted by ``make``)."""
        try:
            return _locate(OmegaConf.select(self.cfg, key)._target_)
        except Exception:  # Hydra raises ImportError, ValueError, ... for a bad target
            return None

    def check(self) -> None:
        """Raise every noted error, one line per key (the first one noted for it)."""
        lines: dict[str, str] = {}
        for line in self.errors:
            lines.setdefault(line.split("=", 1)[0], line)
        if lines:
            raise ConfigError(lines.values())

    def _make(self, key: str, node: DictConfig, kwargs: dict[str, Any]) -> Any:
        unknown = self._unknown(key, node)
        if unknown:
            self.errors += unknown
            return None
        for child, sub in node.items_ex(resolve=False):
            if isinstance(child, str) and self._is_part(sub := node._get_node(child)):
                given = kwargs.pop(child, {})
                built = self._make(f"{key}.{child}", sub, dict(given))
                if built is None:  # refused: stand in its class with its defaults, to check this part's own settings
                    built = self._default(sub, given)
                if built is None:
                    return None
                kwargs[child] = built
        try:
            return instantiate(node, **kwargs)
        except InstantiationException as err:  # Hydra wraps what the constructor raised
            if not isinstance(err.__cause__, ConfigError):
                raise
            self.note(err.__cause__, key)
        return None

    @staticmethod
    def _is_part(node: Any) -> bool:
        return OmegaConf.is_dict(node) and "_target_" in node and not node.get("_partial_", False)

    @staticmethod
    def _default(node: DictConfig, kwargs: dict[str, Any]) -> Any:
        try:
            return instantiate({"_target_": node._target_}, **kwargs)
        except Exception:  # no stand-in: the enclosing part is not checked this time
            return None

    def _unknown(self, key: str, node: DictConfig) -> list[str]:
        """'key.k=v: not a setting of <target>' for each setting of ``node`` (and of its nested targets) that its
        ``_target_`` does not take, or one line if the target cannot be imported."""
        target = node.get("_target_")
        try:
            named, takes_any = _settings(_locate(target))
        except Exception as err:  # Hydra raises ImportError, ValueError, ... for a bad target
            why = " ".join(str(err).split())
            return [f"{self.user_key(key + '._target_')}={target!r}: cannot be imported ({why})"]
        errors = []
        for child, raw in node.items_ex(resolve=False):
            if not isinstance(child, str) or (child.startswith("_") and child.endswith("_")):
                continue
            sub = node._get_node(child)
            if child not in named and not takes_any:
                errors.append(f"{key}.{child}={raw!r}: not a setting of {target}; it takes {', '.join(named)}")
            elif OmegaConf.is_dict(sub) and "_target_" in sub:
                errors += self._unknown(f"{key}.{child}", sub)
        return errors


def _devices_ok(value: Any) -> bool:
    """What Lightning takes for ``devices``: a count >= 1, -1 or 'auto' (all), or a list of device indices."""
    if is_integer(value):
        return value >= 1 or value == -1
    if isinstance(value, str):  # "auto", or device indices as Lightning parses them: "0,1"
        parts = [part.strip() for part in value.split(",") if part.strip()]
        return value == "auto" or (bool(parts) and all(part.isdigit() for part in parts))
    items = list(value) if OmegaConf.is_list(value) or isinstance(value, (list, tuple)) else None
    return bool(items) and all(is_integer(i) and i >= 0 for i in items) and len(set(items)) == len(items)


def _on_this_machine(rules: Rules, accelerator: str, devices: Any) -> None:
    """The accelerator exists here, with at least ``devices`` devices (Lightning refuses either with a traceback)."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    if accelerator in ("auto", "cpu"):
        return

    def available(name: str) -> Any:
        try:
            return AcceleratorRegistry.get(name).is_available()
        except ImportError:  # tpu without torch_xla installed
            return False

    names = ("cuda", "mps") if accelerator == "gpu" else (accelerator,)
    found = [AcceleratorRegistry.get(n) for n in names if available(n)]
    if not found:
        rules.add("accelerator", accelerator, "this machine has none; use accelerator=auto (or cpu)")
    elif is_integer(devices) and devices > (count := found[0].auto_device_count()):
        rules.add("devices", devices, f"this machine has {count} {accelerator} device(s), e.g. devices={count}")


def lightning_trainer(**settings: Any) -> L.Trainer:
    """``lightning.pytorch.Trainer(**settings)``, the trainer group's ``_target_``, after checking the settings
    that conf/trainer sets: Lightning checks some of them only once training starts, and some never."""
    import lightning.pytorch as L
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.trainer.connectors.accelerator_connector import _PRECISION_INPUT

    rules = Rules()
    named, _ = _settings(L.Trainer)
    for key in sorted(set(settings) - set(named)):
        rules.add(key, settings[key], "not a setting of lightning.pytorch.Trainer")
    get = settings.get
    accelerators = ["auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators())]
    rules.choice("accelerator", get("accelerator", "auto"), accelerators)
    if not _devices_ok(get("devices", "auto")):
        what = "must be a count >= 1, -1 or auto (all), or a list of device indices, e.g. devices=1"
        rules.add("devices", get("devices"), what)
    elif not rules.errors:
        _on_this_machine(rules, get("accelerator", "auto"), get("devices", "auto"))
    rules.choice("precision", get("precision", "32-true"), [p for lit in get_args(_PRECISION_INPUT) for p in get_args(lit)])
    rules.number("check_val_every_n_epoch", get("check_val_every_n_epoch", 1), integer=True, ge=1, example=1)
    rules.number("num_sanity_val_steps", get("num_sanity_val_steps", 0), integer=True, ge=-1, example=0)
    rules.number("log_every_n_steps", get("log_every_n_steps", 50), integer=True, ge=1, example=50)
    for key in ("enable_model_summary", "enable_progress_bar", "enable_checkpointing"):
        rules.boolean(key, get(key, True))
    deterministic = get("deterministic", False)
    if not (isinstance(deterministic, bool) or deterministic == "warn"):
        rules.add("deterministic", deterministic, "must be true, false or warn")
    if get("default_root_dir") is not None:
        rules.path("default_root_dir", get("default_root_dir"))
    rules.check()
    return L.Trainer(**settings)
