"""One measurement of a model at a stage of the run (dense, pruned, fine-tuned): the same batches for all."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from bvp.evaluation.accuracy import accuracy, eval_batches
from bvp.evaluation.disentanglement import active_units_cov, label_information, mig
from bvp.evaluation.latent import kl_statistics, latent_codes
from bvp.torchutil import eval_mode


def latent_statistics(mu: Tensor, logvar: Tensor | None, labels: Tensor, factors: Tensor | None) -> dict[str, Any]:
    """What the mean codes of one split say: KL per dimension and KL-based active units (where the posterior
    variance is still there), Burda's active units, label information and, with ground-truth factors, MIG."""
    codes, y = mu.double().cpu().numpy(), labels.cpu().numpy()
    out: dict[str, Any] = kl_statistics(mu, logvar) if logvar is not None else {}
    out["active_units_cov"] = active_units_cov(mu)
    if codes.shape[1] < 2:  # the gaps need a runner-up dimension (one is left after removing inactive units)
        return out
    info = label_information(codes, y)
    out |= {"label_info_dims": info.per_dim.tolist(), "label_mig": info.label_mig}
    out["label_informative_dims"] = info.informative_dims
    if factors is not None:
        out["mig"] = mig(codes, factors.numpy())
    return out


def snapshot(net: nn.Module, dm: Any, latent: bool = True) -> dict[str, Any]:
    """Val and test accuracy of the deployed path (the head reads the latent mean) and, if ``latent``, the
    latent statistics of the test split; in eval mode, which is restored afterwards."""
    with eval_mode(net):
        out: dict[str, Any] = {
            f"{split}_acc": accuracy(lambda x: net(x).logits, eval_batches(dm, split)) for split in ("val", "test")
        }
        if latent:
            mu, logvar, labels = latent_codes(net, eval_batches(dm, "test"))
            out |= latent_statistics(mu, logvar, labels, getattr(dm, "factors", {}).get("test"))
    return out
