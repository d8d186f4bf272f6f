"""Disentanglement and label information of a latent code, as plain functions on (N, D) mean codes.

- ``mig``: the Mutual Information Gap (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs",
  Eq. 6), computed exactly as disentanglement_lib does (Locatello et al. 2019, evaluation/metrics/mig.py).
- ``dci``: Disentanglement, Completeness and Informativeness (Eastwood & Williams 2018, ICLR), computed as
  disentanglement_lib does (evaluation/metrics/dci.py): importances from one gradient-boosted tree classifier per
  factor (scikit-learn).
- ``label_information``: the same estimator against the class label of a classification set.
- ``active_units_cov``: Burda et al. (2016) active units, from the variance of the mean code over the data.
- ``latent_traversal``: an image grid of each latent dimension swept with the others held (for TensorBoard).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torchvision
from numpy.typing import ArrayLike
from scipy.stats import entropy
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import mutual_info_score
from torch import Tensor

from bvp.torchutil import eval_mode

LABEL_INFORMATIVE = 0.05  # a dimension is label-informative when I(mu_d; y) >= 5% of H(y)
BURDA_ACTIVE = 0.01  # Burda et al. (2016): unit d is active when Cov_x(E_q[z_d|x]) > 0.01


def discretize(codes: ArrayLike, num_bins: int = 20) -> np.ndarray:
    """(N, D) bin index of each code, per dimension: ``num_bins`` equal-width bins over that dimension's range
    (disentanglement_lib's ``_histogram_discretize``: np.digitize on np.histogram's edges less the last)."""
    codes = np.asarray(codes, dtype=np.float64)
    return np.stack([np.digitize(c, np.histogram(c, num_bins)[1][:-1]) for c in codes.T], axis=1)


def mutual_information(codes: ArrayLike, factors: ArrayLike, num_bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(D, K) mutual information in nats of each discretised code dimension with each factor (scikit-learn's
    ``mutual_info_score``, the plug-in estimate), and the (K,) entropy of each factor, I(v_k; v_k)."""
    binned = discretize(codes, num_bins)
    factors = np.asarray(factors)
    if factors.ndim != 2 or len(factors) != len(binned):
        raise ValueError(f"factors must be (N, K) with N = {len(binned)} codes; got shape {factors.shape}")
    mi = np.array([[mutual_info_score(f, b) for f in factors.T] for b in binned.T]).reshape(binned.shape[1], -1)
    h = np.array([mutual_info_score(f, f) for f in factors.T])
    if np.any(h == 0):
        raise ValueError(f"factor columns {np.flatnonzero(h == 0).tolist()} are constant: they carry no information")
    return mi, h


def top_two_gap(mi: np.ndarray) -> np.ndarray:
    """Per column of (D, K) ``mi``: its largest minus its second largest entry (over code dimensions)."""
    if mi.shape[0] < 2:
        raise ValueError(f"a gap needs at least 2 code dimensions; got {mi.shape[0]}")
    top = np.sort(mi, axis=0)
    return top[-1] - top[-2]


def mig(codes: ArrayLike, factors: ArrayLike, num_bins: int = 20) -> float:
    """Mutual Information Gap: the mean over factors k of (I(z_j*; v_k) - I(z_j'; v_k)) / H(v_k), with j* and j'
    the code dimensions of largest and second largest MI with v_k (Chen et al. 2018, Eq. 6).

    ``codes`` (N, D) float mean codes; ``factors`` (N, K) integer classes. Each code dimension is cut into
    ``num_bins`` equal-width bins over its own range, as disentanglement_lib does with 10,000 points and 20 bins;
    so a factor with more classes than bins (dSprites' 40 orientations) cannot reach 1 even when copied.
    """
    mi, h = mutual_information(codes, factors, num_bins)
    return float(np.mean(top_two_gap(mi) / h))


class LabelInformation(NamedTuple):
    per_dim: np.ndarray  # (D,) I(mu_d; y) / H(y)
    label_mig: float  # largest minus second largest of per_dim
    informative_dims: int  # dimensions with I(mu_d; y) >= LABEL_INFORMATIVE * H(y)


def label_information(codes: ArrayLike, labels: ArrayLike, num_bins: int = 20) -> LabelInformation:
    """How much each latent dimension tells about the class label y, with MIG's estimator: I(mu_d; y) / H(y) per
    dimension, the gap between the top two ("label MIG": one dimension holds the class, not several), and the
    number of dimensions that hold at least 5% of H(y)."""
    mi, h = mutual_information(codes, np.asarray(labels).reshape(-1, 1), num_bins)
    per_dim = mi[:, 0] / h[0]
    return LabelInformation(per_dim, float(top_two_gap(mi)[0] / h[0]), int(np.sum(per_dim >= LABEL_INFORMATIVE)))


