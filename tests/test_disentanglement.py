"""MIG (against disentanglement_lib's own test cases and a hand-computed one), label information, Burda active
units, and the latent traversal grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bvp.data.dsprites import NUM_SPRITES, factor_classes
from bvp.evaluation import active_units, active_units_cov, dci, label_information, latent_traversal, mig
from bvp.evaluation.disentanglement import dci_scores, discretize
from bvp.losses import kl_per_dim
from bvp.models import BetaVAEClassif, CNNClassif


@pytest.fixture(scope="module")
def factors() -> np.ndarray:
    """disentanglement_lib's IdentityObservationsData: 10 independent factors of 10 classes, 3,000 points."""
    return np.random.default_rng(0).integers(0, 10, (3000, 10))


def test_identity_codes_score_near_one(factors: np.ndarray) -> None:
    assert 0.9 <= mig(factors.astype(float), factors) <= 1.0


def test_constant_codes_score_near_zero_without_nan(factors: np.ndarray) -> None:
    score = mig(np.zeros(factors.shape), factors)
    assert not np.isnan(score) and 0.0 <= score <= 0.2


def test_each_factor_in_two_codes_has_no_gap(factors: np.ndarray) -> None:
    codes = factors.astype(float)
    assert 0.0 <= mig(np.hstack([codes, codes]), factors) <= 0.1


def test_independent_random_codes_score_near_zero(factors: np.ndarray) -> None:
    codes = np.random.default_rng(1).normal(size=factors.shape)
    assert mig(codes, factors) <= 0.05


