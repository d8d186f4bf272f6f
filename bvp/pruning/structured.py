"""Structured pruning: remove whole channels, neurons and latent units, so the deployed classifier gets
physically smaller (fewer parameters and MACs, dense kernels that run faster), not just sparser.

Channels and neurons go by group magnitude on Torch-Pruning's dependency graph (Fang et al., "DepGraph:
Towards Any Structural Pruning", CVPR 2023): a conv's output channel is scored together with the input
weights that read it (the next conv's input channel, or the dense layer's columns behind the flatten) and
both go at once. The input, the latent dimensions and the class outputs are kept; the decoder is never
touched. Everything here changes the modules in place, so the deployed classifier (``net.classifier()``,
which shares them) shrinks with the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch_pruning as tp
from torch import Tensor, nn

from bvp.evaluation.accuracy import eval_batches
from bvp.evaluation.compression import count_params
from bvp.evaluation.cost import count_macs
from bvp.evaluation.latent import ACTIVE_UNIT_NATS, latent_codes
from bvp.losses import kl_per_dim
from bvp.models import LatentClassifier, Output
from bvp.pruning.engine import Engine
from bvp.pruning.scope import SCOPES
from bvp.torchutil import eval_mode

NORMS = {"l1": 1, "l2": 2}  # pruning.norm -> the p of the group magnitude


def prunable_layers(net: LatentClassifier) -> dict[str, nn.Conv2d | nn.Linear]:
    """The layers whose outputs lose channels/neurons, by path in ``net``: every conv and dense layer of the
    encoder and every dense layer of the head but the last (the class outputs)."""
    layers = {f"encoder.{n}": m for n, m in net.encoder.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    head = [(n, m) for n, m in net.head.named_children() if isinstance(m, nn.Linear)][:-1]
    return layers | {f"head.{n}": m for n, m in head}


def out_size(layer: nn.Conv2d | nn.Linear) -> int:
    return layer.out_channels if isinstance(layer, nn.Conv2d) else layer.out_features


def channel_counts(net: LatentClassifier) -> dict[str, int]:
    """Output channels/neurons of each prunable layer: record them on the dense network to prune relative to it."""
    return {name: out_size(m) for name, m in prunable_layers(net).items()}


def kept(n: int, amount: float) -> int:
    """Channels left of ``n`` once ``amount`` of them is removed, to the nearest channel (halves round up)."""
    return int(n * (1 - amount) + 0.5)


def check_channel_amount(counts: Mapping[str, int], amount: float, key: str = "pruning.amount") -> list[str]:
    """Errors ('key=value: what to write instead') if ``amount`` would remove every channel of some layer;
    ``counts`` is ``channel_counts`` of the dense network."""
    empty = [name for name, n in counts.items() if kept(n, amount) < 1]
    if not empty:
        return []
    n = min(counts.values())
    largest = int((1 - 1 / n) * 100) / 100  # keeps one channel of the narrowest layer, rounded down to 0.01
    return [f"{key}={amount!r}: removes every channel of {', '.join(empty)} (narrowest: {n}); write {key}<={largest}"]


def channel_sparsity(net: LatentClassifier, dense: Mapping[str, int]) -> float:
    """Fraction of the dense network's channels/neurons (over all prunable layers) that are gone."""
    return 1 - sum(channel_counts(net).values()) / sum(dense.values())


@dataclass(frozen=True)
class ChannelPruning:
    """What one ``prune_channels`` call did. Counts are of the deployed classifier, before and after the call."""

    removed: dict[str, list[int]]  # layer path -> output channels removed (indices before the call)
    params: tuple[int, int]
    macs: tuple[int, int]

    def fractions(self) -> dict[str, float]:
        """The achieved fractions of parameters and MACs removed (the channel fraction is ``amount``)."""
        return {"params_removed": 1 - self.params[1] / self.params[0], "macs_removed": 1 - self.macs[1] / self.macs[0]}


def _tensors(out: Output) -> list[Tensor]:
    """Torch-Pruning traces back from tensors: the fields of the network's Output that are present."""
    return [t for t in out if t is not None]


def _dependency_graph(net: LatentClassifier, example_input: Tensor) -> tp.DependencyGraph:
    """Trace ``net`` (in eval mode, so mu and logvar stay uncoupled by the sampling) and restore its mode."""
    with torch.enable_grad(), eval_mode(net):
        return tp.DependencyGraph().build_dependency(net, example_input, output_transform=_tensors, verbose=False)


