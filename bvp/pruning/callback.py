"""Branch from the dense model at the end of epoch ``prune_epoch`` and prune: once, or gradually.

``structure=weights`` zeroes weights by global L1 magnitude with Lightning's ModelPruning; ``structure=channels``
removes whole channels and neurons (``bvp.pruning.structured``, on Torch-Pruning), so the network gets smaller.
``steps`` > 0 spreads the pruning over a window along Zhu & Gupta's cubic schedule (``bvp.pruning.schedules``).

Reuses ModelPruning's machinery (pruning_fn, global unstructured pruning, make_pruning_permanent, mask*orig
checkpoints) and fixes its traps for this study: no lottery-ticket reset, prune exactly once, an explicit scope
(the deployed classifier, no biases unless asked), sparsity logged to the logger, and masks kept in the callback
state so a run resumed during fine-tuning keeps its zeros.

The branch step: save the dense model for other branches (``DenseCache``), measure it, switch to the fine-tune
objective (``bvp.objectives``), prune, measure again. A run started from a cached dense checkpoint does
the same step as its training starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import ModelPruning
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.nn.utils import prune

from bvp.evaluation.accuracy import eval_batches
from bvp.evaluation.compression import count_params
from bvp.evaluation.measure import snapshot
from bvp.losses import collapse_is_optimal
from bvp.objectives import OBJECTIVES
from bvp.pruning.branch import DenseCache
from bvp.pruning.engine import Engine
from bvp.pruning.schedules import CubicSchedule
from bvp.pruning.scope import SCOPES, scope_parameters
from bvp.pruning.structured import NORMS, ChannelEngine, channel_counts, inactive_units, remove_latent_units
from bvp.pruning.unstructured import UnstructuredEngine
from bvp.rules import Boolean, Choice, ConfigError, Integer, Number, Rules, Spec, Subset

if TYPE_CHECKING:
    from bvp.module import ClassifModule

PRUNING_FNS = ("l1_unstructured", "random_unstructured")  # ModelPruning's unstructured methods usable globally
# pruning.structure -> its engine: zero single weights (unstructured) | remove whole channels/neurons
ENGINES: dict[str, type[Engine]] = {"weights": UnstructuredEngine, "channels": ChannelEngine}
LATENT_UNITS = ("keep", "inactive")
OPTIMIZER_STATES = ("fresh", "carry")  # the optimizer at the branch point: new Adam moments | the dense run's


class DecoderStripPruning(ModelPruning):
    """At the end of epoch ``prune_epoch`` (1-based): measure the dense model, switch to the fine-tune objective
    (strip what it does not keep), prune ``amount`` of the scoped weights by global L1 magnitude, measure again."""

    SETTINGS: ClassVar[dict[str, Spec]] = {  # pruning.<key>; check_pruning_args adds the rules between them
        "prune_epoch": Integer(ge=1, example=30),
        "finetune_epochs": Integer(ge=0, example=2),
        "amount": Number(ge=0, lt=1, example=0.9),
        "scope": Subset(SCOPES),
        "prune_bias": Boolean(),
        "finetune_loss": Choice(tuple(OBJECTIVES)),
        "pruning_fn": Choice(PRUNING_FNS),
        "use_global_unstructured": Boolean(),
        "optimizer_state": Choice(OPTIMIZER_STATES),
        "structure": Choice(tuple(ENGINES)),
        "norm": Choice(tuple(NORMS)),
        "latent_units": Choice(LATENT_UNITS),
        "steps": Integer(ge=0, example=5),
        "step_epochs": Integer(ge=1, example=2),
    }

    def __init__(
        self,
        prune_epoch: int = 30,
        finetune_epochs: int = 2,
        amount: float = 0.5,
        scope: tuple[str, ...] | list[str] = SCOPES,
        prune_bias: bool = False,
        finetune_loss: str = "ce",
        pruning_fn: str = "l1_unstructured",
        structure: str = "weights",
        norm: str = "l1",
        latent_units: str = "keep",
        steps: int = 0,
        step_epochs: int = 1,
        use_global_unstructured: bool = True,
        optimizer_state: str = "fresh",
    ) -> None:
        """``amount``: the final fraction of the scoped weights (``structure=weights``) or of each layer's
        channels/neurons (``structure=channels``). ``steps`` > 0: reach it in that many steps, ``step_epochs``
        apart, after the branch point (gradual pruning); 0: at once. ``latent_units=inactive``: also remove the
        latent dimensions whose KL on the dense model is below the active-unit threshold.
        ``use_global_unstructured``: rank weights across the whole scope (true) or prune each layer by the same
        fraction (false: layer-wise, a ShrinkBench baseline). ``optimizer_state``: ``fresh`` starts fine-tuning
        with new optimizer state, as every model and amount alike; ``carry`` keeps the dense run's moments."""
        errors = check_pruning_args(locals())  # before ModelPruning, which refuses some of them with a traceback
        if errors:
            raise ConfigError(errors)
        super().__init__(
            pruning_fn=pruning_fn,
            amount=amount,
            use_global_unstructured=use_global_unstructured,
            apply_pruning=False,  # the branch step below prunes; ModelPruning's per-epoch hook never does
            make_pruning_permanent=True,
            use_lottery_ticket_hypothesis=False,
            parameter_names=["weight", "bias"] if prune_bias else ["weight"],
            verbose=0,
        )
        self.prune_epoch, self.finetune_epochs = prune_epoch, finetune_epochs
        self.scope, self.objective = list(scope), OBJECTIVES[finetune_loss]
        self.structure, self.norm, self.latent_units = structure, norm, latent_units
        self.engine = ENGINES[structure](self)
        self.seed = 0  # the run's seed (setup): random_unstructured draws its mask from it
        self.optimizer_state = optimizer_state
        self.schedule = CubicSchedule(amount, prune_epoch, steps, step_epochs) if steps else None
        self.results: dict[str, Any] = {}
        self.dense_cache: DenseCache | None = None  # set by bvp.run: where the dense model is shared
        self.dense_source: dict[str, Any] | None = None  # where this run's dense weights came from

    @property
    def max_epochs(self) -> int:
        """The branch point, the gradual window after it, then fine-tuning."""
        window = self.schedule.end_epoch - self.prune_epoch if self.schedule else 0
        return self.prune_epoch + window + self.finetune_epochs

    def raise_against(self, net: nn.Module) -> None:
        """Refuse (ConfigError: 'key=value: what to write instead') settings that do not fit the network."""
        errors = self.engine.check(net, self.amount)
        if self.latent_units == "inactive" and not net.variational:
            errors.append(
                "pruning.latent_units='inactive': a deterministic latent (model=cnn) has no KL per dimension to find "
                "inactive units; write pruning.latent_units=keep"
            )
        if errors:
            raise ConfigError(errors)

    @property
    def pruned(self) -> bool:
        return "sparsity" in self.results

    def setup(self, trainer: L.Trainer, pl_module: ClassifModule, stage: str) -> None:
        self._parameters_to_prune = scope_parameters(pl_module.net, self.scope, self._parameter_names)
        self.seed = pl_module.seed
        super().setup(trainer, pl_module, stage)
        objective, variational = self.objective.name, pl_module.net.variational
        if objective == "ce_kl" and variational and collapse_is_optimal(pl_module.beta, pl_module.cls_weight):
            rank_zero_warn(
                f"pruning.finetune_loss=ce_kl with beta={pl_module.beta:g} >= model.cls_weight={pl_module.cls_weight:g}: "
                "a collapsed posterior is the optimum of CE + beta*KL, so fine-tuning will destroy the classifier "
                "(README, 'Fine-tune objective'); pruning.finetune_loss=ce measures the pruned classifier instead"
            )

    def on_train_start(self, trainer: L.Trainer, pl_module: ClassifModule) -> None:
        if pl_module.current_epoch == self.prune_epoch and not self.pruned:  # started from a dense checkpoint
            self.branch(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: ClassifModule) -> None:
        epoch = pl_module.current_epoch + 1  # 1-based, as prune_epoch: the step happens at the end of that epoch
        if epoch == self.prune_epoch and not self.pruned:
            self.branch(trainer, pl_module)
        elif self.schedule is not None and self.pruned and (self.schedule.step_at(epoch) or 0) > self.results["step"]:
            self.prune_step(trainer, pl_module, self.schedule.step_at(epoch))

    def branch(self, trainer: L.Trainer, pl_module: ClassifModule) -> None:
        """The branch point: share the dense model, measure it, enter the fine-tune objective, remove inactive
        latent units if asked, and prune (all of ``amount``, or the schedule's step 0)."""
        self._share_dense(trainer)
        dm, net = trainer.datamodule, pl_module.net
        self.results |= {f"dense_{k}": v for k, v in snapshot(net, dm).items()}
        self.results["dense_channels"] = channel_counts(net)
        self.results["dense_classifier_params"] = count_params(net.classifier())
        inactive = inactive_units(net, eval_batches(dm, "val")) if self.latent_units == "inactive" else None
        pl_module.enter_finetune(self.objective)
        if inactive is not None:
            self._remove_units(pl_module, dm, *inactive)
        self.results["schedule"] = []
        self.prune_step(trainer, pl_module, 0)

    def prune_step(self, trainer: L.Trainer, pl_module: ClassifModule, k: int) -> None:
        """Bring the deployed classifier to step ``k``'s sparsity (one-shot: k = 0 is all of ``amount``), rebuild
        the optimizer over what is left, log and record the achieved sparsity; after the last step, measure."""
        net, dm = pl_module.net, trainer.datamodule
        target = self.schedule.sparsity(k) if self.schedule else self.amount
        # global_unstructured flattens with .view(-1), and Torch-Pruning slices: both want contiguous weights
        net.to(memory_format=torch.contiguous_format)
        sparsity = self.engine.prune(net, target, k, self.results, dm)
        if pl_module.channels_last:
            net.to(memory_format=torch.channels_last)
        # fresh state at the branch point (k = 0) if asked; a gradual step always keeps the fine-tuning's state
        self._rebuild_optimizers(trainer, carry=self.optimizer_state == "carry" or k > 0)
        self.results["step"], self.results["sparsity"] = k, sparsity
        epoch = self.prune_epoch + k * (self.schedule.step_epochs if self.schedule else 0)  # the step's (1-based) epoch
        self.results["schedule"].append({"epoch": epoch, "target": target, "overall": sparsity["overall"]})
        if k == (self.schedule.steps if self.schedule else 0):  # fully pruned, before the fine-tuning epochs
            self.results |= {f"pruned_{key}": v for key, v in snapshot(net, dm, latent=False).items()}
        if trainer.logger is not None:
            flat = {f"prune/{key}": v for key, v in self.results.items() if isinstance(v, (int, float))}
            flat |= {f"sparsity/{key}": v for key, v in sparsity.items()} | {"sparsity/target": target}
            trainer.logger.log_metrics(flat, step=trainer.global_step)

    def _remove_units(self, pl_module: ClassifModule, dm: Any, inactive: list[int], mean_code: Tensor) -> None:
        """Remove the inactive latent dimensions, their (nearly) constant codes folded into the next biases."""
        net = pl_module.net
        keep = [d for d in range(len(mean_code)) if d not in inactive]
        removed = remove_latent_units(net, keep, mean_code)
        pl_module.latent_resized()
        self.results |= {"latent_units_removed": len(removed), "latent_removed_dims": removed}
        self.results |= {f"units_removed_{k}": v for k, v in snapshot(net, dm, latent=False).items()}

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
    def _rebuild_optimizers(trainer: L.Trainer, carry: bool) -> None:
        """Re-run configure_optimizers over the surviving parameters (the stripped ones are gone); if ``carry``,
        keep each surviving parameter's optimizer state (a pruned ``weight_orig`` is the same tensor)."""
        old = trainer.optimizers
        trainer.strategy.setup_optimizers(trainer)
        if not carry:
            return
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


