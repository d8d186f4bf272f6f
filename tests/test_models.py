"""Networks and loss terms: shapes for both datasets, KL against torch.distributions, recon likelihoods."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from bvp.evaluation.latent import LatentKL, active_units
from bvp.losses import kl_per_dim, recon_loss, total_loss
from bvp.models import BetaVAEClassif, CNNClassif

SHAPES = [(1, 28, 28), (3, 32, 32)]


@pytest.mark.parametrize("shape", SHAPES)
def test_beta_vae_shapes(shape: tuple[int, int, int]) -> None:
    net = BetaVAEClassif(shape, num_classes=10, latent_dim=6)
    out = net(torch.rand(5, *shape))
    assert out.logits.shape == (5, 10) and out.mu.shape == (5, 6) and out.logvar.shape == (5, 6)
    assert out.recon.shape == (5, *shape)


@pytest.mark.parametrize("shape", SHAPES)
def test_cnn_shares_the_prunable_part(shape: tuple[int, int, int]) -> None:
    vae, cnn = BetaVAEClassif(shape, latent_dim=6), CNNClassif(shape, latent_dim=6)
    out = cnn(torch.rand(5, *shape))
    assert out.logits.shape == (5, 10) and out.logvar is None and out.recon is None
    shapes = lambda m: [tuple(p.shape) for p in m.classifier().parameters()]  # noqa: E731
    assert shapes(vae) == shapes(cnn)  # same deployed classifier: encoder, latent mean, head


def test_head_reads_sampled_z_in_training_and_mu_in_eval() -> None:
    net = BetaVAEClassif((1, 28, 28), latent_dim=4)
    x = torch.rand(3, 1, 28, 28)
    net.eval()
    a, b = net(x), net(x)
    assert torch.equal(a.logits, b.logits)
    assert torch.allclose(net.classifier()(x), a.logits)  # the deployed path is the eval path
    net.train()
    assert not torch.equal(net(x).logits, net(x).logits)


def test_kl_matches_torch_distributions() -> None:
    torch.manual_seed(0)
    mu, logvar = torch.randn(7, 5), torch.randn(7, 5)
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0))
    assert torch.allclose(kl_per_dim(mu, logvar), expected, atol=1e-6)
    assert torch.allclose(kl_per_dim(torch.zeros(2, 3), torch.zeros(2, 3)), torch.zeros(2, 3))


def test_recon_losses_sum_pixels_and_average_batch() -> None:
    torch.manual_seed(0)
    logits, x = torch.randn(4, 1, 5, 5), torch.rand(4, 1, 5, 5)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 4
    assert torch.allclose(recon_loss(logits, x, "bernoulli"), bce)
    assert torch.allclose(recon_loss(logits, x, "gaussian"), ((logits - x) ** 2).sum() / 4)
    with pytest.raises(ValueError, match="laplace"):
        recon_loss(logits, x, "laplace")


def test_total_loss_weights_terms() -> None:
    r, k, c = torch.tensor(10.0), torch.tensor(2.0), torch.tensor(0.5)
    assert total_loss(r, k, c, beta=4.0, cls_weight=3.0).item() == pytest.approx(10 + 8 + 1.5)
    assert total_loss(None, None, c, beta=4.0, cls_weight=1.0).item() == pytest.approx(0.5)


def test_latent_kl_metric_and_active_units() -> None:
    metric = LatentKL(3)
    metric.update(torch.tensor([[0.5, 0.0, 0.02], [1.5, 0.0, 0.0]]))
    metric.update(torch.tensor([[1.0, 0.003, 0.01]]))
    per_dim = metric.compute()
    assert torch.allclose(per_dim, torch.tensor([1.0, 0.001, 0.01]))
    assert active_units(per_dim).item() == 1  # 0.01 nats is not > 0.01


def test_term_means_weight_by_batch_and_skip_missing_terms() -> None:
    from bvp.losses import TermMeans

    metric = TermMeans()
    metric.update({"loss": torch.tensor(2.0), "recon": torch.tensor(10.0), "ce": torch.tensor(1.0)}, n=3)
    metric.update({"loss": torch.tensor(4.0), "ce": torch.tensor(0.0)}, n=1)  # no recon: decoder stripped
    means = metric.compute()
    assert set(means) == {"loss", "recon", "ce"}  # kl never seen: not reported
    assert means["loss"].item() == pytest.approx((2 * 3 + 4) / 4)
    assert means["recon"].item() == pytest.approx(10.0)  # averaged over the steps that had it
    assert means["ce"].item() == pytest.approx(3 / 4)
