"""Strip the decoder and prune once, at the end of epoch ``prune_epoch``, with Lightning's ModelPruning.

Reuses ModelPruning's machinery (pruning_fn, global unstructured pruning, make_pruning_permanent,
mask*orig checkpoints) and fixes its traps for this study: no lottery-ticket reset, prune exactly
once, an explicit scope (no biases/norms unless asked), sparsity logged to the logger, and masks
kept in the callback state so a run resumed during fine-tuning keeps its zeros.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import ModelPruning
from torch.nn.utils import prune

from bvp.module import ClassifModule
from bvp.pruning.scope import SCOPES, scope_parameters, sparsity_report

FINETUNE_LOSSES = ("ce_kl", "ce")


class DecoderStripPruning(ModelPruning):
    """At the end of epoch ``prune_epoch`` (1-based): measure the dense model, strip the decoder,
    prune ``amount`` of the scoped weights by global L1 magnitude, measure again, then fine-tune."""

    def __init__(
        self,
        prune_epoch: int = 30,
        finetune_epochs: int = 2,
        amount: float = 0.5,
        scope: tuple[str, ...] | list[str] = SCOPES,
        prune_bias: bool = False,
        finetune_loss: str = "ce_kl",
        pruning_fn: str = "l1_unstructured",
    ) -> None:
        super().__init__(
            pruning_fn=pruning_fn,
            amount=amount,
            use_global_unstructured=True,
            apply_pruning=self.is_prune_epoch,
            make_pruning_permanent=True,
            use_lottery_ticket_hypothesis=False,
            parameter_names=["weight", "bias"] if prune_bias else ["weight"],
            verbose=0,
        )
        self.prune_epoch, self.finetune_epochs = prune_epoch, finetune_epochs
        self.scope, self.finetune_loss = list(scope), finetune_loss
        self.results: dict[str, Any] = {}

    @property
    def max_epochs(self) -> int:
        return self.prune_epoch + self.finetune_epochs

    def is_prune_epoch(self, epoch: int) -> bool:
        return epoch == self.prune_epoch - 1 and "sparsity" not in self.results

    def setup(self, trainer: L.Trainer, pl_module: ClassifModule, stage: str) -> None:
        self._parameters_to_prune = scope_parameters(pl_module.net, self.scope, self._parameter_names)
        super().setup(trainer, pl_module, stage)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: ClassifModule) -> None:
        if not self.is_prune_epoch(pl_module.current_epoch):
            return
        dm = trainer.datamodule
        self._measure(pl_module, dm, "dense")
        pl_module.enter_finetune(keep_kl=self.finetune_loss == "ce_kl")
        # global_unstructured flattens with .view(-1), which channels_last conv weights do not allow
        pl_module.net.to(memory_format=torch.contiguous_format)
        super().on_train_epoch_end(trainer, pl_module)  # ModelPruning applies the pruning here
        if pl_module.channels_last:
            pl_module.net.to(memory_format=torch.channels_last)
        self._rebuild_optimizers(trainer)
        self._measure(pl_module, dm, "pruned")
        self.results["sparsity"] = sparsity_report(pl_module.net, self._parameters_to_prune)
        if trainer.logger is not None:
            flat = {f"prune/{k}": v for k, v in self.results.items() if k != "sparsity"}
            flat |= {f"sparsity/{k}": v for k, v in self.results["sparsity"].items()}
            trainer.logger.log_metrics(flat, step=trainer.global_step)

    def _measure(self, pl_module: ClassifModule, dm: Any, tag: str) -> None:
        for split in ("val", "test"):
            loader = getattr(dm, f"{split}_dataloader")()
            self.results[f"{tag}_{split}_acc"] = pl_module.accuracy(loader, dm.transform)

    @staticmethod
    def _rebuild_optimizers(trainer: L.Trainer) -> None:
        """Re-run configure_optimizers over the surviving parameters (the decoder's are gone) and carry
        over each surviving parameter's optimizer state (a pruned ``weight_orig`` is the same tensor)."""
        old = trainer.optimizers
        trainer.strategy.setup_optimizers(trainer)
        for before, after in zip(old, trainer.optimizers, strict=True):
            for group in after.param_groups:
                for p in group["params"]:
                    if p in before.state:
                        after.state[p] = before.state[p]

    # -- checkpoint state: results and masks (ModelPruning saves mask * orig and drops the masks) --
    def state_dict(self) -> dict[str, Any]:
        masks = None
        if "sparsity" in self.results and all(hasattr(m, f"{n}_mask") for m, n in self._parameters_to_prune):
            masks = [getattr(m, f"{n}_mask").cpu() for m, n in self._parameters_to_prune]
        return {"results": self.results, "masks": masks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.results = dict(state_dict["results"])
        if state_dict["masks"] is not None:  # resumed after the prune epoch: rebuild the masks
            for (module, name), mask in zip(self._parameters_to_prune, state_dict["masks"], strict=True):
                prune.custom_from_mask(module, name, mask.to(getattr(module, name).device))


def check_pruning_args(pruning: dict[str, Any], epochs: int) -> list[str]:
    """Errors (as 'key=value: what to write instead') in a pruning config, before any training."""
    errors = []
    amount = pruning.get("amount", 0.5)
    if not isinstance(amount, (int, float)) or isinstance(amount, bool) or not 0 <= amount < 1:
        errors.append(f"pruning.amount={amount!r}: must be a number in [0, 1), e.g. pruning.amount=0.5")
    pe = pruning.get("prune_epoch", epochs)
    if not isinstance(pe, int) or not 1 <= pe <= epochs:
        errors.append(f"pruning.prune_epoch={pe!r}: must be an integer in [1, epochs={epochs}]")
    fe = pruning.get("finetune_epochs", 0)
    if not isinstance(fe, int) or fe < 0:
        errors.append(f"pruning.finetune_epochs={fe!r}: must be an integer >= 0")
    scope = list(pruning.get("scope", SCOPES))
    if not scope or any(s not in SCOPES for s in scope):
        errors.append(f"pruning.scope={scope!r}: must be a non-empty subset of {list(SCOPES)}")
    loss = pruning.get("finetune_loss", "ce_kl")
    if loss not in FINETUNE_LOSSES:
        errors.append(f"pruning.finetune_loss={loss!r}: must be one of {list(FINETUNE_LOSSES)}")
    return errors
