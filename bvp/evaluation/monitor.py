"""Watch a network disentangle while it trains: MIG (and optionally DCI) of the validation split's mean codes
against its ground-truth factors, and the validation accuracy of the deployed path, every N training epochs.

``callbacks=disentanglement`` (conf/callbacks/disentanglement.yaml) adds ``DisentanglementMonitor`` to the
default callbacks; ``experiment=dsprites_pilot`` turns it on. Each measurement is one point of ``history``:
the epochs and optimizer steps done, the training samples seen, the stage (``dense`` until the branch point,
``finetune`` after it), the validation accuracy, MIG and its per-factor gaps (and DCI with ``metrics=[mig,dci]``),
logged to the logger as ``disentanglement/<field>`` and kept in the callback's checkpoint state, so a resumed run
keeps its curve. ``curves(trainer.callbacks)`` is what a run adds to metrics.json (``bvp.names.CURVE``).

Nothing here draws random numbers or touches the training state: the codes are the posterior means in eval
mode, under no_grad, and the mode is restored afterwards, so a run trains the same with the monitor or without.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import lightning.pytorch as L
import numpy as np
import torch
from hydra._internal.utils import _locate  # hydra.utils.get_class, without its ERROR log line
from lightning.pytorch.utilities import rank_zero_warn

from bvp.data.dsprites import FACTORS
from bvp.evaluation.accuracy import eval_batches
from bvp.evaluation.disentanglement import dci, mutual_information, top_two_gap
from bvp.names import CURVE, CURVE_TAG
from bvp.rules import Integer, Rules, Spec, Subset, Text
from bvp.torchutil import eval_mode

METRICS = ("mig", "dci")  # callbacks.disentanglement.metrics: MIG (fast) and DCI (one boosted-tree model per factor)


@torch.no_grad()
def codes_and_accuracy(net: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[np.ndarray, float]:
    """(N, D) float64 mean codes of the batches and the deployed path's accuracy on them (the head reads mu)."""
    with eval_mode(net):
        codes, correct, total = [], 0, 0
        for x, y in batches:
            out = net(x)
            codes.append(out.mu.double().cpu())
            correct += int((out.logits.argmax(1) == y).sum())
            total += len(y)
    return torch.cat(codes).numpy(), correct / max(total, 1)


def disentanglement_point(
    codes: np.ndarray, factors: np.ndarray, names: Sequence[str], metrics: Sequence[str], seed: int = 0
) -> dict[str, Any]:
    """The ``metrics`` of (N, D) ``codes`` against the (N, K) ``factors`` named ``names``: MIG with each factor's
    normalised gap (``mig_per_factor``; their mean is ``bvp.evaluation.disentanglement.mig``), and DCI: its trees
    learn from the first half of the points and its informativeness is their accuracy on the second half."""
    out: dict[str, Any] = {}
    if "mig" in metrics and codes.shape[1] < 2:  # a gap needs a runner-up dimension
        out |= {"mig": None, "mig_per_factor": None}
    elif "mig" in metrics:
        mi, h = mutual_information(codes, factors)
        gaps = top_two_gap(mi) / h
        out["mig"] = float(np.mean(gaps))
        out["mig_per_factor"] = {name: float(g) for name, g in zip(names, gaps, strict=True)}
    if "dci" in metrics:
        half = len(codes) // 2
        scores = dci(codes[:half], factors[:half], codes[half:], factors[half:], seed=seed)
        out |= {f"dci_{k}": getattr(scores, k) for k in ("disentanglement", "completeness", "informativeness")}
    return out


