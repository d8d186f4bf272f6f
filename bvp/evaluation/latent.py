"""Latent statistics: mean KL per dimension (a torchmetric) and the number of active units."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

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
