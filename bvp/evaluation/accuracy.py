"""Accuracy: one function over one set of batches, for the dense, pruned, fine-tuned and exported models."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

Batch = tuple[Tensor, Tensor]


def eval_batches(dm: Any, split: str, device: torch.device | str | None = None) -> Iterator[Batch]:
    """The whole ``split`` ("val"/"test") as normalised, un-augmented (x, y) batches: every accuracy and
    latent statistic bvp records reads these (not trainer.test, whose limit_test_batches may cut it)."""
    for batch in getattr(dm, f"{split}_dataloader")():
        x, y = dm.transform(batch, augment=False)
        yield (x, y) if device is None else (x.to(device), y.to(device))


@torch.no_grad()
def accuracy(logits_of: Callable[[Tensor], Tensor], batches: Iterable[Batch]) -> float:
    """Top-1 accuracy of ``logits_of`` over the batches; counts stay on the device until the end."""
    correct = total = 0
    for x, y in batches:
        correct += (logits_of(x).argmax(1) == y).sum()
        total += len(y)
    return float(correct) / max(total, 1)
