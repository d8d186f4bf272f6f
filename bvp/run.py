"""One training run: check the config, build everything with Hydra, fit, prune, test, export, record.

``metrics.json`` in the run folder is rewritten atomically at the start (``running``) and at the end
(``done``, or ``failed``/``interrupted`` with the error); a folder whose record says ``done`` is skipped
and one holding ``checkpoints/last.ckpt`` is resumed, so re-running a sweep finishes only what is left.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from bvp.config import ConfigError, check_config, pruning_enabled
from bvp.evaluation.compression import compression_figures, count_params
from bvp.export import export_classifier
from bvp.identity import run_identity
from bvp.io import atomic_write_json, read_json
from bvp.pruning import DecoderStripPruning
from bvp.sweep import assign_job_resources, in_multirun

log = logging.getLogger(__name__)

HPARAMS = ("latent_dim", "lr", "batch_size", "epochs", "finetune_epochs")  # beside run_name()


def run_name(config: dict[str, Any]) -> dict[str, Any]:
    """dataset, model, beta, seed of a resolved config: how the report groups and labels runs."""
    dataset = config["dataset"]["_target_"].rsplit(".", 1)[-1].removesuffix("DataModule").lower()
    model = {"BetaVAEClassif": "beta_vae", "CNNClassif": "cnn"}.get(config["model"]["net"]["_target_"].rsplit(".", 1)[-1])
    return {"dataset": dataset, "model": model, "beta": config.get("beta"), "seed": config.get("seed")}


def find_checkpoint(cfg: DictConfig, out_dir: Path) -> str | None:
    """ckpt_path if given; else this folder's last.ckpt; else, with resume=true in a single run, the
    newest unfinished run with the same config among this folder's siblings (outputs/runs/<date>/<time>)."""
    if cfg.get("ckpt_path"):
        if not Path(cfg.ckpt_path).is_file():
            raise ConfigError(f"ckpt_path={cfg.ckpt_path!r}: no such file; give the path of a last.ckpt")
        return str(cfg.ckpt_path)
    own = out_dir / "checkpoints" / "last.ckpt"
    if own.is_file():
        return str(own)
    if not cfg.get("resume") or in_multirun():  # a sweep job resumes from its own folder only
        return None
    root = out_dir.parent.parent
    for record_path in sorted(root.glob("*/*/metrics.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        record = read_json(record_path) or {}
        ckpt = record_path.parent / "checkpoints" / "last.ckpt"
        same = record.get("identity") == run_identity(cfg)
        if same and record.get("status") != "done" and ckpt.is_file() and record_path.parent != out_dir:
            return str(ckpt)
    raise ConfigError(
        f"resume=true: no unfinished run with this config and a checkpoint under {root}; "
        "pass ckpt_path=.../checkpoints/last.ckpt or drop resume=true"
    )


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Instantiate the datamodule, the LightningModule (shaped by the data) and the Trainer."""
    dm = instantiate(cfg.dataset)
    net_shape = {"in_shape": list(dm.shape), "num_classes": dm.num_classes}
    module = instantiate(cfg.model, net=net_shape, recon=dm.recon)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c and "_target_" in c]
    max_epochs = cfg.epochs
    if pruning_enabled(cfg):
        pruner = instantiate(cfg.pruning)
        callbacks.append(pruner)
        max_epochs = pruner.max_epochs
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    devices = assign_job_resources(cfg)
    extra = {"devices": devices, "accelerator": "gpu"} if devices is not None else {}
    trainer = instantiate(cfg.trainer, max_epochs=max_epochs, callbacks=callbacks, logger=logger, **extra)
    return dm, module, trainer


def pruner_of(trainer: L.Trainer) -> DecoderStripPruning | None:
    return next((cb for cb in trainer.callbacks if isinstance(cb, DecoderStripPruning)), None)


def prepare(cfg: DictConfig, out_dir: Path) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer, str | None]:
    """Everything that can refuse the run, before anything is written: the config checks, the parts'
    constructors, the data (sizes that depend on it) and the checkpoint to resume from."""
    check_config(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm, module, trainer = build(cfg)
    dm.prepare_data()
    dm.setup("fit")
    return dm, module, trainer, find_checkpoint(cfg, out_dir)


def fit_and_measure(
    parts: tuple[L.LightningDataModule, L.LightningModule, L.Trainer, str | None], out_dir: Path, config: dict[str, Any]
) -> dict[str, Any]:
    dm, module, trainer, ckpt = parts
    full_params = count_params(module.net)
    if ckpt:
        log.info("resuming from %s", ckpt)
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
    fit_seconds = time.perf_counter() - start
    if trainer.interrupted:
        raise KeyboardInterrupt("training was interrupted; re-run the same command to resume")
    pruner = pruner_of(trainer)
    if pruner is not None:  # on_train_end did this, unless fit resumed at its last epoch and skipped it
        pruner.make_pruning_permanent(module)
    val = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    test = trainer.test(module, datamodule=dm, verbose=False)[0]

    pruned = dict(pruner.results) if pruner is not None else {}
    sparsity = pruned.pop("sparsity", {})
    classifier = module.net.classifier()
    metrics: dict[str, Any] = {**val, **{k: float(v) for k, v in test.items()}, **pruned}
    if pruned:
        metrics["finetuned_test_acc"] = metrics["test/acc"]
        metrics["accuracy_drop"] = metrics["dense_test_acc"] - metrics["finetuned_test_acc"]
    metrics.update(compression_figures(full_params, classifier, count_params(classifier)))
    x_test, _ = dm.transform(next(iter(dm.test_dataloader())), False)
    artifacts = export_classifier(classifier, x_test[:2], out_dir)
    exported = torch.export.load(artifacts["exported"]).module()
    on_cpu = lambda b, _: tuple(t.cpu() for t in dm.transform(b, False))  # noqa: E731
    metrics["exported_test_acc"] = module.accuracy(dm.test_dataloader(), on_cpu, model=exported)
    epochs = module.epoch_seconds
    timing = {
        "fit_seconds": fit_seconds,
        "epochs_timed": len(epochs),
        "seconds_per_epoch": statistics.median(epochs) if epochs else None,
    }
    if trainer.logger is not None:
        hp = {**run_name(config), **{k: config.get(k) for k in HPARAMS}}
        keys = ("test/acc", "dense_test_acc", "pruned_test_acc", "val/active_units", "compression_ratio")
        trainer.logger.log_hyperparams(hp, {f"hp/{k}": metrics[k] for k in keys if k in metrics})
    return {"metrics": metrics, "sparsity": sparsity, "artifacts": artifacts, "timing": timing}


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run (or skip, or resume) the training run that ``cfg`` describes; returns its metrics.json record."""
    out_dir = Path(cfg.output_dir)
    path = out_dir / "metrics.json"
    previous = read_json(path)
    if previous and previous.get("status") == "done":
        log.info("%s is done already: skipping (delete it to run again)", path)
        return previous
    parts = prepare(cfg, out_dir)  # a ConfigError leaves before anything is written
    config = OmegaConf.to_container(cfg, resolve=True)
    record: dict[str, Any] = {
        "status": "running",
        "error": None,
        "run": run_name(config),
        "identity": run_identity(cfg),
        "config": config,
        "process": {"pid": os.getpid(), "started": time.time()},
    }
    try:
        atomic_write_json(path, record)
        record.update(fit_and_measure(parts, out_dir, config))
        record["status"] = "done"
    except BaseException as err:
        record["status"] = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        record["error"] = f"{type(err).__name__}: {err}"
        raise
    finally:
        record["process"]["ended"] = time.time()
        atomic_write_json(path, record)
    return record
