"""Measurements as plain functions: accuracy, latent statistics, compression."""

from bvp.evaluation.compression import compression_figures, count_nonzero, count_params
from bvp.evaluation.latent import ACTIVE_UNIT_NATS, LatentKL, active_units

__all__ = ["ACTIVE_UNIT_NATS", "LatentKL", "active_units", "compression_figures", "count_nonzero", "count_params"]
