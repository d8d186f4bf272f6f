"""Latent statistics: mean KL per dimension (a torchmetric) and the number of active units."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from bvp.losses import kl_per_dim

ACTIVE_UNIT_NATS = 0.01


class LatentKL(Metric):
    """Mean over samples of KL(q(z_d|x) || N(0,1)) for each latent dim d; sums sync across ranks.

    Active units = #{d : mean KL_d > 0.01 nats}: a unit with ~0 KL carries no information about x,
    which is how posterior collapse at large beta shows (Burda et al. 2016 use the same idea).
    """

    full_state_update = False

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.add_state("kl_sum", default=torch.zeros(latent_dim, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, kl_dims: Tensor) -> None:
        self.kl_sum += kl_dims.detach().sum(0).double()
        self.count += kl_dims.shape[0]

    def compute(self) -> Tensor:
        return (self.kl_sum / self.count.clamp_min(1)).float()


def active_units(kl_per_dim_mean: Tensor, threshold: float = ACTIVE_UNIT_NATS) -> Tensor:
    """Number of latent dims whose mean KL exceeds ``threshold`` nats."""
    return (kl_per_dim_mean > threshold).sum()


@torch.no_grad()
def latent_codes(net: torch.nn.Module, batches: Iterable[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor | None, Tensor]:
    """Posterior means, log-variances (None for a deterministic or stripped latent) and labels over the batches."""
    mus, logvars, labels = [], [], []
    for x, y in batches:
        out = net(x)
        mus.append(out.mu)
        labels.append(y)
        if out.logvar is not None:
            logvars.append(out.logvar)
    return torch.cat(mus), torch.cat(logvars) if logvars else None, torch.cat(labels)


def kl_statistics(mu: Tensor, logvar: Tensor) -> dict[str, Any]:
    """Mean KL(q(z_d|x) || N(0, 1)) per dimension (nats), its sum, and the KL-based active units."""
    kl_dims = kl_per_dim(mu, logvar).mean(0)
    return {"kl_dims": kl_dims.tolist(), "kl": float(kl_dims.sum()), "active_units": int(active_units(kl_dims))}
