"""Branch from the dense model and prune once, at the end of epoch ``prune_epoch``, with Lightning's ModelPruning.

Reuses ModelPruning's machinery (pruning_fn, global unstructured pruning, make_pruning_permanent, mask*orig
checkpoints) and fixes its traps for this study: no lottery-ticket reset, prune exactly once, an explicit scope
(the deployed classifier, no biases unless asked), sparsity logged to the logger, and masks kept in the callback
state so a run resumed during fine-tuning keeps its zeros.

The branch step: save the dense model for other branches (``DenseCache``), measure it, switch to the fine-tune
objective (``bvp.pruning.objectives``), prune, measure again. A run started from a cached dense checkpoint does
the same step as its training starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import ModelPruning
from lightning.pytorch.utilities import rank_zero_warn
from torch.nn.utils import prune

from bvp.evaluation.measure import snapshot
from bvp.pruning.branch import DenseCache
from bvp.pruning.objectives import OBJECTIVES
from bvp.pruning.scope import SCOPES, scope_parameters, sparsity_report

if TYPE_CHECKING:
    from bvp.module import ClassifModule

PRUNING_FNS = ("l1_unstructured", "random_unstructured")  # ModelPruning's unstructured methods usable globally


class DecoderStripPruning(ModelPruning):
    """At the end of epoch ``prune_epoch`` (1-based): measure the dense model, switch to the fine-tune objective
    (strip what it does not keep), prune ``amount`` of the scoped weights by global L1 magnitude, measure again."""

    def __init__(
        self,
        prune_epoch: int = 30,
        finetune_epochs: int = 2,
        amount: float = 0.5,
        scope: tuple[str, ...] | list[str] = SCOPES,
        prune_bias: bool = False,
        finetune_loss: str = "ce",
        pruning_fn: str = "l1_unstructured",
    ) -> None:
        super().__init__(
            pruning_fn=pruning_fn,
            amount=amount,
            use_global_unstructured=True,
            apply_pruning=False,  # the branch step below prunes; ModelPruning's per-epoch hook never does
            make_pruning_permanent=True,
            use_lottery_ticket_hypothesis=False,
            parameter_names=["weight", "bias"] if prune_bias else ["weight"],
            verbose=0,
        )
        self.prune_epoch, self.finetune_epochs = prune_epoch, finetune_epochs
        self.scope, self.objective = list(scope), OBJECTIVES[finetune_loss]
        self.results: dict[str, Any] = {}
        self.dense_cache: DenseCache | None = None  # set by bvp.run: where the dense model is shared
        self.dense_source: dict[str, Any] | None = None  # where this run's dense weights came from

    @property
    def max_epochs(self) -> int:
        return self.prune_epoch + self.finetune_epochs

    @property
    def pruned(self) -> bool:
        return "sparsity" in self.results

    def setup(self, trainer: L.Trainer, pl_module: ClassifModule, stage: str) -> None:
        self._parameters_to_prune = scope_parameters(pl_module.net, self.scope, self._parameter_names)
        super().setup(trainer, pl_module, stage)
        if self.objective.name == "ce_kl" and pl_module.net.variational and pl_module.beta >= pl_module.cls_weight:
            rank_zero_warn(
                f"pruning.finetune_loss=ce_kl with beta={pl_module.beta:g} >= model.cls_weight={pl_module.cls_weight:g}: "
                "a collapsed posterior is the optimum of CE + beta*KL, so fine-tuning will destroy the classifier "
                "(README, 'Fine-tune objective'); pruning.finetune_loss=ce measures the pruned classifier instead"
            )

    def on_train_start(self, trainer: L.Trainer, pl_module: ClassifModule) -> None:
        if pl_module.current_epoch == self.prune_epoch and not self.pruned:  # started from a dense checkpoint
            self.branch(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: ClassifModule) -> None:
        if pl_module.current_epoch == self.prune_epoch - 1 and not self.pruned:
            self.branch(trainer, pl_module)

    def branch(self, trainer: L.Trainer, pl_module: ClassifModule) -> None:
        """The prune step: share the dense model, measure it, enter the fine-tune objective, prune, measure."""
        self._share_dense(trainer)
        dm = trainer.datamodule
        self.results |= {f"dense_{k}": v for k, v in snapshot(pl_module.net, dm).items()}
        pl_module.enter_finetune(self.objective)
        # global_unstructured flattens with .view(-1), which channels_last conv weights do not allow
        pl_module.net.to(memory_format=torch.contiguous_format)
        self.apply_pruning(self.amount)
        if pl_module.channels_last:
            pl_module.net.to(memory_format=torch.channels_last)
        self._rebuild_optimizers(trainer)
        self.results |= {f"pruned_{k}": v for k, v in snapshot(pl_module.net, dm, latent=False).items()}
        self.results["sparsity"] = sparsity_report(pl_module.net, self._parameters_to_prune)
        if trainer.logger is not None:
            flat = {f"prune/{k}": v for k, v in self.results.items() if isinstance(v, (int, float))}
            flat |= {f"sparsity/{k}": v for k, v in self.results["sparsity"].items()}
            trainer.logger.log_metrics(flat, step=trainer.global_step)

    def _share_dense(self, trainer: L.Trainer) -> None:
        """Save the dense model for the other branches unless a usable one is cached (or another run is saving it)."""
        cache = self.dense_cache
        if cache is not None and cache.acquire(wait=False):
            try:
                if cache.problem() is not None:
                    cache.save(trainer, trained_by=str(trainer.default_root_dir))
            finally:
                cache.release()
        if self.dense_source is None:  # set after the save: a branch loading that checkpoint did not train it
            self.dense_source = {"path": str(cache.ckpt) if cache else None, "trained_here": True}

    def finish(self, pl_module: ClassifModule) -> None:
        """After fine-tuning: make the pruning permanent and keep only the deployed classifier."""
        self.make_pruning_permanent(pl_module)
        pl_module.strip_to_classifier()

    @staticmethod
    def _rebuild_optimizers(trainer: L.Trainer) -> None:
        """Re-run configure_optimizers over the surviving parameters (the stripped ones are gone) and carry
        over each surviving parameter's optimizer state (a pruned ``weight_orig`` is the same tensor)."""
        old = trainer.optimizers
        trainer.strategy.setup_optimizers(trainer)
        for before, after in zip(old, trainer.optimizers, strict=True):
            for group in after.param_groups:
                for p in group["params"]:
                    if p in before.state:
                        after.state[p] = before.state[p]

    # -- checkpoint state: results, masks (ModelPruning saves mask * orig and drops the masks), dense source --
    def state_dict(self) -> dict[str, Any]:
        masks = None
        if self.pruned and all(hasattr(m, f"{n}_mask") for m, n in self._parameters_to_prune):
            masks = [getattr(m, f"{n}_mask").cpu() for m, n in self._parameters_to_prune]
        return {"results": self.results, "masks": masks, "dense_source": self.dense_source}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.results = dict(state_dict["results"])
        self.dense_source = state_dict.get("dense_source") or self.dense_source
        if state_dict["masks"] is not None:  # resumed after the prune epoch: rebuild the masks
            for (module, name), mask in zip(self._parameters_to_prune, state_dict["masks"], strict=True):
                prune.custom_from_mask(module, name, mask.to(getattr(module, name).device))


