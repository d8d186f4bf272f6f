"""One training run: check the config, build everything with Hydra, fit, prune, test, export, record.

``metrics.json`` in the run folder is rewritten atomically at the start (``running``) and at the end
(``done``, or ``failed``/``interrupted`` with the error); a folder whose record says ``done`` is skipped
and one holding ``checkpoints/last.ckpt`` is resumed, so re-running a sweep finishes only what is left; either
only for the same settings (``folder_of_another_run``: a folder of other settings is refused).
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from bvp.config import ConfigError, Parts, checkpoint_problem, pruning_enabled
from bvp.console import held_back, quiet
from bvp.dashboard import final_line, log_run_summary
from bvp.evaluation.accuracy import accuracy, eval_batches
from bvp.evaluation.compression import compression_figures, count_params
from bvp.evaluation.cost import deploy_cost, exported_bytes
from bvp.evaluation.measure import snapshot
from bvp.evaluation.monitor import curves
from bvp.export import export_classifier
from bvp.identity import code_fingerprint, code_version, dense_identity, identity_difference, run_identity
from bvp.io import atomic_write_json, locked, readable_json
from bvp.names import LAST_CHECKPOINT, METRICS_FILE, RESUMED, RUN_LOCK
from bvp.pruning import DecoderStripPruning
from bvp.pruning.branch import DenseCache
from bvp.sweep import assign_job_resources, in_multirun, unlaunched_sweep

log = logging.getLogger(__name__)


def find_checkpoint(cfg: DictConfig, out_dir: Path) -> str | None:
    """ckpt_path if given (check_config made sure it is a Lightning checkpoint); else this folder's last.ckpt;
    else, with resume=true in a single run, the newest unfinished run with the same config among this folder's
    siblings (outputs/runs/<date>/<time>)."""
    if cfg.get("ckpt_path"):
        return str(cfg.ckpt_path)
    own = out_dir / LAST_CHECKPOINT
    if own.is_file():  # checked for damage once this process holds the run (train): another may be writing it
        return str(own)
    if not cfg.get("resume") or in_multirun():  # a sweep job resumes from its own folder only
        return None
    root = out_dir.parent.parent
    for record_path in sorted(root.glob(f"*/*/{METRICS_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True):
        record = readable_json(record_path) or {}
        ckpt = record_path.parent / LAST_CHECKPOINT
        same = "identity" in record and identity_difference(record["identity"], run_identity(cfg)) is None
        unfinished = record.get("status") not in ("done", RESUMED)  # resumed: another folder finished it
        if same and unfinished and ckpt.is_file() and record_path.parent != out_dir:
            return str(ckpt)
    raise ConfigError(
        f"resume=true: no unfinished run with this config and a checkpoint under {root}; "
        "pass ckpt_path=.../checkpoints/last.ckpt or drop resume=true"
    )


def build(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule, L.Trainer]:
    """Check the whole config against its schema, seed, and instantiate the datamodule, the LightningModule
    (shaped by the data) and the Trainer. Every part is built even after one refuses its settings (for what
    only it can check): all bad keys are raised together."""
    parts = Parts(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dm = parts.make("dataset")
    data = dm if dm is not None else parts.target("dataset")  # a refused dataset's class still knows the data's shape
    net_shape = {"in_shape": list(data.shape), "num_classes": data.num_classes}
    module = parts.make("model", net=net_shape, recon=data.recon)
    groups = (cfg.get("callbacks") or {}).items()
    callbacks = [parts.make(f"callbacks.{name}") for name, c in groups if c and "_target_" in c]
    max_epochs = cfg.epochs
    if pruning_enabled(cfg):
        pruner = parts.make("pruning")
        callbacks.append(pruner)
        if pruner is not None and module is not None:  # settings that depend on the network's shape
            parts.run(pruner.raise_against, module.net)
        max_epochs = pruner.max_epochs if pruner is not None else max_epochs
    logger = (parts.make("logger") if cfg.get("logger") else None) or False
    devices = parts.run(assign_job_resources, cfg)
    extra = {"devices": devices, "accelerator": "gpu"} if devices is not None else {}
    callbacks = [c for c in callbacks if c is not None]
    trainer = parts.make("trainer", max_epochs=max_epochs, callbacks=callbacks, logger=logger, **extra)
    parts.check()
    return dm, module, trainer


def pruner_of(trainer: L.Trainer) -> DecoderStripPruning | None:
    return next((cb for cb in trainer.callbacks if isinstance(cb, DecoderStripPruning)), None)


Prepared = tuple[L.LightningDataModule, L.LightningModule, L.Trainer, str | None]  # and the checkpoint to resume from


def prepare(cfg: DictConfig, out_dir: Path) -> Prepared:
    """Everything that can refuse the run, before anything is written: the config checks, the parts'
    constructors, the data (sizes that depend on it) and the checkpoint to resume from. Lightning's device lines
    wait for these checks: a refused run prints its error line alone."""
    with held_back():
        dm, module, trainer = build(cfg)
        dm.prepare_data()
        dm.setup("fit")
        return dm, module, trainer, find_checkpoint(cfg, out_dir)


def data_source(dm: L.LightningDataModule) -> str:
    """Which data a run read: dSprites says "official" or "procedural-v<N>", the torchvision sets their name."""
    return getattr(dm, "source", None) or dm.name


def start_point(cfg: DictConfig, pruner: DecoderStripPruning | None, ckpt: str | None, data_source: str) -> str | None:
    """Where training starts: the run's own checkpoint if it has one; else the cached dense model of its branch
    if one is usable; else from scratch, holding the cache's lock until the branch point (the pruner saves the
    dense model there and releases it) so that parallel branches wait instead of training it again."""
    if pruner is None or cfg.get("cache_dir") is None:  # cache_dir=null: every run trains its own dense model
        return ckpt
    # where the data came from is bookkeeping for the run's identity, but a model trained on other files (or by
    # other code) is another model
    data = {"data_dir": str(Path(cfg.data_dir).resolve()), "data_source": data_source, "code": code_fingerprint()}
    dense = dense_identity(run_identity(cfg), pruner.prune_epoch) | data
    pruner.dense_cache = cache = DenseCache(cfg.cache_dir, dense)
    if ckpt is not None:
        return ckpt
    cache.acquire()
    problem = cache.problem()
    if problem is None:
        cache.release()
        pruner.dense_source = {"path": str(cache.ckpt), "trained_here": False}
        log.info("branching from the cached dense model %s", cache.ckpt)
        return str(cache.ckpt)
    if cache.meta.exists():  # a cached checkpoint exists but cannot be used: say so
        log.warning("not using the cached dense model: %s; training the dense model again", problem)
    elif (stale := cache.older_code()) is not None:
        log.warning(
            "not using the cached dense model %s: other code trained it (bvp's training code changed since); "
            "training the dense model again",
            stale,
        )
    return None


def fit_and_measure(parts: Prepared, cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    dm, module, trainer, ckpt = parts
    full_params = count_params(module.net)
    architecture = copy.deepcopy(module.net)  # as built, unpruned: the dense shapes (a resumed run loads its weights later)
    pruner = pruner_of(trainer)
    try:  # the dense cache's lock, taken in start_point, is released whatever stops the run
        ckpt = start_point(cfg, pruner, ckpt, data_source(dm))
        if ckpt:
            log.info("resuming from %s", ckpt)
        start = time.perf_counter()
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
    finally:
        if pruner is not None and pruner.dense_cache is not None:
            pruner.dense_cache.release()
    fit_seconds = time.perf_counter() - start
    if trainer.received_sigterm:  # noted by Lightning's handler where its loop no longer looks (on_train_end)
        raise SIGTERMException
    if trainer.interrupted:
        raise KeyboardInterrupt(f"training was interrupted; {how_to_resume(out_dir)}")
    if pruner is not None and not pruner.pruned:  # started from a dense checkpoint with no epoch left to run
        pruner.branch(trainer, module)

    metrics: dict[str, Any] = {}
    final = snapshot(module.net, dm)  # the same batches as the dense and pruned measurements
    record: dict[str, Any] = {"dataset_source": data_source(dm), "input_shape": list(dm.shape)}
    record |= curves(trainer.callbacks)  # the disentanglement monitor's series (callbacks=disentanglement), if any
    if pruner is None:
        metrics |= {f"dense_{k}": v for k, v in final.items()}
    else:
        pruner.finish(module)  # permanent zeros (on_train_end did it, unless fit resumed at its last epoch) and strip
        results = dict(pruner.results)
        record["sparsity"] = results.pop("sparsity")
        record["dense_source"] = pruner.dense_source
        metrics |= results
        metrics |= {f"finetuned_{k}": final.pop(k) for k in ("val_acc", "test_acc")}
        metrics["sparsity"] = record["sparsity"]["overall"]
        metrics["accuracy_drop"] = metrics["dense_test_acc"] - metrics["finetuned_test_acc"]
        metrics["pruning_drop"] = metrics["dense_test_acc"] - metrics["pruned_test_acc"]
    metrics |= final  # latent statistics of the final model, where it still has them
    classifier = module.net.classifier()
    dense_classifier = architecture.classifier()
    metrics.update(compression_figures(full_params, classifier, count_params(dense_classifier)))
    metrics |= deploy_cost(dense_classifier, classifier, dm.shape, cuda=module.device.type == "cuda")
    metrics["params_removed"] = 1 - metrics["pruned_params"] / metrics["dense_params"]  # structured pruning: > 0
    metrics["macs_removed"] = 1 - metrics["pruned_macs"] / metrics["dense_macs"]
    x_val, _ = next(eval_batches(dm, "val"))
    artifacts = export_classifier(classifier, x_val[:2], out_dir)
    exported = torch.export.load(artifacts["exported"]).module()
    metrics["exported_test_acc"] = accuracy(exported, eval_batches(dm, "test", device="cpu"))
    metrics["pruned_export_bytes"] = os.path.getsize(artifacts["exported"])
    metrics["dense_export_bytes"] = exported_bytes(dense_classifier, dm.shape)["exported_bytes"]
    epochs = module.epoch_seconds
    record["timing"] = {
        "fit_seconds": fit_seconds,
        "epochs_timed": len(epochs),
        "seconds_per_epoch": statistics.median(epochs) if epochs else None,
        "epoch_seconds_sum": sum(epochs),  # this process's training epochs (the branch epoch with its measurements)
    }
    log_run_summary(trainer.logger, run_identity(cfg), metrics)
    return {"metrics": metrics, "artifacts": artifacts, **record}


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run (or skip, or resume) the training run that ``cfg`` describes; returns its metrics.json record."""
    quiet()  # here, not only in train.py: launcher workers (joblib, SLURM) import this module without it
    if (warning := unlaunched_sweep()) is not None:
        log.warning(warning)
    out_dir = Path(cfg.output_dir)
    path = out_dir / METRICS_FILE
    if (problem := folder_of_another_run(cfg, out_dir)) is not None:
        raise ConfigError([problem])
    if done(path):
        log.info("%s is done already: skipping (delete it to run again)", path)
        return readable_json(path) or {}
    parts = prepare(cfg, out_dir)  # a ConfigError leaves before anything is written
    with locked(out_dir / RUN_LOCK, wait=False) as mine:
        if not mine or done(path):  # two sweeps over one folder: the first to start a run runs it
            log.warning("%s: another process is running it (or has just finished it); skipped here", out_dir)
            return readable_json(path) or {}
        ckpt = parts[3]  # a ckpt_path was read by check_config already; the run's own checkpoint is read here
        if ckpt is not None and ckpt != cfg.get("ckpt_path") and (problem := checkpoint_problem(ckpt)) is not None:
            raise ConfigError([f"{ckpt}: {problem}; delete it to train this run from the start"])
        record = record_run(cfg, parts, out_dir)
        if cfg.get("resume") and ckpt is not None and ckpt != cfg.get("ckpt_path") and Path(ckpt).parent.parent != out_dir:
            mark_resumed(Path(ckpt).parent.parent, out_dir)
        return record


