"""The interface every pruning method implements, so that ``DecoderStripPruning`` (the branch protocol: strip,
measure, prune, fine-tune) picks one by ``pruning.structure``. The callback is also Lightning's ModelPruning,
whose masks (the unstructured engine's) it checkpoints and makes permanent; an engine without masks leaves none.

A new method is one module with an ``Engine`` subclass, one entry in ``bvp.pruning.callback.ENGINES`` and one
config file under ``conf/pruning/`` (as Torch-Pruning splits a pruner from its importance).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from bvp.models import LatentClassifier

if TYPE_CHECKING:
    from bvp.pruning.callback import DecoderStripPruning


class Engine(ABC):
    """One way to bring the deployed classifier of a network to a target sparsity. Built once per run from the
    pruning callback, whose settings (``pruning.*``, checked there) it reads."""

    # pruning.<key>: the value to leave it at, for the settings this engine does not read (refused otherwise)
    UNUSED: ClassVar[dict[str, Any]] = {}

    def __init__(self, pruner: DecoderStripPruning) -> None:
        self.pruner = pruner

    def check(self, net: LatentClassifier, amount: float) -> list[str]:
        """Errors ('pruning.key=value: what to write instead') for settings that do not fit ``net``."""
        return []

    @abstractmethod
    def prune(self, net: LatentClassifier, target: float, step: int, dense: Mapping[str, Any], dm: Any) -> dict[str, float]:
        """Prune ``net`` in place to ``target`` (step ``step`` of a gradual schedule, 0 for one shot); ``dense``
        holds the dense network's counts (``dense_channels``, ``dense_classifier_params``). Returns the achieved
        sparsity: ``overall`` and any per-part figures."""
