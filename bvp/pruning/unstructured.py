"""Unstructured pruning (``pruning.structure=weights``): zero single weights of the scoped layers by L1 magnitude
(or at random), ranked across the whole scope or layer by layer, with Lightning's ModelPruning and
``torch.nn.utils.prune`` (the callback is the ModelPruning; its masks are checkpointed with it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from bvp.models import LatentClassifier
from bvp.pruning.engine import Engine
from bvp.pruning.schedules import step_count
from bvp.pruning.scope import sparsity_report
from bvp.torchutil import derived_seed


class UnstructuredEngine(Engine):
    """Zero the smallest (or random) scoped weights until ``target`` of them are zero."""

    def prune(self, net: LatentClassifier, target: float, step: int, dense: Mapping[str, Any], dm: Any) -> dict[str, float]:
        pruner, params = self.pruner, self.pruner._parameters_to_prune
        for module, name in params:  # the masked weight as of now (the attribute is refreshed by forward only,
            if hasattr(module, f"{name}_orig"):  # in the old memory format)
                setattr(module, name, getattr(module, f"{name}_orig") * getattr(module, f"{name}_mask"))
        total = sum(getattr(m, n).numel() for m, n in params)
        zeros = sum(int((getattr(m, n) == 0).sum()) for m, n in params)
        count = step_count(target, total, total - zeros)  # global: an exact count, no rounding drift
        # layer-wise: the same fraction of what is left in every layer (torch rounds per layer)
        amount = count if pruner._use_global_unstructured else count / max(total - zeros, 1)
        with torch.random.fork_rng(devices=[]):  # random_unstructured: the same mask whichever way the run began
            torch.manual_seed(derived_seed(pruner.seed, step))
            pruner.apply_pruning(amount)
        return sparsity_report(net, params)
