"""Configuration checks: the composed config against its schema first, then what needs more than the config.

Every key's type and range is declared once, as a ``bvp.rules.Spec``: a class lists its settings' specs in
``SETTINGS`` (``library_settings`` holds bvp's for the library classes that conf/ configures and for the
trainer), and ``TOP_LEVEL`` those of the top-level keys of conf/train.yaml that no part receives.
``check_config`` checks the composed config against them before any constructor is called: ``Schema`` walks
it, finds each key's spec (a copied key such as ``${batch_size}`` is checked, and named, where it is written)
and refuses a setting its target does not take, a value of the wrong type or range, and an argument that bvp
derives itself (``Derived``). What needs more than the config (the data's size, the network's shape, this
machine's devices, the file system) is checked where it is known, still before anything is written: ``Parts``
builds the run's parts and raises every refusal at once.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

from hydra import compose, initialize_config_dir
from hydra._internal.utils import _locate  # hydra.utils.get_object, without its ERROR log line
from hydra.errors import CompactHydraException, InstantiationException, MissingConfigException, OverrideParseException
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, ValidationError

from bvp.identity import REFERENCE, identity_difference, run_identity
from bvp.io import folder_problem, readable_json
from bvp.names import METRICS_FILE
from bvp.pruning import check_pruning_args
from bvp.resolvers import LAUNCH
from bvp.rules import (  # ConfigError and Rules: importable from bvp.config too, as before
    OPTIMIZER_SETTINGS,
    SEED,
    Boolean,
    Choice,
    ConfigError,
    Integer,
    PathName,
    Rules,
    Spec,
    Text,
    shown,
)
from bvp.trainer import lightning_trainer, trainer_class, trainer_settings

Settings = Mapping[str, Spec]

# the top-level keys of conf/train.yaml that no part receives (the others, such as beta, take the spec of the
# part that copies them: model.beta is ${beta})
TOP_LEVEL: Settings = {
    "epochs": Integer(ge=1, example=30),
    "finetune_epochs": Integer(ge=0, example=2),
    "seed": SEED,
    "resume": Boolean(),
    "ckpt_path": PathName(null=True),
    "cache_dir": PathName(null=True),
    "output_dir": PathName(),
    **LAUNCH,
}


def _one_line(text: str) -> str:
    return " ".join(text.split())


NOT_A_KEY = "is not a key of the config (--cfg job lists them; a new one: +"  # Hydra's advice, in one line
UNKNOWN_KEY = re.compile(r"Could not override '([^']+)'\. To append to your config use \+(\S+)$")


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
        if unknown := UNKNOWN_KEY.match(_one_line(str(err))):  # a run's command line gets a sharper line: below
            return [f"{unknown[2]}: {unknown[1]} {NOT_A_KEY}{unknown[2]})"]
        return [_one_line(str(err))]
    if isinstance(err, (InterpolationResolutionError, MissingMandatoryValue, ValidationError)):
        what = (str(err).splitlines() or [type(err).__name__])[0]  # OmegaConf appends full_key/object_type lines
        return [f"{err.full_key}: {what}" if err.full_key else what]
    return None


def command_line_errors(config_dir: Path, config_name: str, overrides: list[str]) -> list[str]:
    """Every bad setting of a single run's command line, where Hydra stops at its first: the whole command line is
    composed again without each override Hydra refuses (so an override that a later group option or experiment
    makes valid stays valid, as in Hydra), then what composes is checked (``check_config``), so one attempt shows
    every bad override. A key not in the config gets the closest key there is, or ``+key=value`` where the schema
    takes it (a Trainer flag). Empty where Hydra's refusal names no override of the command line."""
    remaining, refused, errors = list(overrides), [], []
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        for _ in overrides:
            try:
                compose(config_name, overrides=remaining)
                break
            except Exception as err:
                lines = config_error_lines(err)
                culprit = _culprit(err, remaining)
                if lines is None or culprit is None:  # not one override's fault: Hydra's own error says it
                    return []
                remaining.remove(culprit)
                refused.append((culprit, UNKNOWN_KEY.match(_one_line(str(err))), lines))
        for culprit, unknown, lines in refused:
            lines = [_unknown_key_line(config_name, remaining, unknown[1], culprit)] if unknown else lines
            errors += [line for line in lines if line not in errors]
        errors += [line for line in _check_lines(config_name, remaining) or [] if line not in errors]
    return errors