def active_units_cov(codes: Tensor | ArrayLike, threshold: float = BURDA_ACTIVE) -> int:
    """Active units as Burda et al. (2016, Sec. 5.2) define them: dimensions d with Cov_x(E_q[z_d|x]) > 0.01,
    i.e. the variance over the data of the mean code. Unlike the KL-based count (``active_units``), it ignores
    the posterior variance, so the two can disagree."""
    codes = torch.as_tensor(codes, dtype=torch.float64)
    return int((codes.var(dim=0, unbiased=False) > threshold).sum())


@torch.no_grad()
def latent_traversal(net: torch.nn.Module, x: Tensor, steps: int = 8, span: float = 3.0, likelihood: str = "bernoulli") -> Tensor:
    """Image grid (C, H', W') of the decoder's output as each latent dimension (a row) sweeps ``steps`` values
    over [-span, span] while the others stay at the mean code of the one (normalised) image ``x``.

    ``net`` is a ``bvp.models.LatentClassifier`` with a decoder; its output goes through a sigmoid for
    ``likelihood="bernoulli"`` (logits) and is shown as it is for "gaussian" (means)."""
    if net.decoder is None:
        raise ValueError("latent_traversal needs a net with a decoder (not a CNN-Classif or a stripped one)")
    with eval_mode(net):
        mu = net.latent(net.encoder(x.reshape(1, *x.shape[-3:])))[0][0]
        values = torch.linspace(-span, span, steps, device=mu.device, dtype=mu.dtype)
        z = mu.repeat(len(mu), steps, 1)  # (dim swept, step, latent)
        dims = torch.arange(len(mu), device=mu.device)
        z[dims, :, dims] = values
        out = net.decoder(z.reshape(-1, len(mu)))
    images = torch.sigmoid(out) if likelihood == "bernoulli" else out
    return torchvision.utils.make_grid(images.cpu(), nrow=steps, pad_value=0.5)


class DCI(NamedTuple):
    """Eastwood & Williams (2018): ``disentanglement`` (each code explains one factor), ``completeness`` (each factor
    is explained by one code), ``informativeness`` (mean test accuracy of the per-factor classifiers), and the
    (D, K) importance matrix they come from."""

    disentanglement: float
    completeness: float
    informativeness: float
    importance: np.ndarray


def dci_scores(importance: ArrayLike) -> tuple[float, float]:
    """Disentanglement and completeness of a (D codes, K factors) importance matrix, as disentanglement_lib:
    1 - entropy (base K) of each code's row, weighted by the code's share of the importance; 1 - entropy (base D)
    of each factor's column, weighted by the factor's share. An all-zero matrix weighs every entry alike."""
    r = np.abs(np.asarray(importance, dtype=np.float64))
    weights = r if r.sum() > 0 else np.ones_like(r)
    per_code = 1.0 - entropy(r.T + 1e-11, base=r.shape[1])
    per_factor = 1.0 - entropy(r + 1e-11, base=r.shape[0])
    return float(per_code @ (weights.sum(1) / weights.sum())), float(per_factor @ (weights.sum(0) / weights.sum()))


def dci(codes: ArrayLike, factors: ArrayLike, test_codes: ArrayLike, test_factors: ArrayLike, seed: int = 0) -> DCI:
    """DCI from (N, D) train codes and (N, K) integer factors, informativeness on the test pair: one
    GradientBoostingClassifier (scikit-learn's defaults, as disentanglement_lib) per factor; its feature_importances_
    are that factor's column of the importance matrix."""
    x, y = np.asarray(codes, dtype=np.float64), np.asarray(factors)
    x_test, y_test = np.asarray(test_codes, dtype=np.float64), np.asarray(test_factors)
    if y.ndim != 2 or len(y) != len(x) or y_test.shape[1:] != y.shape[1:] or len(y_test) != len(x_test):
        raise ValueError(f"codes/factors must be (N, D)/(N, K) pairs; got {x.shape}/{y.shape} and {x_test.shape}/{y_test.shape}")
    importance, accuracy = np.zeros((x.shape[1], y.shape[1])), []
    for k in range(y.shape[1]):
        model = GradientBoostingClassifier(random_state=seed).fit(x, y[:, k])
        importance[:, k] = np.abs(model.feature_importances_)
        accuracy.append(float(np.mean(model.predict(x_test) == y_test[:, k])))
    d, c = dci_scores(importance)
    return DCI(d, c, float(np.mean(accuracy)), importance)
