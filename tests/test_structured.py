"""Structured pruning: channels and latent units removed for real, resume shapes, export, and the cost figures."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from bvp.evaluation.compression import count_params
from bvp.evaluation.cost import count_macs, deploy_cost
from bvp.export import export_classifier
from bvp.models import BetaVAEClassif, CNNClassif, LatentClassifier, match_shapes
from bvp.pruning.structured import (
    channel_counts,
    channel_sparsity,
    check_channel_amount,
    kept,
    prune_channels,
    remove_latent_units,
)

SIZES = {"latent_dim": 4, "hidden_dim": 32, "width": 8, "head_dim": 16}


def small(cls: type[LatentClassifier] = BetaVAEClassif, in_shape: tuple[int, int, int] = (1, 28, 28)) -> LatentClassifier:
    torch.manual_seed(0)
    return cls(in_shape, **SIZES)


def zeroed(net: LatentClassifier, removed: dict[str, list[int]]) -> LatentClassifier:
    """A copy of the unpruned ``net`` with the removed output channels' weights and biases set to zero."""
    ref = copy.deepcopy(net)
    with torch.no_grad():
        for path, idxs in removed.items():
            layer = ref.get_submodule(path)
            layer.weight[idxs] = 0
            layer.bias[idxs] = 0
    return ref