def sweep_key_lines(config_dir: Path, config_name: str, overrides: list[str], lines: list[str]) -> list[str]:
    """A sweep's command-line lines with each unknown key's line made as a single run's is (the closest key, or
    +key=value where the schema takes it) instead of Hydra's advice to add every such key with ``+``; the keys are
    looked up in the config the sweep's plain overrides (group options, single values) compose."""
    plain = [o for o in overrides if not o.startswith("-") and "," not in o and "(" not in o]
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        out = []
        for line in lines:
            override, _, rest = line.partition(": ")
            key = override.split("=", 1)[0]
            if not rest.startswith(f"{key} {NOT_A_KEY}"):
                out.append(line)
                continue
            accepted = [o for o in plain if o != override and _check_lines(config_name, [o]) is not None]
            accepted = accepted if _check_lines(config_name, accepted) is not None else []
            out.append(_unknown_key_line(config_name, accepted, key, override))
    return out


def _override_key(override: str) -> str:
    """The key an override sets: ``+trainer.max_time=1`` -> ``trainer.max_time``, ``~beta`` -> ``beta``."""
    return override.lstrip("+~").split("=", 1)[0]


def _culprit(err: BaseException, overrides: list[str]) -> str | None:
    """The override of ``overrides`` that Hydra's composing error ``err`` refuses, or None if it names none (the
    last such override: Hydra applies them in order)."""
    named = set(re.findall(r"'([^']+)'", str(err)))  # "Could not override 'key'", "An item is already at 'key'"
    if isinstance(err, OverrideParseException):
        named.add(err.override)
    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        named.add(err.missing_cfg_file.rpartition("/")[0])  # the group of an unknown option
    if getattr(err, "full_key", None):
        named.add(err.full_key)
    return next((o for o in reversed(overrides) if o in named or _override_key(o) in named), None)


def _check_lines(config_name: str, overrides: list[str]) -> list[str] | None:
    """``check_config``'s lines for the config the overrides compose (inside an initialized Hydra); None where they
    do not compose. The run folder is Hydra's to make, checked when the run starts (``OutputFolders``): a writable
    stand-in here, unless the overrides set ``output_dir``."""
    try:
        cfg = compose(config_name, overrides=overrides)
    except Exception:  # e.g. +key=value where key is there
        return None
    if OmegaConf.is_interpolation(cfg, "output_dir"):  # ${hydra:runtime.output_dir}: no Hydra run here
        cfg.output_dir = tempfile.gettempdir()
    try:
        check_config(cfg)
    except ConfigError as err:
        return config_error_lines(err) or []
    return []


def _unknown_key_line(config_name: str, accepted: list[str], key: str, override: str) -> str:
    """The line for ``key=value`` where ``key`` is not in the config (``accepted``: the overrides that compose): the
    closest key there is; else ``+key=value`` where the schema takes the key (a Trainer flag conf/trainer does not
    list; a bad value of it is refused on the next try); else a pointer to the keys there are."""
    close = difflib.get_close_matches(key, _keys(compose(config_name, overrides=accepted)), n=1)
    if close:
        return f"{override}: {key} is not a key of the config; did you mean {close[0]}?"
    plus = _check_lines(config_name, [*accepted, f"+{override}"])
    if plus is not None and not any(line.startswith(f"{key}=") and "not a setting of" in line for line in plus):
        return f"{override}: {key} is not in the config yet; write +{override} to add it"
    return f"{override}: {key} is not a key of the config (python train.py --cfg job shows them)"


