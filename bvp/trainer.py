"""The Lightning Trainer as conf/trainer builds it: its settings' specs (``trainer_settings``, checked with the
rest of the config by ``bvp.config``) and ``lightning_trainer``, the group's ``_target_``, which checks them
against this machine (Lightning checks some only once training starts, and some never) before it builds one."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, get_args

from omegaconf import OmegaConf

from bvp.rules import Boolean, Choice, Derived, Integer, NotTaken, Number, PathName, Rules, Spec, is_integer, is_number

if TYPE_CHECKING:
    from collections.abc import Mapping

    import lightning.pytorch as L


def trainer_class() -> type[L.Trainer]:
    """``lightning.pytorch.Trainer``, imported when first asked for (importing bvp stays light)."""
    import lightning.pytorch as L

    return L.Trainer


def _devices_ok(value: Any) -> bool:
    """What Lightning takes for ``devices``: a count >= 1, -1 or 'auto' (all), or a list of device indices."""
    if is_integer(value):
        return value >= 1 or value == -1
    if isinstance(value, str):  # "auto", or device indices as Lightning parses them: "0,1"
        parts = [part.strip() for part in value.split(",") if part.strip()]
        return value == "auto" or (bool(parts) and all(part.isdigit() for part in parts))
    items = list(value) if OmegaConf.is_list(value) or isinstance(value, (list, tuple)) else None
    return bool(items) and all(is_integer(i) and i >= 0 for i in items) and len(set(items)) == len(items)


class Devices(Spec):
    """trainer.devices: a count >= 1, -1 or auto (all), or a list of device indices."""

    def refuse(self, rules: Rules, key: str, value: Any) -> None:
        if not _devices_ok(value):
            what = f"must be a count >= 1, -1 or auto (all), or a list of device indices, e.g. {key}=1"
            rules.add(key, value, what)


@dataclass(frozen=True, kw_only=True)
class Batches(Spec):
    """trainer.limit_*_batches: a number of batches (an integer >= 0) or a fraction of them (a number in [0, 1]);
    ``some``: not none of them (limit_train_batches=0 would train nothing, and record it as a run)."""

    some: bool = False

    def refuse(self, rules: Rules, key: str, value: Any) -> None:
        if is_integer(value):
            ok = value >= (1 if self.some else 0)
        else:
            ok = is_number(value) and (value > 0 if self.some else value >= 0) and value <= 1
        if not ok:
            least, fraction = ("1", "(0, 1]") if self.some else ("0", "[0, 1]")
            rules.add(
                key, value, f"must be a count of batches (an integer >= {least}) or a fraction in {fraction}, e.g. {key}=20"
            )


@cache
def trainer_settings() -> Mapping[str, Spec]:
    """The Trainer settings that conf/ sets (conf/trainer, conf/debug), and those bvp derives itself."""
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.trainer.connectors.accelerator_connector import _PRECISION_INPUT

    epochs = "pruning.prune_epoch + pruning.steps * pruning.step_epochs + pruning.finetune_epochs (epochs with pruning=none)"
    return {
        "accelerator": Choice(("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))),
        "devices": Devices(),
        "precision": Choice(tuple(p for lit in get_args(_PRECISION_INPUT) for p in get_args(lit))),
        "check_val_every_n_epoch": Integer(ge=1, example=1),
        "num_sanity_val_steps": Integer(ge=-1, example=0),
        "log_every_n_steps": Integer(ge=1, example=50),
        "limit_train_batches": Batches(some=True),
        "limit_val_batches": Batches(),
        "enable_model_summary": Boolean(),
        "enable_progress_bar": Boolean(),
        "enable_checkpointing": Boolean(),
        "deterministic": Choice((True, False, "warn")),
        "default_root_dir": PathName(null=True),
        "max_epochs": Derived(epochs),
        **dict.fromkeys(
            ("max_steps", "min_steps", "max_time", "min_epochs", "fast_dev_run"),
            NotTaken("a run's length comes from epochs and the pruning group (debug=fast: a smoke run)"),
        ),
        "gradient_clip_val": Number(ge=0, null=True, example=1.0),
        "gradient_clip_algorithm": Choice(("norm", "value"), null=True),
        "accumulate_grad_batches": Integer(ge=1, example=1),
        "callbacks": Derived("the callbacks group (callbacks.<name>) and the pruning group"),
        "logger": Derived("the logger group (logger=none: no logger)"),
    }


ONE_DEVICE = (
    "a run is one process on one device (no DDP); use devices=1, and for many GPUs a sweep with "
    "hydra/launcher=gpus (one job per GPU)"
)


def _named_devices(devices: Any, available: int) -> int:
    """How many devices a valid ``devices`` setting names, as Lightning counts them: -1 and auto are all
    ``available``; ``"0,1"`` and a list are indices; any other string is a count."""
    if devices in (-1, "-1", "auto"):
        return available
    if isinstance(devices, str):
        return len([part for part in devices.split(",") if part.strip()]) if "," in devices else int(devices)
    return devices if is_integer(devices) else len(list(devices))


def _on_this_machine(rules: Rules, accelerator: str, devices: Any) -> None:
    """The accelerator exists here, with at least ``devices`` devices (Lightning refuses either with a traceback),
    and the setting names one device: a run is one process (Lightning's DDP would start a second process into the
    same run folder, which its run lock turns away, and the first would wait for it forever)."""
    import torch
    from lightning.pytorch.accelerators import AcceleratorRegistry

    if accelerator in ("auto", "cpu"):
        gpu = accelerator == "auto" and torch.cuda.is_available()
        count = torch.cuda.device_count() if gpu else 1
        if _named_devices(devices, count) > 1:
            rules.add("devices", devices, ONE_DEVICE)
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
    elif _named_devices(devices, found[0].auto_device_count()) > 1:
        rules.add("devices", devices, ONE_DEVICE)


def lightning_trainer(**settings: Any) -> L.Trainer:
    """``lightning.pytorch.Trainer(**settings)``, the trainer group's ``_target_``, after checking the settings
    against trainer_settings() and this machine: Lightning checks some of them only once training starts, and
    some never."""
    trainer = trainer_class()
    rules = Rules.of(trainer_settings(), settings)
    named = inspect.signature(trainer).parameters
    for key in sorted(set(settings) - set(named)):
        rules.add(key, settings[key], "not a setting of lightning.pytorch.Trainer")
    if not rules.errors:
        _on_this_machine(rules, settings.get("accelerator", "auto"), settings.get("devices", "auto"))
    rules.check()
    return trainer(**settings)