def mark_resumed(folder: Path, into: Path) -> None:
    """The record of a run that resume=true finished in another folder says so (status resumed), so a later
    resume=true does not train it again and bvp-report does not list it as unfinished."""
    record = readable_json(folder / METRICS_FILE)
    if record is not None and record.get("status") != "done":
        atomic_write_json(folder / METRICS_FILE, record | {"status": RESUMED, "error": f"resumed in {into}"})


def folder_of_another_run(cfg: DictConfig, out_dir: Path) -> str | None:
    """Why ``out_dir`` cannot hold this run, or None: its record says done (it would be skipped) or it has a
    checkpoint (it would be resumed), with other settings, so two configs would be recorded as one run."""
    record = readable_json(out_dir / METRICS_FILE) or {}
    if "identity" not in record or not (record.get("status") == "done" or (out_dir / LAST_CHECKPOINT).is_file()):
        return None
    if (differ := identity_difference(record["identity"], run_identity(cfg))) is None:
        return None
    if in_multirun():
        return (
            f"hydra.sweep.dir={out_dir.parent}: {out_dir.name} holds a run with other settings ({differ}); "
            "give the sweep a new folder, or delete that run's folder"
        )
    return f"hydra.run.dir={out_dir}: holds a run with other settings ({differ}); give the run a new folder, or delete that one"