def check_pruning_args(pruning: dict[str, Any], epochs: int) -> list[str]:
    """Errors (as 'key=value: what to write instead') in a pruning config, before any training."""
    errors = []
    amount = pruning.get("amount", 0.5)
    if not isinstance(amount, (int, float)) or isinstance(amount, bool) or not 0 <= amount < 1:
        errors.append(f"pruning.amount={amount!r}: must be a number in [0, 1), e.g. pruning.amount=0.9")
    pe = pruning.get("prune_epoch", epochs)
    if not isinstance(pe, int) or isinstance(pe, bool) or not 1 <= pe <= epochs:
        errors.append(f"pruning.prune_epoch={pe!r}: must be an integer in [1, epochs={epochs}]")
    fe = pruning.get("finetune_epochs", 0)
    if not isinstance(fe, int) or isinstance(fe, bool) or fe < 0:
        errors.append(f"pruning.finetune_epochs={fe!r}: must be an integer >= 0")
    scope = pruning.get("scope", SCOPES)
    if isinstance(scope, str) or not scope or any(s not in SCOPES for s in scope):
        errors.append(f"pruning.scope={scope!r}: must be a non-empty subset of {list(SCOPES)}, e.g. pruning.scope=[encoder,head]")
    loss = pruning.get("finetune_loss", "ce")
    if loss not in OBJECTIVES:
        errors.append(f"pruning.finetune_loss={loss!r}: must be one of {list(OBJECTIVES)}")
    if not isinstance(pruning.get("prune_bias", False), bool):
        errors.append(f"pruning.prune_bias={pruning.get('prune_bias')!r}: must be true or false")
    pruning_fn = pruning.get("pruning_fn", "l1_unstructured")
    if pruning_fn not in PRUNING_FNS:
        errors.append(f"pruning.pruning_fn={pruning_fn!r}: must be one of {list(PRUNING_FNS)}")
    return errors
