"""Networks: a conv encoder sized for the input, a latent layer, an MLP head and an optional decoder.

Beta-VAE-Classif and CNN-Classif share the encoder and head and differ only in the latent
(Gaussian vs deterministic) and the decoder, so both expose the same prunable part.

The encoder's convs double their channels from ``width`` with 4x4 kernels, unless ``channels`` and
``kernel_sizes`` list them conv by conv. ``model/net=dsprites`` (conf/model/net/dsprites.yaml) lists those of
disentanglement_lib's ``conv_encoder``/``deconv_decoder`` (Locatello et al. 2019, "Challenging Common Assumptions
in the Unsupervised Learning of Disentangled Representations", ICML; methods/shared/architectures.py): convs of
32, 32, 64, 64 channels with 4x4, 4x4, 2x2, 2x2 kernels at stride 2, a 256-unit dense layer, and the mirror
decoder (dense 256, dense 64x4x4, transposed 4x4 convs of 64, 32, 32 and 1 channels at stride 2).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from bvp.rules import Derived, Integer, Integers, Rules, Spec


class Output(NamedTuple):
    logits: Tensor
    mu: Tensor
    logvar: Tensor | None  # None for the deterministic latent
    recon: Tensor | None  # decoder logits/means; None without a decoder


def conv_sizes(size: int) -> list[int]:
    """Spatial sizes after each stride-2 conv: halve while even and >= 4 (28->14->7, 32->16->8->4)."""
    sizes = [size]
    while sizes[-1] % 2 == 0 and sizes[-1] // 2 >= 4:
        sizes.append(sizes[-1] // 2)
    return sizes[1:]


def conv_channels(in_channels: int, size: int, width: int, channels: Sequence[int] | None = None) -> list[int]:
    """Channels from the input through each stride-2 conv: ``channels`` as listed, else width doubling at every conv."""
    if channels is not None:
        return [in_channels, *channels]
    return [in_channels] + [width * 2**i for i in range(len(conv_sizes(size)))]


def halving_conv(c_in: int, c_out: int, kernel: int) -> nn.Conv2d:
    """A stride-2 conv that halves an even side whatever its kernel size (TensorFlow's "same" padding there):
    padding (k - 1) // 2, so 1 for 4x4 (what the MNIST/CIFAR networks always had) and 0 for 2x2."""
    return nn.Conv2d(c_in, c_out, kernel, stride=2, padding=(kernel - 1) // 2)


class Encoder(nn.Module):
    """Stride-2 convs (4x4 with width doubling each time, or ``channels``/``kernel_sizes`` conv by conv) then a
    dense layer: image -> hidden features."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        width: int,
        hidden_dim: int,
        channels: Sequence[int] | None = None,
        kernel_sizes: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        chans, side = conv_channels(in_shape[0], in_shape[1], width, channels), conv_sizes(in_shape[1])[-1]
        kernels = list(kernel_sizes) if kernel_sizes is not None else [4] * (len(chans) - 1)
        layers: list[nn.Module] = []
        for (c_in, c_out), k in zip(itertools.pairwise(chans), kernels, strict=True):
            layers += [halving_conv(c_in, c_out, k), nn.ReLU()]
        self.out_shape = (chans[-1], side, side)
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(chans[-1] * side * side, hidden_dim), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """Mirror of the encoder with transposed convs: latent -> per-pixel logits (or means)."""

    def __init__(
        self,
        latent_dim: int,
        hidden_dim: int,
        in_shape: tuple[int, int, int],
        width: int,
        channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        chans, side = conv_channels(in_shape[0], in_shape[1], width, channels)[::-1], conv_sizes(in_shape[1])[-1]
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, chans[0] * side * side),
            nn.ReLU(),
            nn.Unflatten(1, (chans[0], side, side)),
        ]
        for c_in, c_out in itertools.pairwise(chans):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])  # no activation on the output: logits or means

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class GaussianLatent(nn.Module):
    """q(z|x) = N(mu, diag(exp(logvar))); once ``logvar`` is dropped (the deployed classifier), z = mu."""

    def __init__(self, hidden_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.mu = nn.Linear(hidden_dim, latent_dim)
        self.logvar: nn.Linear | None = nn.Linear(hidden_dim, latent_dim)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.mu(h), self.logvar(h) if self.logvar is not None else None


class DeterministicLatent(nn.Module):
    """z = W h + b, the same size as the Gaussian latent's mean."""

    def __init__(self, hidden_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.mu = nn.Linear(hidden_dim, latent_dim)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.mu(h), None


class LatentClassifier(nn.Module):
    """encoder -> latent -> head (+ decoder). The head reads sampled z in training, mu in eval."""

    variational: bool = False
    has_decoder: bool = False
    SETTINGS: ClassVar[dict[str, Spec]] = {  # model.net.<key>
        "in_shape": Derived("the dataset (its images' shape)"),
        "num_classes": Derived("the dataset (its classes; dataset.target_factor for dsprites)"),
        "latent_dim": Integer(ge=1, example=10),
        "hidden_dim": Integer(ge=1, example=256),
        "width": Integer(ge=1, example=32),
        "head_dim": Integer(ge=1, example=128),
        "channels": Integers(ge=1, null=True, example="[32,32,64,64]"),  # null: width doubling at every conv
        "kernel_sizes": Integers(ge=1, null=True, example="[4,4,2,2]"),  # null: 4x4 at every conv
    }

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        num_classes: int = 10,
        latent_dim: int = 10,
        hidden_dim: int = 256,
        width: int = 32,
        head_dim: int = 128,
        channels: Sequence[int] | None = None,
        kernel_sizes: Sequence[int] | None = None,
    ) -> None:
        """``channels``/``kernel_sizes``: each stride-2 conv's output channels and kernel size, one per conv the
        input takes (``conv_sizes``: 4 for 64x64, 2 for 28x28); ``width`` is then ``channels[0]``. The decoder
        mirrors the channels with 4x4 transposed convs whatever the encoder's kernels."""
        rules = Rules.of(self.SETTINGS, locals())  # refused before any layer is built
        if not rules.errors:
            check_conv_lists(rules, in_shape, width, channels, kernel_sizes)
        rules.check()
        super().__init__()
        self.in_shape, self.latent_dim = tuple(in_shape), latent_dim
        channels = list(channels) if channels is not None else None
        self.encoder = Encoder(self.in_shape, width, hidden_dim, channels, kernel_sizes)
        self.latent = (GaussianLatent if self.variational else DeterministicLatent)(hidden_dim, latent_dim)
        self.head = nn.Sequential(nn.Linear(latent_dim, head_dim), nn.ReLU(), nn.Linear(head_dim, num_classes))
        self.decoder = Decoder(latent_dim, hidden_dim, self.in_shape, width, channels) if self.has_decoder else None

    def forward(self, x: Tensor) -> Output:
        mu, logvar = self.latent(self.encoder(x))
        z = mu
        if self.training and logvar is not None:  # reparameterisation trick: z = mu + sigma * eps
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        recon = self.decoder(z) if self.decoder is not None else None
        return Output(self.head(z), mu, logvar, recon)

    def classifier(self) -> nn.Sequential:
        """The deployed inference path: encoder -> latent mean -> head (shares these modules). This is the
        prunable part, and all that is left after ``strip``."""
        return nn.Sequential(self.encoder, self.latent.mu, self.head)

    def strip(self, keep_decoder: bool = False, keep_logvar: bool = False) -> None:
        """Remove the parts the deployed classifier does not use: the decoder and the log-variance layer."""
        if not keep_decoder:
            self.decoder = None
        if not keep_logvar and isinstance(self.latent, GaussianLatent):
            self.latent.logvar = None


def check_conv_lists(
    rules: Rules,
    in_shape: Sequence[int],
    width: int,
    channels: Sequence[int] | None,
    kernel_sizes: Sequence[int] | None,
) -> None:
    """``channels`` and ``kernel_sizes`` hold one entry per stride-2 conv of this input, and ``width`` agrees."""
    sides = [in_shape[1], *conv_sizes(in_shape[1])]
    convs, path = len(sides) - 1, "->".join(str(s) for s in sides)
    examples = {"channels": [width * 2**i for i in range(convs)], "kernel_sizes": [4] * convs}
    for key, value in (("channels", channels), ("kernel_sizes", kernel_sizes)):
        if value is not None and len(value) != convs:
            example = ",".join(str(v) for v in examples[key])
            what = f"the {sides[0]}x{sides[0]} input takes {convs} stride-2 convs ({path}): give {convs} values"
            rules.add(key, list(value), f"{what}, e.g. {key}=[{example}]")
    if channels is not None and len(channels) and width != channels[0]:
        rules.add("width", width, f"must be channels[0] when channels is set; write width={channels[0]}")


class BetaVAEClassif(LatentClassifier):
    """Beta-VAE with a classifier head on the latent (Beta-VAE-Classif)."""

    variational = True
    has_decoder = True


class CNNClassif(LatentClassifier):
    """Baseline: the same encoder and head with a deterministic latent and no decoder (CNN-Classif)."""


def match_shapes(net: nn.Module, state_dict: Mapping[str, Tensor], prefix: str = "") -> list[str]:
    """Resize every Conv2d/Linear of ``net`` in place to the shapes its weights have in ``state_dict`` (keys
    ``prefix + path``), so that a checkpoint of a structurally pruned network loads into a freshly built one.
    The new parameters are uninitialised; load the state_dict next. Returns the paths of the resized layers."""
    resized = []
    for name, m in net.named_modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)) or f"{prefix}{name}.weight" not in state_dict:
            continue
        changed = False
        for pname in ("weight", "bias"):
            p, key = getattr(m, pname), f"{prefix}{name}.{pname}"
            if p is not None and key in state_dict and state_dict[key].shape != p.shape:
                setattr(m, pname, nn.Parameter(p.new_empty(state_dict[key].shape), requires_grad=p.requires_grad))
                changed = True
        if changed:
            w = m.weight.shape
            if isinstance(m, nn.Linear):
                m.out_features, m.in_features = w[0], w[1]
            else:
                m.out_channels, m.in_channels = w[0], w[1] * m.groups
            resized.append(name)
    if isinstance(net, LatentClassifier):
        net.latent_dim = net.latent.mu.out_features
    return resized