class DisentanglementMonitor(L.Callback):
    """Every ``every_n_epochs`` training epochs (and after the last one), and once before training starts:
    MIG (and DCI if in ``metrics``; after the branch point ``finetune_metrics``, null: the same) of the whole
    validation split's mean codes against ``factors`` (null: all of the dataset's), and the validation accuracy;
    one point of ``history`` each, logged as disentanglement/<field>.

    ``dataset`` is the DataModule's class (the config copies ``${dataset._target_}``): a dataset without
    ground-truth factors (MNIST, CIFAR-10) is refused here, before anything is written, as is a factor it lacks."""

    SETTINGS: ClassVar[dict[str, Spec]] = {  # callbacks.disentanglement.<key>
        "every_n_epochs": Integer(ge=1, example=5),
        "metrics": Subset(METRICS),
        "finetune_metrics": Subset(METRICS, null=True),
        "factors": Subset(FACTORS, null=True),  # the factor names of the one dataset that has factors (dSprites)
        "dataset": Text(),
    }

    def __init__(
        self,
        dataset: str,
        every_n_epochs: int = 1,
        metrics: Sequence[str] = ("mig",),
        factors: Sequence[str] | None = None,
        finetune_metrics: Sequence[str] | None = None,
    ) -> None:
        rules = Rules.of(self.SETTINGS, locals())
        if not rules.errors:
            self.factor_names = check_factors(rules, dataset, list(metrics), factors)
        rules.check()
        self.every_n_epochs, self.metrics = every_n_epochs, list(metrics)
        self.finetune_metrics = list(finetune_metrics) if finetune_metrics is not None else self.metrics
        self.factors = list(factors) if factors is not None else list(self.factor_names)
        self.columns = [self.factor_names.index(name) for name in self.factors]
        self.samples = 0  # training samples seen (all ranks), kept in the checkpoint
        self.history: list[dict[str, Any]] = []

    # -- state: a resumed run keeps its curve and its count of samples --------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.samples, self.history = state_dict["samples"], list(state_dict["history"])

    # -- hooks ----------------------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0 and not self.history:  # the untrained network: the curve's first point
            point = self.measure(trainer, pl_module)
            for logger in trainer.loggers:  # LightningModule.log is not allowed in on_train_start
                logger.log_metrics(self.scalars(point), step=0)
        elif self.samples == 0 and trainer.global_step > 0:  # resumed from a checkpoint saved without this monitor
            batches = trainer.global_step * trainer.accumulate_grad_batches  # optimizer steps -> batches (full ones)
            self.samples = batches * trainer.datamodule.batch_size * trainer.world_size

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.samples += len(batch[1]) * trainer.world_size

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Before the pruning callback's hook (it is added after this one): at the branch epoch, the dense model."""
        epoch = trainer.current_epoch + 1
        if epoch % self.every_n_epochs == 0 or epoch == trainer.max_epochs:
            pl_module.log_dict(self.scalars(self.measure(trainer, pl_module)))

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """One point of the curve, appended to ``history``."""
        start = time.perf_counter()
        dm = trainer.datamodule
        codes, val_acc = codes_and_accuracy(pl_module.net, eval_batches(dm, "val"))
        factors = dm.factors["val"].numpy()[:, self.columns]
        finetuning = getattr(pl_module, "finetuning", False)
        point: dict[str, Any] = {
            "epoch": trainer.current_epoch + (1 if trainer.global_step else 0),
            "step": trainer.global_step,
            "samples": self.samples,
            "stage": "finetune" if finetuning else "dense",
            "val_acc": val_acc,
        }
        metrics = self.finetune_metrics if finetuning else self.metrics
        try:
            point |= disentanglement_point(codes, factors, self.factors, metrics, seed=getattr(pl_module, "seed", 0))
        except ValueError as err:  # a factor constant over a tiny validation split: no MIG for it
            rank_zero_warn(f"disentanglement monitor: no MIG at step {trainer.global_step} ({err})")
            point |= {"mig": None, "mig_per_factor": None}
        point["seconds"] = time.perf_counter() - start
        self.history.append(point)
        return point

    @staticmethod
    def scalars(point: dict[str, Any]) -> dict[str, float]:
        """A point's numbers as logger tags: disentanglement/<field>, disentanglement/mig/<factor>."""
        out = {k: v for k, v in point.items() if isinstance(v, (int, float)) and k not in ("epoch", "step")}
        out |= {f"mig/{name}": v for name, v in (point.get("mig_per_factor") or {}).items()}
        return {f"{CURVE_TAG}/{k}": float(v) for k, v in out.items()}


def check_factors(rules: Rules, dataset: str, metrics: list[str], factors: Sequence[str] | None) -> tuple[str, ...]:
    """The factor names of ``dataset`` (a DataModule's class path); refuses metrics on a dataset without factors,
    in ``rules`` (an unknown factor name is refused by ``SETTINGS``: dSprites' are the only factors there are)."""
    try:
        names = tuple(getattr(_locate(dataset), "factor_names", ()))
    except Exception as err:  # Hydra raises ImportError, ValueError, ... for a bad path
        rules.add("dataset", dataset, f"cannot be imported ({' '.join(str(err).split())}); leave it at ${{dataset._target_}}")
        return ()
    if not names:
        data = dataset.rsplit(".", 2)[-2] if dataset.startswith("bvp.data.") else dataset
        rules.add(
            "metrics",
            metrics,
            f"dataset={data} has no ground-truth factors to score; use dataset=dsprites, "
            "or leave the disentanglement monitor out (callbacks=default)",
        )
        return ()
    return names


def curves(callbacks: Iterable[L.Callback]) -> dict[str, Any]:
    """What a run adds to metrics.json: ``{CURVE: history}`` of its disentanglement monitor, or nothing."""
    monitor = next((cb for cb in callbacks if isinstance(cb, DisentanglementMonitor)), None)
    return {} if monitor is None else {CURVE: list(monitor.history)}