def interruption(err: BaseException) -> tuple[str, int] | None:
    """Why ``err`` stopped a run from outside, and the shell's exit status for it (None: the run failed). Lightning
    answers Ctrl-C by calling sys.exit(1) inside its except KeyboardInterrupt, and SIGTERM (a scheduler's
    preemption, ``timeout``) with SIGTERMException at the next batch."""
    if isinstance(err, SIGTERMException):
        return "SIGTERM: stopped by a signal", 143
    if isinstance(err, KeyboardInterrupt) or (type(err) is SystemExit and isinstance(err.__context__, KeyboardInterrupt)):
        return "KeyboardInterrupt: stopped by the user", 130
    return None


@contextmanager
def sigterm_stops() -> Iterator[None]:
    """SIGTERM raises SIGTERMException wherever Lightning is not handling it (fit's setup and teardown, the
    measurements and the export after it), so the record says interrupted instead of running; while Lightning's
    handler is installed (it calls this one too) it stops training at the next batch, and this one leaves it be."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        if signal.getsignal(signal.SIGTERM) is stop:
            raise SIGTERMException

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def how_to_resume(out_dir: Path) -> str:
    """A sweep resumes in its folder; a single run gets a new one each time and looks back with resume=true."""
    if in_multirun():
        return f"re-run the sweep with hydra.sweep.dir={out_dir.parent} to finish what is left"
    return "add resume=true to the same command to resume it (or ckpt_path=<that folder>/checkpoints/last.ckpt)"


def done(path: Path) -> bool:
    return (readable_json(path) or {}).get("status") == "done"


def record_run(cfg: DictConfig, parts: Prepared, out_dir: Path) -> dict[str, Any]:
    """Fit and measure, with metrics.json saying ``running`` from the start and ``done``, ``failed`` or
    ``interrupted`` at the end, whatever ends it; returns the record."""
    path = out_dir / METRICS_FILE
    config = OmegaConf.to_container(cfg, resolve=True)
    record: dict[str, Any] = {
        "status": "running",
        "error": None,
        "identity": run_identity(cfg),
        "code": code_version(),
        "config": config,
        "process": {"pid": os.getpid(), "started": time.time()},
    }
    try:
        atomic_write_json(path, record)
        with sigterm_stops():
            record.update(fit_and_measure(parts, cfg, out_dir))
        record["status"] = "done"
    except BaseException as err:
        stop = interruption(err)
        record["status"] = "failed" if stop is None else "interrupted"
        record["error"] = f"{type(err).__name__}: {err}" if stop is None else stop[0]
        if stop is not None:
            print(f"interrupted: {out_dir}; {how_to_resume(out_dir)}", file=sys.stderr, flush=True)
            raise SystemExit(stop[1]) from None  # the shell's status for that signal; a sweep stops here too
        raise
    finally:
        record["process"]["ended"] = time.time()
        atomic_write_json(path, record)
    if not in_multirun():  # a sweep prints one progress line per run instead
        print(final_line(out_dir), flush=True)
    return record
