"""Gradual pruning: Zhu & Gupta's cubic schedule and per-step counts that compound to it exactly."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import prune

from bvp.models import BetaVAEClassif
from bvp.pruning.schedules import CubicSchedule, step_count
from bvp.pruning.scope import SCOPES, scope_parameters, sparsity_report
from bvp.pruning.structured import channel_counts, channel_sparsity, kept, prune_channels

SCHEDULE = CubicSchedule(final=0.8, start_epoch=3, steps=4, step_epochs=2)


def small() -> BetaVAEClassif:
    torch.manual_seed(0)
    return BetaVAEClassif((1, 28, 28), latent_dim=4, hidden_dim=32, width=8, head_dim=16)


def test_cubic_schedule_follows_zhu_and_gupta() -> None:
    # s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 with s_i = 0, s_f = 0.8, t0 = 3, n = 4, dt = 2
    expected = [0.8 * (1 - (1 - (t - 3) / 8) ** 3) for t in (3, 5, 7, 9, 11)]
    assert SCHEDULE.targets() == pytest.approx(expected)
    assert SCHEDULE.targets()[0] == 0 and SCHEDULE.targets()[-1] == pytest.approx(0.8)
    assert SCHEDULE.end_epoch == 11
    assert [SCHEDULE.step_at(e) for e in range(1, 14)] == [None, None, 0, None, 1, None, 2, None, 3, None, 4, None, None]
    assert CubicSchedule(final=0.5, start_epoch=1, steps=2, initial=0.2).targets() == pytest.approx([0.2, 0.4625, 0.5])


def test_global_unstructured_prunes_among_the_remaining_weights() -> None:
    """Applied twice, global_unstructured's fraction is of the weights still unpruned, and old zeros stay."""
    params = scope_parameters(small(), list(SCOPES), ["weight"])
    total = sum(getattr(m, n).numel() for m, n in params)
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.5)
    first = [getattr(m, f"{n}_mask").clone() for m, n in params]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=0.5)
    zeros = total - sum(int(getattr(m, f"{n}_mask").sum()) for m, n in params)
    remaining = total - round(0.5 * total)
    assert zeros == total - remaining + round(0.5 * remaining)  # 0.75 of them, not 0.5
    assert all(bool((getattr(m, f"{n}_mask") <= old).all()) for (m, n), old in zip(params, first, strict=True))


def test_step_count_hits_the_formula_to_the_nearest_weight() -> None:
    net = small()
    params = scope_parameters(net, list(SCOPES), ["weight"])
    total = sum(getattr(m, n).numel() for m, n in params)
    schedule = CubicSchedule(final=0.9, start_epoch=1, steps=20)
    for s in schedule.targets()[1:]:
        remaining = total - round(sparsity_report(net, params)["overall"] * total)
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=step_count(s, total, remaining))
        assert round(sparsity_report(net, params)["overall"] * total) == round(s * total)


def test_gradual_structured_pruning_follows_the_schedule_per_layer() -> None:
    net = small()
    dense, x = channel_counts(net), torch.randn(2, 1, 28, 28)
    schedule = CubicSchedule(final=0.5, start_epoch=1, steps=3)
    for s in schedule.targets()[1:]:
        prune_channels(net, s, x, dense=dense)
        assert channel_counts(net) == {name: kept(n, s) for name, n in dense.items()}
        assert abs(channel_sparsity(net, dense) - s) <= len(dense) * 0.5 / sum(dense.values())
