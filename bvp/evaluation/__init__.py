"""Measurements as plain functions: accuracy, latent statistics, compression, disentanglement."""

from bvp.evaluation.compression import compression_figures, count_nonzero, count_params
from bvp.evaluation.disentanglement import (
    DCI,
    LabelInformation,
    active_units_cov,
    dci,
    label_information,
    latent_traversal,
    mig,
)
from bvp.evaluation.latent import ACTIVE_UNIT_NATS, LatentKL, active_units

__all__ = [
    "ACTIVE_UNIT_NATS",
    "DCI",
    "LabelInformation",
    "LatentKL",
    "active_units",
    "active_units_cov",
    "compression_figures",
    "count_nonzero",
    "count_params",
    "dci",
    "label_information",
    "latent_traversal",
    "mig",
]