def _keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Every key of ``cfg``, dotted (``pruning.amount``)."""
    keys = []
    for key, value in cfg.items_ex(resolve=False):
        keys.append(f"{prefix}{key}")
        if isinstance(value, DictConfig):
            keys += _keys(value, f"{prefix}{key}.")
    return keys


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


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError, every bad key at once, for the values that do not resolve; else for every key that
    breaks its declared spec (``Schema``); else for what needs several keys or the file system: the pruning
    group against ``epochs``, the folders a run writes into and the checkpoint it resumes from."""
    errors = unresolved(cfg)
    if errors:  # every check below reads values: they would stop at the first of these
        raise ConfigError(errors)
    errors = Schema(cfg).check()
    if errors:  # no check below, and no constructor, sees a value of the wrong type
        raise ConfigError(errors)
    for key in ("output_dir", "cache_dir"):
        if cfg.get(key) is not None and (problem := folder_problem(cfg[key])) is not None:
            errors.append(f"{key}={cfg[key]!r}: {problem}")
    if cfg.get("ckpt_path") is not None:
        problem = checkpoint_problem(cfg.ckpt_path)
        if problem is None and (other := other_run(cfg)) is not None:
            errors.append(f"ckpt_path={cfg.ckpt_path!r}: {other}")
        elif problem is not None:
            errors.append(f"ckpt_path={cfg.ckpt_path!r}: {problem}; give the path of a last.ckpt")
    if pruning_enabled(cfg) and OmegaConf.select(cfg, "model.cls_weight") == 0:
        errors.append(
            "model.cls_weight=0: a plain beta-VAE trains no classifier, and the fine-tuning after pruning "
            "(cls_weight * CE) would train nothing; give model.cls_weight > 0, or pruning=none"
        )
    if pruning_enabled(cfg):
        pruning = ConfigError(check_pruning_args(OmegaConf.to_container(cfg.pruning, resolve=True), cfg.epochs))
        errors += pruning.prefixed("pruning").renamed(lambda key: user_key(cfg, key)).errors
    if errors:
        raise ConfigError(errors)


def checkpoint_problem(path: str) -> str | None:
    """Why ``path`` is not a Lightning checkpoint to resume from, or None if it is: read as ``fit`` reads it."""
    from lightning.pytorch.core.saving import pl_load

    if os.path.isdir(path):
        return "is a folder, not a checkpoint file"
    if not os.path.isfile(path):
        return "no such file"
    try:
        checkpoint = pl_load(path, map_location="cpu")
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for other files
        why = (str(err).splitlines() or [""])[0].split(". ")[0]
        return f"not a Lightning checkpoint ({type(err).__name__}: {why})"
    if not isinstance(checkpoint, dict) or not {"state_dict", "pytorch-lightning_version"} <= checkpoint.keys():
        return "not a Lightning checkpoint (it holds no state_dict or pytorch-lightning_version)"
    return None


def other_run(cfg: DictConfig) -> str | None:
    """Why ``ckpt_path`` is not a checkpoint of the run that ``cfg`` describes, or None if it is: the record in its
    run folder (``<run>/checkpoints/last.ckpt`` beside ``<run>/metrics.json``) must have this config's identity.
    Resuming another run's checkpoint would record that run's training under these settings."""
    record = readable_json(Path(cfg.ckpt_path).parent.parent / METRICS_FILE)
    if record is None or "identity" not in record:
        return (
            f"no {METRICS_FILE} with the run's identity beside its checkpoints/ folder, so bvp cannot tell which run "
            "wrote it; give the checkpoints/last.ckpt of a run folder bvp wrote"
        )
    differ = identity_difference(record["identity"], run_identity(cfg))
    return None if differ is None else f"another run's checkpoint ({differ}); give that run's settings, or drop ckpt_path"


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


def _is_part(node: Any) -> bool:
    """A node that Hydra instantiates: it names a ``_target_``."""
    return OmegaConf.is_dict(node) and not node._is_interpolation() and "_target_" in node


def _parts(node: DictConfig, prefix: str = "") -> Iterator[str]:
    """The dotted keys of the outermost parts under ``node`` (``dataset``, ``callbacks.model_checkpoint``)."""
    for key, _ in node.items_ex(resolve=False):
        child = node._get_node(key)
        if _is_part(child):
            yield f"{prefix}{key}"
        elif OmegaConf.is_dict(child) and not child._is_interpolation():
            yield from _parts(child, f"{prefix}{key}.")


def user_key(cfg: DictConfig, key: str) -> str:
    """``key`` as the user writes it: the key it copies (``${batch_size}``), followed to the end, else itself."""
    seen = set()
    while key not in seen and (node := _node(cfg, key)) is not None:
        seen.add(key)
        match = REFERENCE.match(raw) if isinstance(raw := node._value(), str) else None
        if match is None or _node(cfg, match.group(1)) is None:
            break
        key = match.group(1)
    return key


