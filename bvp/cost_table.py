"""``make bench-latency``: what pruning buys at inference, dense vs unstructured vs structured pruning of the default
Beta-VAE-Classif's deployed classifier (params, MACs, latency, export size; bvp.evaluation.cost measures them)."""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence

import torch
from hydra.utils import get_class, instantiate
from torch.nn.utils import prune

from bvp.bench import compose_cfg
from bvp.evaluation.cost import exported_bytes, models_cost
from bvp.pruning.scope import SCOPES, scope_parameters
from bvp.pruning.structured import prune_channels


def main(argv: Sequence[str] | None = None) -> None:
    """Print params, MACs, latency and file sizes of the default Beta-VAE-Classif deployed classifier
    (random weights: timing does not depend on them) dense, unstructured and structured at ``--amount``."""
    parser = argparse.ArgumentParser(prog="python -m bvp.cost_table", description=main.__doc__)
    parser.add_argument("--dataset", choices=["mnist", "cifar10"], default="mnist")
    parser.add_argument("--amount", type=float, default=0.5)
    args = parser.parse_args(argv)

    cfg = compose_cfg("beta_vae", args.dataset, [])
    data = get_class(cfg.dataset._target_)
    torch.manual_seed(0)
    net = instantiate(cfg.model.net, in_shape=list(data.shape), num_classes=data.num_classes)
    net.strip()
    unstructured = copy.deepcopy(net)
    params = scope_parameters(unstructured, list(SCOPES), ["weight"])
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=args.amount)
    for module, name in params:
        prune.remove(module, name)
    structured = copy.deepcopy(net)
    prune_channels(structured, args.amount, torch.zeros(2, *data.shape))

    classifiers = {"dense": net.classifier(), "unstructured": unstructured.classifier(), "structured": structured.classifier()}
    costs = models_cost(list(classifiers.values()), data.shape)
    rows = {label: cost | exported_bytes(m, data.shape) for (label, m), cost in zip(classifiers.items(), costs, strict=True)}
    columns = list(rows["dense"])
    print(f"{args.dataset}, amount={args.amount}, {torch.get_num_threads()} CPU threads; in brackets: ratio to dense")
    print(f"{'':>13}" + "".join(f"{c:>28}" for c in columns))
    for label, row in rows.items():
        cells = [f"{row[c]:{',' if isinstance(row[c], int) else '.3g'}} ({row[c] / rows['dense'][c]:.2f}x)" for c in columns]
        print(f"{label:>13}" + "".join(f"{c:>28}" for c in cells))


if __name__ == "__main__":
    main()