@torch.no_grad()
def prune_channels(
    net: LatentClassifier,
    amount: float,
    example_input: Tensor,
    norm: str = "l1",
    dense: Mapping[str, int] | None = None,
) -> ChannelPruning:
    """Remove ``amount`` of the output channels of every encoder conv and of the neurons of the encoder's and
    the head's hidden dense layers (the same fraction in each layer), lowest group L1/L2 magnitude first.

    ``amount`` is a fraction of ``dense`` (``channel_counts`` of the dense network) when given, so that a
    gradual schedule's target sparsity is hit to the nearest channel at every step; else of the channels the
    layers have now. Works in place on the whole network with or without decoder/logvar. ``example_input`` is
    a batch on the network's device. Refuses an amount that would empty a layer (``check_channel_amount``).
    """
    reference = dense if dense is not None else channel_counts(net)
    if errors := check_channel_amount(reference, amount):
        raise ValueError(errors[0])
    layers = prunable_layers(net)
    to_remove = {name: max(out_size(m) - kept(reference[name], amount), 0) for name, m in layers.items()}
    classifier = net.classifier()
    before = count_params(classifier), count_macs(classifier, example_input)

    graph = _dependency_graph(net, example_input)
    roots = {m: name for name, m in layers.items()}
    ignored = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and m not in roots]
    importance = tp.importance.GroupMagnitudeImportance(p=NORMS[norm])
    plans = []  # score every group on the unpruned network first, then prune (as tp's pruners do)
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]):
        root, handler = group[0].dep.target.module, group[0].dep.handler
        order = torch.argsort(importance(group).cpu(), stable=True)
        plans.append((root, handler, sorted(order[: to_remove[roots[root]]].tolist())))
    for root, handler, idxs in plans:
        if idxs:
            graph.get_pruning_group(root, handler, idxs).prune()
    removed = {roots[root]: idxs for root, _, idxs in plans}
    return ChannelPruning(removed, (before[0], count_params(classifier)), (before[1], count_macs(classifier, example_input)))


@torch.no_grad()
def inactive_units(net: LatentClassifier, batches: Iterable[tuple[Tensor, Tensor]]) -> tuple[list[int], Tensor]:
    """Latent dimensions whose mean KL on ``batches`` (the validation split) is at most ACTIVE_UNIT_NATS (at least
    one is kept: the most informative), and every dimension's mean code there (to fold into the next layer)."""
    with eval_mode(net):
        mu, logvar, _ = latent_codes(net, batches)
    kl = kl_per_dim(mu, logvar).mean(0)
    inactive = [d for d in range(len(kl)) if kl[d] <= ACTIVE_UNIT_NATS and d != int(kl.argmax())]
    return inactive, mu.mean(0)


@torch.no_grad()
def remove_latent_units(net: LatentClassifier, keep: Iterable[int], mean_code: Tensor | None = None) -> list[int]:
    """Remove the latent dimensions not in ``keep``: their rows of the mean (and log-variance) layer and their
    columns of every layer that reads z (the head's first layer, the decoder's first layer if present).
    With ``mean_code`` (the mean code of each dimension over the data), the removed dimensions' contribution
    W[:, d] * mean_d is first folded into those layers' biases: exact for a constant code, which is what an
    inactive unit (KL ~ 0) has. Returns the removed dimensions (indices before the call)."""
    keep = set(keep)
    removed = [j for j in range(net.latent.mu.out_features) if j not in keep]
    if len(removed) == net.latent.mu.out_features:
        raise ValueError("remove_latent_units: keep at least one latent dimension")
    if not removed:
        return []
    readers = [net.head[0]] + ([net.decoder.net[0]] if net.decoder is not None else [])
    if mean_code is not None:
        for layer in readers:
            layer.bias += layer.weight[:, removed] @ mean_code[removed].to(layer.weight)
    tp.prune_linear_out_channels(net.latent.mu, removed)
    if getattr(net.latent, "logvar", None) is not None:
        tp.prune_linear_out_channels(net.latent.logvar, removed)
    for layer in readers:
        tp.prune_linear_in_channels(layer, removed)
    net.latent_dim = net.latent.mu.out_features
    return removed


class ChannelEngine(Engine):
    """``pruning.structure=channels``: remove ``target`` of every hidden layer's channels/neurons, lowest group
    magnitude (``pruning.norm``) first; the sparsity is of the deployed classifier's parameters."""

    UNUSED: ClassVar[dict[str, Any]] = {  # every hidden layer's channels, ranked by group magnitude
        "scope": list(SCOPES),
        "prune_bias": False,
        "pruning_fn": "l1_unstructured",
        "use_global_unstructured": True,
    }

    def check(self, net: LatentClassifier, amount: float) -> list[str]:
        return check_channel_amount(channel_counts(net), amount)

    def prune(self, net: LatentClassifier, target: float, step: int, dense: Mapping[str, Any], dm: Any) -> dict[str, float]:
        example = next(eval_batches(dm, "val"))[0][:2]
        prune_channels(net, target, example, self.pruner.norm, dense=dense["dense_channels"])
        overall = 1 - count_params(net.classifier()) / dense["dense_classifier_params"]
        return {"channels": channel_sparsity(net, dense["dense_channels"]), "overall": overall}
