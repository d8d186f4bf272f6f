"""Compression figures of a deployed (pruned) classifier.

Three ratios (README, "Compression"):
  (a) compression_ratio_full  = params(full trained model, decoder included) / nonzero(deployed classifier)
  (b) compression_ratio       = params(dense deployed classifier) / nonzero(deployed classifier)
  (c) compression_ratio_bytes = bytes(dense fp32 state_dict file) / bytes(sparse-encoded state_dict file)
"""

from __future__ import annotations

import torch
from torch import nn

from bvp.export import cpu_state_dict, encode_sparse, saved_bytes


def count_params(module: nn.Module) -> int:
    return sum(t.numel() for t in module.state_dict().values() if t.is_floating_point())


def count_nonzero(module: nn.Module) -> int:
    return sum(int(torch.count_nonzero(t)) for t in module.state_dict().values() if t.is_floating_point())


def compression_figures(full_model_params: int, classifier: nn.Module, dense_classifier_params: int) -> dict[str, float]:
    """The three ratios for a deployed (pruned) classifier; see the module docstring."""
    nonzero = count_nonzero(classifier)
    sd = cpu_state_dict(classifier)
    dense_bytes, sparse_bytes = len(saved_bytes(sd)), len(saved_bytes(encode_sparse(sd)))
    return {
        "params_full_model": full_model_params,
        "params_classifier": dense_classifier_params,
        "nonzero_classifier": nonzero,
        "bytes_dense": dense_bytes,
        "bytes_sparse": sparse_bytes,
        "compression_ratio_full": full_model_params / nonzero,
        "compression_ratio": dense_classifier_params / nonzero,
        "compression_ratio_bytes": dense_bytes / sparse_bytes,
    }
