"""One measurement of a model at a stage of the run (dense, pruned, fine-tuned): the same batches for all."""

from __future__ import annotations

from typing import Any

from torch import nn

from bvp.evaluation.accuracy import accuracy, eval_batches
from bvp.evaluation.latent import kl_statistics, latent_codes


def snapshot(net: nn.Module, dm: Any, latent: bool = True) -> dict[str, Any]:
    """Val and test accuracy of the deployed path (the head reads the latent mean) and, if ``latent``, the
    latent statistics of the test split; in eval mode, which is restored afterwards."""
    was_training = net.training
    net.eval()
    out: dict[str, Any] = {
        f"{split}_acc": accuracy(lambda x: net(x).logits, eval_batches(dm, split)) for split in ("val", "test")
    }
    if latent:
        mu, logvar, _ = latent_codes(net, eval_batches(dm, "test"))
        if logvar is not None:
            out |= kl_statistics(mu, logvar)
    net.train(was_training)
    return out