def assert_same_outputs(a: nn.Module, b: nn.Module, x: torch.Tensor) -> None:
    for out_a, out_b in zip(a.eval()(x), b.eval()(x), strict=True):
        assert (out_a is None) == (out_b is None)
        if out_a is not None:
            torch.testing.assert_close(out_a, out_b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("cls", "in_shape", "norm"),
    [(BetaVAEClassif, (1, 28, 28), "l1"), (BetaVAEClassif, (3, 32, 32), "l2"), (CNNClassif, (1, 28, 28), "l1")],
)
def test_pruned_network_equals_the_original_with_those_channels_zeroed(cls, in_shape, norm) -> None:
    net = small(cls, in_shape)
    net.train()  # the callback prunes in training mode: the trace must not couple mu and logvar or leave eval mode
    original, dense = copy.deepcopy(net), channel_counts(net)
    decoder = copy.deepcopy(net.decoder)
    x = torch.randn(5, *in_shape)
    result = prune_channels(net, 0.5, x, norm=norm)
    assert net.training
    assert set(result.removed) == set(dense)  # every encoder conv and dense layer, the head's hidden layer
    assert channel_counts(net) == {name: n - len(result.removed[name]) for name, n in dense.items()}
    assert channel_counts(net) == {name: n // 2 for name, n in dense.items()}
    assert net.latent.mu.out_features == SIZES["latent_dim"] and net.head[-1].out_features == 10
    assert net.encoder.net[0].in_channels == in_shape[0]
    if decoder is not None:  # never touched
        assert all(torch.equal(p, q) for p, q in zip(net.decoder.parameters(), decoder.parameters(), strict=True))
        assert net.latent.logvar.in_features == SIZES["hidden_dim"] // 2
    assert_same_outputs(net, zeroed(original, result.removed), x)
    assert channel_sparsity(net, dense) == pytest.approx(0.5)
    assert result.params == (count_params(original.classifier()), count_params(net.classifier()))
    # a layer with half its inputs and outputs keeps a quarter; the first conv keeps all its inputs, the last layer its outputs
    assert 0.65 < result.fractions()["params_removed"] < 0.75
    assert 0.65 < result.fractions()["macs_removed"] < 0.75


@pytest.mark.parametrize(("norm", "p"), [("l1", 1), ("l2", 2)])
def test_channels_go_by_group_magnitude(norm: str, p: int) -> None:
    """A hidden neuron of the head is scored by its row in head.0 and its column in head.2 together."""
    net = small()
    w0, w2 = net.head[0].weight.detach(), net.head[2].weight.detach()
    score = w0.abs().pow(p).sum(1) + w2.abs().pow(p).sum(0)
    result = prune_channels(net, 0.25, torch.randn(2, 1, 28, 28), norm=norm)
    assert result.removed["head.0"] == sorted(torch.argsort(score)[:4].tolist())


def test_amount_relative_to_the_dense_counts() -> None:
    """Gradual structured pruning: each step gives the overall target; the counts follow it to the channel."""
    net = small()
    dense, x = channel_counts(net), torch.randn(2, 1, 28, 28)
    for target in (0.1, 0.3, 0.45, 0.5):
        prune_channels(net, target, x, dense=dense)
        assert channel_counts(net) == {name: kept(n, target) for name, n in dense.items()}


def test_stripped_network_prunes_and_exports_with_the_smaller_parameter_count(tmp_path: Path) -> None:
    net = small()
    net.strip()
    dense_params = count_params(net.classifier())
    x = torch.randn(3, 1, 28, 28)
    prune_channels(net, 0.5, x)
    assert net.decoder is None and net.latent.logvar is None
    classifier = net.classifier()
    paths = export_classifier(classifier, x, tmp_path)
    loaded = torch.export.load(paths["exported"]).module()
    assert sum(t.numel() for t in loaded.state_dict().values()) == count_params(classifier) < dense_params / 3
    torch.testing.assert_close(loaded(x), classifier(x))
    assert loaded(torch.randn(7, 1, 28, 28)).shape == (7, 10)


def test_amount_that_empties_a_layer_is_refused() -> None:
    net = small()  # narrowest layer: the first conv, 8 channels
    counts = channel_counts(net)
    errors = check_channel_amount(counts, 0.95)
    assert errors == ["pruning.amount=0.95: removes every channel of encoder.net.0 (narrowest: 8); write pruning.amount<=0.87"]
    assert check_channel_amount(counts, 0.87) == []
    assert min(kept(n, 0.87) for n in counts.values()) == 1
    with pytest.raises(ValueError, match=r"pruning\.amount=0\.95"):
        prune_channels(net, 0.95, torch.zeros(1, 1, 28, 28))
    assert channel_counts(net) == counts


def test_remove_latent_units() -> None:
    net = small()
    original, x = copy.deepcopy(net), torch.randn(4, 1, 28, 28)
    assert remove_latent_units(net, [0, 2]) == [1, 3]
    assert net.latent_dim == 2
    assert net.latent.mu.out_features == net.latent.logvar.out_features == 2
    assert net.head[0].in_features == net.decoder.net[0].in_features == 2
    with torch.no_grad():  # the same network reading only the kept dimensions
        for layer in (original.head[0], original.decoder.net[0]):
            layer.weight[:, [1, 3]] = 0
    out, ref = net.eval()(x), original.eval()(x)
    torch.testing.assert_close(out.mu, ref.mu[:, [0, 2]])
    torch.testing.assert_close(out.logvar, ref.logvar[:, [0, 2]])
    torch.testing.assert_close(out.logits, ref.logits)
    torch.testing.assert_close(out.recon, ref.recon)
    assert remove_latent_units(net, [0, 1]) == []
    with pytest.raises(ValueError, match="at least one"):
        remove_latent_units(net, [])


def test_removing_constant_units_with_their_mean_folded_in_keeps_the_function() -> None:
    """Inactive units have constant codes: folded into the next biases, their removal changes no output."""
    net, x = small().eval(), torch.randn(6, 1, 28, 28)
    with torch.no_grad():  # dimensions 1 and 3 constant, away from 0, so that dropping them unfolded would show
        net.latent.mu.weight[[1, 3]] = 0
        net.latent.mu.bias[[1, 3]] = torch.tensor([2.0, -3.0])
    mean_code = net(x).mu.mean(0)
    before, unfolded = net(x), copy.deepcopy(net)
    assert remove_latent_units(net, [0, 2], mean_code) == [1, 3]
    remove_latent_units(unfolded, [0, 2])
    after = net(x)
    torch.testing.assert_close(after.logits, before.logits)
    torch.testing.assert_close(after.recon, before.recon)
    assert not torch.allclose(unfolded(x).logits, before.logits, atol=1e-3)  # the folding is what keeps it


def test_match_shapes_rebuilds_a_pruned_checkpoint() -> None:
    """A run resumed during fine-tuning builds the dense network, then loads the checkpoint's smaller shapes."""
    net, x = small(), torch.randn(3, 1, 28, 28)
    remove_latent_units(net, [1, 2, 3])
    prune_channels(net, 0.5, x)
    checkpoint = {f"net.{k}": v for k, v in net.state_dict().items()}  # as a LightningModule's checkpoint holds it
    fresh = small()
    resized = match_shapes(fresh, checkpoint, prefix="net.")
    assert set(resized) == {
        "encoder.net.0",
        "encoder.net.2",
        "encoder.net.5",
        "latent.mu",
        "latent.logvar",
        "head.0",
        "head.2",
        "decoder.net.0",
    }
    fresh.load_state_dict({k.removeprefix("net."): v for k, v in checkpoint.items()})
    assert fresh.latent_dim == 3 and channel_counts(fresh) == channel_counts(net)
    assert_same_outputs(fresh, net, x)
    assert match_shapes(fresh, checkpoint, prefix="net.") == []


def test_count_macs_counts_dense_kernels_per_sample() -> None:
    conv = nn.Conv2d(1, 4, 3)  # 6x6 outputs x 4 channels, 9 multiply-adds each plus the bias
    assert count_macs(conv, torch.zeros(1, 1, 8, 8)) == 6 * 6 * 4 * (9 + 1)
    assert count_macs(nn.Linear(10, 3), torch.zeros(5, 10)) == 3 * (10 + 1)  # of one sample, whatever the batch


def test_deploy_cost_of_a_structured_and_an_unstructured_copy() -> None:
    net = small()
    net.strip()
    dense = copy.deepcopy(net).classifier()
    unstructured = copy.deepcopy(dense)
    with torch.no_grad():
        for m in unstructured.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight[m.weight.abs() < m.weight.abs().median()] = 0
    cost = deploy_cost(dense, unstructured, (1, 28, 28))
    assert set(cost) == {
        f"{tag}_{k}" for tag in ("dense", "pruned") for k in ("params", "nonzero", "macs", "latency_ms_b1", "latency_ms_b256")
    } | {"latency_threads"}
    assert cost["pruned_params"] == cost["dense_params"] == count_params(dense)
    assert cost["pruned_macs"] == cost["dense_macs"] == count_macs(dense, torch.zeros(1, 1, 28, 28))
    assert cost["pruned_nonzero"] < 0.6 * cost["dense_nonzero"]
    assert cost["latency_threads"] == torch.get_num_threads()
    assert all(cost[f"{t}_latency_ms_b{b}"] > 0 for t in ("dense", "pruned") for b in (1, 256))
    prune_channels(net, 0.5, torch.zeros(2, 1, 28, 28))
    cost = deploy_cost(dense, net.classifier(), (1, 28, 28))
    assert cost["pruned_params"] == cost["pruned_nonzero"] < 0.35 * cost["dense_params"]
    assert cost["pruned_macs"] < 0.35 * cost["dense_macs"]