def test_permuting_code_dimensions_changes_nothing(factors: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    codes = factors[:, :6] + rng.normal(0, 1.5, (len(factors), 6))
    codes = np.hstack([codes, rng.normal(size=(len(factors), 4))])
    perm = rng.permutation(codes.shape[1])
    assert mig(codes[:, perm], factors) == pytest.approx(mig(codes, factors), abs=1e-12)
    assert 0.1 < mig(codes, factors) < 0.9  # a partial score, so the invariance is not a trivial 0 == 0


def test_small_case_by_hand() -> None:
    # factor v = (0, 0, 1, 1), H(v) = ln 2. Code 1 copies v: I = ln 2. Code 2 = (0, 0, 0, 1):
    # I = 1/2 ln(4/3) + 1/4 ln(2/3) + 1/4 ln 2. MIG = (ln 2 - I) / ln 2.
    v = np.array([[0], [0], [1], [1]])
    codes = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    second = 0.5 * np.log(4 / 3) + 0.25 * np.log(2 / 3) + 0.25 * np.log(2)
    assert mig(codes, v) == pytest.approx((np.log(2) - second) / np.log(2), abs=1e-12)  # 0.68872


def test_bins_are_equal_width_over_each_dimensions_own_range() -> None:
    # disentanglement_lib: np.digitize(x, np.histogram(x, 20)[1][:-1]); the maximum shares the last bin
    x = np.linspace(0, 1, 21)
    codes = np.stack([x, 100 * x - 7], axis=1)
    expected = [*range(1, 21), 20]
    assert discretize(codes, 20)[:, 0].tolist() == expected and discretize(codes, 20)[:, 1].tolist() == expected


def test_dsprites_identity_codes_score_about_point_nine() -> None:
    """20 bins cannot separate 40 orientations or 32 positions, so copying every factor scores ~0.9, not 1."""
    idx = np.random.default_rng(0).choice(NUM_SPRITES, 10_000, replace=False)
    f = factor_classes(idx)
    assert 0.87 < mig(f.astype(float), f) < 0.92


def test_bad_shapes_and_constant_factors_are_refused(factors: np.ndarray) -> None:
    with pytest.raises(ValueError, match="N = 3000"):
        mig(factors.astype(float), factors[:10])
    with pytest.raises(ValueError, match=r"columns \[1\] are constant"):
        mig(factors[:, :3].astype(float), np.stack([factors[:, 0], np.zeros(3000, int)], axis=1))
    with pytest.raises(ValueError, match="at least 2 code dimensions"):
        mig(factors[:, :1].astype(float), factors)


def test_label_information_per_dimension_gap_and_count() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 10, 3000)
    codes = np.stack([y + 0.0, y // 2 + 0.0, *rng.normal(size=(3, 3000))], axis=1)
    info = label_information(codes, y)
    assert info.per_dim.shape == (5,) and info.per_dim[0] == pytest.approx(1.0)  # dim 0 holds y exactly
    assert info.per_dim[1] == pytest.approx(np.log(5) / np.log(10), abs=0.01)  # y // 2: 5 of the 10 classes
    assert np.all(info.per_dim[2:] < 0.05)
    assert info.label_mig == pytest.approx(info.per_dim[0] - info.per_dim[1])
    assert info.informative_dims == 2


def test_burda_active_units_count_mean_code_variance_and_can_disagree_with_kl() -> None:
    torch.manual_seed(0)
    mu = torch.randn(2000, 4) * torch.tensor([1.0, 0.2, 0.05, 0.0])  # variances 1, 0.04, 0.0025, 0
    assert active_units_cov(mu) == 2
    # dim 3: mean code fixed at 0 (inactive for Burda) but posterior variance 0.5 (KL 0.097 nats: KL-active)
    logvar = torch.zeros_like(mu)
    logvar[:, 3] = np.log(0.5)
    assert int(active_units(kl_per_dim(mu, logvar).mean(0))) == 3
    assert active_units_cov(mu.numpy()) == 2


def test_latent_traversal_sweeps_each_dimension_with_the_others_held() -> None:
    torch.manual_seed(0)
    net = BetaVAEClassif((1, 64, 64), num_classes=3, latent_dim=3, hidden_dim=16, width=4, head_dim=8).train()
    x = torch.rand(1, 64, 64)
    grid = latent_traversal(net, x, steps=5)
    assert grid.shape == (3, 3 * 66 + 2, 5 * 66 + 2)  # make_grid: rows = dims, columns = steps, padding 2
    assert net.training  # the mode is restored
    net.eval()
    with torch.no_grad():
        z = net.latent(net.encoder(x[None]))[0]
        z[0, 1] = -1.5  # dim 1, step 1 of linspace(-3, 3, 5)
        expected = torch.sigmoid(net.decoder(z))[0, 0]
    tile = grid[0, 66 + 2 : 66 + 2 + 64, 66 + 2 : 66 + 2 + 64]
    assert torch.allclose(tile, expected, atol=1e-6)
    with pytest.raises(ValueError, match="decoder"):
        latent_traversal(CNNClassif((1, 64, 64), latent_dim=3, hidden_dim=16, width=4, head_dim=8), x)


def test_dci_scores_by_hand() -> None:
    assert dci_scores(np.eye(3)) == pytest.approx((1.0, 1.0), abs=1e-6)  # each code one factor, each factor one code
    assert dci_scores(np.ones((3, 3))) == pytest.approx((0.0, 0.0), abs=1e-6)  # every code explains every factor
    # one code explains both factors: disentanglement 0 (that code is split evenly), completeness 1 (one code each)
    d, c = dci_scores(np.array([[1.0, 1.0], [0.0, 0.0]]))
    assert d == pytest.approx(0.0, abs=1e-6) and c == pytest.approx(1.0, abs=1e-6)


def test_dci_on_identity_random_and_permuted_codes() -> None:
    """disentanglement_lib's dci_test cases: identity codes score near 1, random codes near 0, and a permutation of
    the code dimensions changes nothing."""
    rng = np.random.default_rng(0)
    y, y_test = rng.integers(0, 5, (600, 3)), rng.integers(0, 5, (300, 3))
    same = dci(y.astype(float), y, y_test.astype(float), y_test)
    assert same.disentanglement > 0.9 and same.completeness > 0.9 and same.informativeness == pytest.approx(1.0)
    noise = dci(rng.normal(size=(600, 3)), y, rng.normal(size=(300, 3)), y_test)
    assert noise.disentanglement < 0.2 and noise.informativeness < 0.4  # chance is 0.2
    perm = [2, 0, 1]
    permuted = dci(y[:, perm].astype(float), y, y_test[:, perm].astype(float), y_test)
    assert (permuted.disentanglement, permuted.completeness) == pytest.approx((same.disentanglement, same.completeness))
    with pytest.raises(ValueError, match="pairs"):
        dci(y.astype(float), y[:10], y_test.astype(float), y_test)