def check_pruning_args(pruning: Mapping[str, Any], epochs: int | None = None) -> list[str]:
    """Errors (as 'key=value: what to write instead', keys relative to the pruning group) in pruning settings,
    before any training: their declared types and ranges (SETTINGS), then the rules between them, and against
    the dense epochs where they are known (``epochs``: bvp.config passes them; the constructor cannot)."""
    rules = Rules.of(DecoderStripPruning.SETTINGS, pruning)
    if rules.errors:  # the rules below compare values of the right type
        return rules.errors
    pe = pruning.get("prune_epoch", epochs)
    if epochs is not None:
        replace(DecoderStripPruning.SETTINGS["prune_epoch"], le=epochs, example=epochs).check(rules, "prune_epoch", pe)
    for key, default in ENGINES[pruning.get("structure", "weights")].UNUSED.items():
        if key in pruning and (list(pruning[key]) if key == "scope" else pruning[key]) != default:
            rules.add(key, pruning[key], f"applies to pruning.structure=weights only; leave it at {default}")
    steps, step_epochs = pruning.get("steps", 0), pruning.get("step_epochs", 1)
    if epochs is not None and not rules.errors and steps and pe + steps * step_epochs > epochs:
        window, latest = steps * step_epochs, epochs - steps * step_epochs
        end = f"the gradual window (prune_epoch + steps * step_epochs = {pe + window}) ends after epochs={epochs}"
        if latest >= 1:
            rules.add("prune_epoch", pe, f"{end}; write prune_epoch={latest} or less")
        else:
            rules.add("steps", steps, f"{end}; write pruning.steps * pruning.step_epochs <= {epochs - 1}")
    return rules.errors
