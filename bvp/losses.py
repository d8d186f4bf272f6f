"""Loss terms of Beta-VAE-Classif: L = recon + beta * KL + w_cls * CE (paper Eq. 1 plus the head's CE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

LIKELIHOODS = ("bernoulli", "gaussian")


def kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per sample and latent dim, closed form (Kingma & Welling 2014, App. B):
    0.5 * (mu^2 + sigma^2 - 1 - log sigma^2)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def recon_loss(recon: Tensor, x: Tensor, likelihood: str) -> Tensor:
    """-log p(x|z) summed over pixels, averaged over the batch: Bernoulli (BCE on logits) or
    unit-variance Gaussian (squared error, constant dropped)."""
    if likelihood == "bernoulli":
        per_pixel = F.binary_cross_entropy_with_logits(recon, x, reduction="none")
    elif likelihood == "gaussian":
        per_pixel = F.mse_loss(recon, x, reduction="none")
    else:
        raise ValueError(f"recon likelihood {likelihood!r} is not one of {LIKELIHOODS}")
    return per_pixel.flatten(1).sum(1).mean()


def total_loss(
    recon: Tensor | None, kl: Tensor | None, ce: Tensor, beta: float, cls_weight: float, recon_weight: float = 1.0
) -> Tensor:
    """recon_weight * recon + beta * KL + cls_weight * CE, leaving out the terms a model does not have."""
    loss = cls_weight * ce
    if kl is not None:
        loss = loss + beta * kl
    if recon is not None:
        loss = loss + recon_weight * recon
    return loss


def collapse_is_optimal(beta: float, cls_weight: float) -> bool:
    """Whether a posterior that ignores the input minimises cls_weight * CE + beta * KL (no reconstruction term):
    the CE a code can save is at most I(Z;Y) <= I(Z;X) <= E[KL], so beta >= cls_weight makes encoding nothing
    optimal (the information bottleneck bound, Alemi et al. 2017)."""
    return beta >= cls_weight


def nonfinite(loss: Tensor) -> Tensor:
    """A 0-d bool tensor on the loss's device: True if the loss is NaN or inf (no host sync)."""
    return ~torch.isfinite(loss.detach())


class TermMeans(Metric):
    """Batch-size-weighted epoch means of the loss terms, one cheap update per step.

    Logging each term with ``self.log`` every step costs Lightning a deep copy per call; this keeps the
    running sums on the device instead and the module logs the means once per epoch. A term missing
    from some steps (``recon`` after the decoder is stripped) is averaged over the steps that had it.
    """

    full_state_update = False
    TERMS = ("loss", "recon", "kl", "ce")

    def __init__(self) -> None:
        super().__init__()
        self.add_state("sums", default=torch.zeros(len(self.TERMS), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", default=torch.zeros(len(self.TERMS), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, terms: dict[str, Tensor], n: int) -> None:
        idx = [i for i, name in enumerate(self.TERMS) if name in terms]
        values = torch.stack([terms[self.TERMS[i]].detach() for i in idx]).double()
        self.sums[idx] += values * n
        self.counts[idx] += n

    def compute(self) -> dict[str, Tensor]:
        seen = (self.counts > 0).tolist()  # one host sync, at epoch end
        means = (self.sums / self.counts.clamp_min(1)).float()
        return {name: means[i] for i, name in enumerate(self.TERMS) if seen[i]}
