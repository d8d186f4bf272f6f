"""Small torch helpers that several layers share: the seed of the k-th draw of a run, a module in eval mode
for a measurement (its mode restored even if the measurement raises), and a device sync for timings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

SEED_STRIDE = 1_000_003  # a prime larger than any epoch or step count: (seed, k) pairs never share a seed


def derived_seed(seed: int, k: int) -> int:
    """The seed of draw ``k`` (an epoch, a pruning step) of the run seeded ``seed``: a resumed run draws the same."""
    return seed * SEED_STRIDE + k


@contextmanager
def eval_mode(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` in eval mode inside the block, its previous mode restored after it (also on an exception)."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so a wall-clock timing measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
