"""What pruning buys at inference: parameters, MACs and latency of the deployed classifier, dense vs pruned.

Unstructured pruning zeroes weights but keeps every tensor's shape: the same dense kernels run, so MACs and
latency stay where they were (only a sparse-encoded file gets smaller). Structured pruning removes channels,
so parameters, MACs and latency all fall. ``python -m bvp.cost_table`` (make bench-latency) prints both side by side.

Pass modules with pruning made permanent (``prune.remove``): a pruning reparametrisation (weight_orig and
weight_mask) would be counted twice.
"""

from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch_pruning as tp
from torch import nn

from bvp.evaluation.compression import count_nonzero, count_params
from bvp.export import export_classifier
from bvp.torchutil import sync

BATCHES = (1, 256)
REPEATS = {1: 200, 256: 20}  # timed calls per model and batch size: about 1 s per model at the default MNIST sizes
WARMUP = 5


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one sample (the first of ``example``), dense kernels (zeros count), biases as
    one each: Torch-Pruning's op counter (given a batch, it would count a linear layer's biases once per batch)."""
    with torch.no_grad():
        macs, _ = tp.utils.count_ops_and_params(model, example[:1])
    return int(macs)


def latencies_ms(
    models: Sequence[nn.Module], batch_size: int, in_shape: Sequence[int], repeats: int, device: str | torch.device = "cpu"
) -> list[float]:
    """Median wall time (ms) of one forward pass of each model on a batch of random inputs, after ``WARMUP``
    calls, in inference mode, on copies in eval mode on ``device`` (the CPU by default). The models take turns
    call by call, so that a load change on a shared machine slows them all alike and their ratios hold."""
    device = torch.device(device)
    copies = [copy.deepcopy(m).to(device).eval() for m in models]
    x = torch.randn(batch_size, *in_shape, device=device)
    times: list[list[float]] = [[] for _ in copies]
    with torch.inference_mode():
        for _ in range(WARMUP):
            for model in copies:
                model(x)
        for _ in range(repeats):
            for model, t in zip(copies, times, strict=True):
                sync(device)
                start = time.perf_counter()
                model(x)
                sync(device)
                t.append(time.perf_counter() - start)
    return [1000 * statistics.median(t) for t in times]


def models_cost(models: Sequence[nn.Module], in_shape: Sequence[int], cuda: bool = False) -> list[dict[str, float]]:
    """For each deployed classifier: parameters as stored, nonzero parameters, MACs per sample and latency at
    each of ``BATCHES`` (CPU, and the GPU too with ``cuda``)."""
    costs = []
    for model in models:
        example = torch.zeros(1, *in_shape, device=next(model.parameters()).device)
        costs.append({"params": count_params(model), "nonzero": count_nonzero(model), "macs": count_macs(model, example)})
    for b in BATCHES:
        for device in ("cpu", "cuda") if cuda else ("cpu",):
            suffix = "_cuda" if device == "cuda" else ""
            for cost, ms in zip(costs, latencies_ms(models, b, in_shape, REPEATS[b], device), strict=True):
                cost[f"latency_ms_b{b}{suffix}"] = ms
    return costs


def deploy_cost(dense: nn.Module, pruned: nn.Module, in_shape: Sequence[int], cuda: bool = False) -> dict[str, float]:
    """``dense_*`` and ``pruned_*`` figures of ``models_cost`` (dense_params, pruned_params, dense_macs, ...,
    pruned_latency_ms_b256) and ``latency_threads``, the CPU threads the latencies were measured with."""
    out: dict[str, float] = {}
    for tag, cost in zip(("dense", "pruned"), models_cost([dense, pruned], in_shape, cuda), strict=True):
        out |= {f"{tag}_{k}": v for k, v in cost.items()}
    return out | {"latency_threads": torch.get_num_threads()}


def exported_bytes(model: nn.Module, in_shape: Sequence[int]) -> dict[str, int]:
    """Sizes of the two deployed files ``bvp.export.export_classifier`` writes for ``model``."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_classifier(copy.deepcopy(model), torch.zeros(2, *in_shape), Path(tmp))
        return {f"{k}_bytes": os.path.getsize(p) for k, p in paths.items()}