def _first_per_key(lines: Iterable[str]) -> list[str]:
    """One line per key, the first one given for it (a copied key is checked where each copy is used)."""
    first: dict[str, str] = {}
    for line in lines:
        first.setdefault(line.split("=", 1)[0], line)
    return list(first.values())


def _settings(target: Any) -> tuple[list[str], bool]:
    """The keyword settings ``target`` takes (lightning_trainer: the Trainer's), and whether it takes any."""
    if target is lightning_trainer:
        target = trainer_class()
    params = inspect.signature(target).parameters.values()
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def settings_of(target: Any) -> Settings:
    """The specs of ``target``'s settings: its own ``SETTINGS``, else bvp's for it or a base class of it."""
    own = getattr(target, "SETTINGS", None)
    if isinstance(own, Mapping):
        return own
    for declared, settings in library_settings().items():
        if target is declared or (inspect.isclass(target) and inspect.isclass(declared) and issubclass(target, declared)):
            return settings
    return {}


@cache
def library_settings() -> dict[Any, Settings]:
    """bvp's specs for the settings that conf/ gives the targets it does not define (and for the trainer)."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from torch.optim import Optimizer

    logger: Settings = {"save_dir": PathName(), "name": Text(null=True), "version": Text(null=True, integers=True)}
    checkpoint: Settings = {
        "dirpath": PathName(null=True),
        "filename": Text(null=True),
        "save_top_k": Integer(ge=-1, example=1),
        "save_last": Choice((True, False, "link"), null=True),
        "save_on_train_epoch_end": Boolean(null=True),
        "enable_version_counter": Boolean(),
    }
    return {
        lightning_trainer: trainer_settings(),
        Optimizer: OPTIMIZER_SETTINGS,
        ModelCheckpoint: checkpoint,
        TensorBoardLogger: {**logger, "default_hp_metric": Boolean()},
        CSVLogger: logger,
    }


@cache
def declared() -> frozenset[str]:
    """The top-level settings conf/train.yaml writes (beta, batch_size, ...): a part copies each, unless a command
    line overrides the copy (dataset.batch_size=64); empty where bvp is installed without its conf/."""
    path = Path(__file__).resolve().parents[1] / "conf" / "train.yaml"
    if not path.is_file():
        return frozenset()
    own = OmegaConf.load(path)
    return frozenset(key for key in _leaves(own) if not key.startswith(("defaults", "hydra.")))


class Schema:
    """The declared spec of each key of a composed config (``specs``, by the key as written), found by walking
    its parts (the nodes with a ``_target_``), and what cannot be checked against one (``errors``): a setting
    its target does not take, a target that cannot be imported."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.specs: dict[str, Spec] = {key: spec for key, spec in TOP_LEVEL.items() if _node(cfg, key) is not None}
        self.errors: list[str] = []
        for key in _parts(cfg):
            self._walk(key, _node(cfg, key))
        self.errors += self._unread()

    def _unread(self) -> list[str]:
        """A key added outside every part (not in conf/train.yaml) that no part copies and bvp does not read itself
        (``+betta=3``: Hydra's hint for a misspelled key), refused so that it never reaches the run's identity as a
        setting that did nothing."""
        copied = {m.group(1) for key in _leaves(self.cfg) if (m := REFERENCE.match(str(_node(self.cfg, key)._value())))}
        inside = tuple(f"{part}." for part in _parts(self.cfg))
        known = sorted(k for k in {*TOP_LEVEL, *copied, *declared()} if "_target_" not in k and k != "hydra")
        errors = []
        for key in _leaves(self.cfg):
            if key.startswith(("hydra.", *inside)) or key in known:
                continue
            if key.startswith("callbacks.") and key.count(".") == 1 and _node(self.cfg, key)._value() is None:
                continue  # callbacks.<name>=null: that callback switched off
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"the settings outside the parts are {', '.join(known)}"
            errors.append(f"{key}={shown(_node(self.cfg, key)._value())}: not a setting of bvp (nothing reads it); {hint}")
        return errors

    def check(self) -> list[str]:
        """Every declared key's value against its spec, named as the user writes it, one line per key."""
        rules, values = Rules(), OmegaConf.to_container(self.cfg, resolve=True)  # check_config: it resolves
        for key, spec in self.specs.items():
            value: Any = values
            for part in key.split("."):
                value = value[part]
            spec.check(rules, user_key(self.cfg, key), value)
        return _first_per_key(self.errors + rules.errors)

    def _walk(self, key: str, node: DictConfig) -> None:
        target = node._target_
        try:
            built = _locate(target)
            named, takes_any = _settings(built)
        except Exception as err:  # Hydra raises ImportError, ValueError, ... for a bad target
            why = " ".join(str(err).split())
            self.errors.append(f"{user_key(self.cfg, key + '._target_')}={target!r}: cannot be imported ({why})")
            return
        settings = settings_of(built)
        for child, raw in node.items_ex(resolve=False):
            if not isinstance(child, str) or (child.startswith("_") and child.endswith("_")):
                continue
            if child not in named and not takes_any:
                self.errors.append(f"{key}.{child}={shown(raw)}: not a setting of {target}; it takes {', '.join(named)}")
            elif _is_part(sub := node._get_node(child)):
                self._walk(f"{key}.{child}", sub)
            elif child in settings:
                self.specs[f"{key}.{child}"] = settings[child]


