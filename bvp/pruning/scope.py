"""What gets pruned: the conv/linear weights of the deployed classifier, and how sparse they are.

The scope is defined once, as parts of ``LatentClassifier.classifier()`` (encoder -> latent mean -> head):
``latent`` is the mean layer only; the log-variance layer and the decoder are never pruned or counted.
"""

from __future__ import annotations

from torch import nn

SCOPES = ("encoder", "latent", "head")  # the three parts of the deployed classifier, in order
PRUNABLE = (nn.Conv2d, nn.Linear)


def scope_modules(net: nn.Module, scope: list[str]) -> list[nn.Module]:
    """The named parts of ``net.classifier()`` (which shares its modules with ``net``)."""
    parts = dict(zip(SCOPES, net.classifier(), strict=True))
    return [parts[name] for name in scope]


def scope_parameters(net: nn.Module, scope: list[str], names: list[str]) -> list[tuple[nn.Module, str]]:
    """(module, "weight"/"bias") for every conv/linear layer in the named parts of the deployed classifier."""
    return [
        (module, name)
        for part in scope_modules(net, scope)
        for module in part.modules()
        if isinstance(module, PRUNABLE)
        for name in names
        if getattr(module, name, None) is not None
    ]


def sparsity_report(net: nn.Module, params: list[tuple[nn.Module, str]]) -> dict[str, float]:
    """Fraction of exact zeros per pruned tensor (named by its path in ``net``) and over all of them."""
    paths = {id(m): path for path, m in net.named_modules()}
    report, zeros, total = {}, 0, 0
    for module, name in params:
        t = getattr(module, name)
        z, n = int((t == 0).sum()), t.numel()
        report[f"{paths[id(module)]}.{name}"] = z / n
        zeros, total = zeros + z, total + n
    report["overall"] = zeros / max(total, 1)
    return report