class Parts:
    """Builds a run's parts one after another once the config keeps its schema (``check_config``), and keeps
    going past a part that refuses its settings for what only it can check (dSprites' sizes together, the
    optimizer's other settings, the pruning amount against the network, this machine's devices), so that
    ``check()`` raises every refusal at once."""

    def __init__(self, cfg: DictConfig) -> None:
        check_config(cfg)  # no part is built from a value of the wrong type
        self.cfg = cfg
        self.errors: list[str] = []

    def note(self, err: ConfigError, prefix: str | None = None) -> None:
        named = err.prefixed(prefix) if prefix else err
        self.errors += named.renamed(lambda key: user_key(self.cfg, key)).errors

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
        """What cfg.<key>._target_ names (a class); check_config made sure it can be imported."""
        return _locate(OmegaConf.select(self.cfg, key)._target_)

    def check(self) -> None:
        """Raise every noted error, one line per key (the first one noted for it)."""
        if self.errors:
            raise ConfigError(_first_per_key(self.errors))

    def _make(self, key: str, node: DictConfig, kwargs: dict[str, Any]) -> Any:
        for child, sub in node.items_ex(resolve=False):
            if isinstance(child, str) and _is_part(sub := node._get_node(child)) and not sub.get("_partial_", False):
                built = self._make(f"{key}.{child}", sub, dict(kwargs.pop(child, {})))
                if built is None:  # refused: the part that holds it cannot be built
                    return None
                kwargs[child] = built
        try:
            return instantiate(node, **kwargs)
        except InstantiationException as err:  # Hydra wraps what the constructor raised
            if not isinstance(err.__cause__, ConfigError):
                raise
            self.note(err.__cause__, key)
        return None


def refuse(lines: Iterable[str]) -> NoReturn:
    """Print each line as 'error: <line>' on stderr and exit with status 2: the run is refused for its settings."""
    print("\n".join(f"error: {line}" for line in lines), file=sys.stderr, flush=True)
    sys.exit(2)


class OutputFolders(Callback):
    """Refuses a run folder (hydra.run.dir) or sweep folder (hydra.sweep.dir) that cannot be created or written,
    before Hydra makes it. Hydra turns a callback's exception into a warning, so this one exits itself. For a
    single run it notes the outermost folder Hydra is about to make (``made``), so that a refused run removes
    the empty ``outputs/runs/<date>/`` too."""

    made: Path | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check("hydra.run.dir", config.hydra.run.dir)
        folder = Path(config.hydra.run.dir).absolute()
        missing = [f for f in (folder, *folder.parents) if not f.exists()]
        OutputFolders.made = missing[-1] if missing else None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check("hydra.sweep.dir", config.hydra.sweep.dir)
        OutputFolders.made = None  # a sweep's folder holds its sweep.json: never removed

    @staticmethod
    def _check(key: str, folder: str) -> None:
        if (problem := folder_problem(folder)) is not None:
            refuse([f"{key}={folder!r}: {problem}"])
