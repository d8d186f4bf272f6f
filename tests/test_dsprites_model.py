"""Issue 20: disentanglement_lib's dSprites network (model/net=dsprites), the disentanglement monitor
(callbacks=disentanglement) and the pilot experiment; their bad settings refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn

from bvp.config import ConfigError
from bvp.evaluation.compression import count_params
from bvp.evaluation.disentanglement import mig
from bvp.evaluation.monitor import DisentanglementMonitor, curves, disentanglement_point
from bvp.models import BetaVAEClassif, CNNClassif
from bvp.names import CURVE, CURVE_FIELDS
from bvp.pruning.structured import prune_channels
from bvp.run import build, train
from tests.conftest import CONF
from tests.test_config import LINE
from tests.test_train import scalars

# disentanglement_lib/methods/shared/architectures.py: conv_encoder and deconv_decoder, written out layer by layer
# (kind, in, out, kernel); TensorFlow's stride-2 "same" padding halves every side, so the outputs are 32, 16, 8, 4
ENCODER = [("conv", 1, 32, 4), ("conv", 32, 32, 4), ("conv", 32, 64, 2), ("conv", 64, 64, 2), ("dense", 64 * 4 * 4, 256, 1)]
LATENT = [("dense", 256, 10, 1), ("dense", 256, 10, 1)]  # means, log_var
DECODER = [("dense", 10, 256, 1), ("dense", 256, 1024, 1)] + [
    ("deconv", c_in, c_out, 4) for c_in, c_out in ((64, 64), (64, 32), (32, 32), (32, 1))
]
HEAD = [("dense", 10, 128, 1), ("dense", 128, 3, 1)]  # bvp's classifier head (disentanglement_lib has none)
SPRITES = ("dataset=dsprites", "dataset.source=procedural", "dataset.train_size=128", "dataset.val_size=200")
SPRITES += ("dataset.test_size=100", "dataset.eval_batch_size=100")
EVERY = "callbacks.disentanglement.every_n_epochs"
TINY_NET = ("model/net=dsprites", "model.net.width=8", "model.net.channels=[8,8,16,16]")  # TINY's width is 8


def params(table: list[tuple[str, int, int, int]]) -> int:
    return sum(c_in * c_out * k * k + c_out for _, c_in, c_out, k in table)


def layers(module: nn.Module) -> list[tuple[str, int, int, int]]:
    kinds = {nn.Conv2d: "conv", nn.ConvTranspose2d: "deconv", nn.Linear: "dense"}
    out = []
    for m in module.modules():
        if type(m) in kinds:
            c_in, c_out = (m.in_channels, m.out_channels) if not isinstance(m, nn.Linear) else (m.in_features, m.out_features)
            out.append((kinds[type(m)], c_in, c_out, m.kernel_size[0] if not isinstance(m, nn.Linear) else 1))
    return out


def pilot_net(cls: str = "beta_vae") -> BetaVAEClassif:
    """The network experiment=dsprites_pilot builds (with model=cnn: the baseline on the same encoder)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=dsprites_pilot", f"model={cls}"])
    torch.manual_seed(0)
    return instantiate(cfg.model.net, in_shape=[1, 64, 64], num_classes=3)


def test_the_dsprites_net_is_disentanglement_libs_layer_by_layer() -> None:
    net = pilot_net()
    assert layers(net.encoder) == ENCODER and layers(net.latent) == LATENT
    assert layers(net.decoder) == DECODER and layers(net.head) == HEAD
    assert count_params(net) == params(ENCODER + LATENT + DECODER) + params(HEAD) == 690_517 + 1_795
    x = torch.rand(2, 1, 64, 64)
    sides = [h.shape[-1] for h in outputs_of(net.encoder.net, x) if h.ndim == 4]
    assert sides == [32, 32, 16, 16, 8, 8, 4, 4]  # each conv (and its ReLU) halves the side
    out = net(x)
    assert out.logits.shape == (2, 3) and out.mu.shape == out.logvar.shape == (2, 10) and out.recon.shape == x.shape
    cnn = pilot_net("cnn")
    assert layers(cnn.encoder) == ENCODER and cnn.decoder is None and layers(cnn.head) == HEAD


def outputs_of(seq: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    outs = []
    for layer in seq:
        x = layer(x)
        outs.append(x)
    return outs


def test_mnist_and_cifar_networks_are_unchanged() -> None:
    """Without channels/kernel_sizes the encoder is 4x4 convs doubling from width, as before issue 20."""
    assert [layer[1:] for layer in layers(BetaVAEClassif((1, 28, 28)).encoder)] == [(1, 32, 4), (32, 64, 4), (3136, 256, 1)]
    assert count_params(BetaVAEClassif((1, 28, 28))) == 1_686_367 and count_params(CNNClassif((3, 32, 32))) == 695_412
    explicit = BetaVAEClassif((3, 32, 32), channels=[32, 64, 128], kernel_sizes=[4, 4, 4])
    assert repr(explicit) == repr(BetaVAEClassif((3, 32, 32)))


def test_structured_pruning_removes_channels_of_the_dsprites_net() -> None:
    net = pilot_net()
    result = prune_channels(net, 0.5, torch.zeros(2, 1, 64, 64))
    assert [m.out_channels for m in net.encoder.net if isinstance(m, nn.Conv2d)] == [16, 16, 32, 32]
    assert [m.kernel_size for m in net.encoder.net if isinstance(m, nn.Conv2d)] == [(4, 4), (4, 4), (2, 2), (2, 2)]
    assert result.fractions()["params_removed"] > 0.5 and net(torch.zeros(2, 1, 64, 64)).recon.shape == (2, 1, 64, 64)


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (("model.net.channels=[8,8,16]",), "model.net.channels=[8, 8, 16]: the 64x64 input takes 4 stride-2 convs"),
        (("model.net.kernel_sizes=[4,4]",), "model.net.kernel_sizes=[4, 4]: the 64x64 input takes 4 stride-2 convs"),
        (("model.net.width=16",), "model.net.width=16: must be channels[0] when channels is set; write model.net.width=8"),
        (("model.net.channels=[8,0,16,16]",), "model.net.channels=[8, 0, 16, 16]: must be a non-empty list of integers"),
    ],
)
def test_channel_lists_that_do_not_fit_the_input_are_refused(overrides: tuple[str, ...], line: str, make_cfg) -> None:
    with pytest.raises(ConfigError) as err:
        build(make_cfg(*SPRITES, *TINY_NET, *overrides, "pruning=none"))
    assert any(e.startswith(line) for e in err.value.errors) and all(LINE.match(e) for e in err.value.errors), err.value.errors


def test_the_monitor_is_off_by_default_and_on_in_the_pilot() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        default, pilot = compose("train"), compose("train", overrides=["experiment=dsprites_pilot"])
    assert "disentanglement" not in default.callbacks
    assert pilot.callbacks.disentanglement.every_n_epochs == 1 and pilot.callbacks.disentanglement.metrics == ["mig"]
    assert (pilot.beta, pilot.seed, pilot.lr, pilot.batch_size) == (4, 0, 1e-4, 64)
    assert pilot.epochs * pilot.dataset.train_size == 3_000_000  # the stated budget: 30 epochs of 100,000 sprites
    assert pilot.model.net.channels == [32, 32, 64, 64] and "_target_" not in pilot.pruning


def test_a_point_scores_mig_per_factor_and_dci() -> None:
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 4, (400, 2))
    codes = np.concatenate([factors + rng.normal(0, 0.1, factors.shape), rng.normal(size=(400, 1))], axis=1)
    point = disentanglement_point(codes, factors, ["a", "b"], ["mig", "dci"])
    assert point["mig"] == pytest.approx(mig(codes, factors)) == pytest.approx(np.mean(list(point["mig_per_factor"].values())))
    assert point["mig"] > 0.9 and point["dci_disentanglement"] > 0.8 and point["dci_informativeness"] > 0.9
    assert set(point) <= set(CURVE_FIELDS)


def test_the_monitor_records_a_mig_series_while_training(make_cfg, tmp_path: Path) -> None:
    dm, module, trainer = build(make_cfg(*SPRITES, *TINY_NET, "callbacks=disentanglement", "pruning=none"))
    trainer.fit(module, datamodule=dm)
    series = curves(trainer.callbacks)[CURVE]
    points = [(p["epoch"], p["step"], p["samples"], p["stage"]) for p in series]  # 128 sprites = 4 batches of 32
    assert points == [(0, 0, 0, "dense"), (1, 4, 128, "dense"), (2, 8, 256, "dense")]
    assert all(0 <= p["mig"] <= 1 and 0 <= p["val_acc"] <= 1 and set(p) <= set(CURVE_FIELDS) for p in series)
    assert list(series[-1]["mig_per_factor"]) == ["shape", "scale", "orientation", "pos_x", "pos_y"]
    _, values = scalars(tmp_path / "run")
    assert len(values["disentanglement/mig"]) == 3 and values["disentanglement/samples"] == [0, 128, 256]
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)["callbacks"]
    assert saved["DisentanglementMonitor"] == {"samples": 256, "history": series}  # a resumed run keeps its curve


def test_a_pruned_run_with_the_monitor_measures_the_dense_and_the_finetuned_model(make_cfg, monkeypatch) -> None:
    monitors: list[DisentanglementMonitor] = []
    monkeypatch.setattr(DisentanglementMonitor, "setup", lambda self, *args, **kwargs: monitors.append(self))
    every = "callbacks.disentanglement.every_n_epochs=2"
    dci = ("callbacks.disentanglement.metrics=[mig,dci]", "callbacks.disentanglement.finetune_metrics=[mig]")
    record = train(make_cfg(*SPRITES, *TINY_NET, "callbacks=disentanglement", every, *dci, "pruning=structured", "logger=none"))
    series = monitors[0].history  # 2 dense epochs, pruned at the end of the second, 1 fine-tuning epoch
    assert [(p["epoch"], p["stage"]) for p in series] == [(0, "dense"), (2, "dense"), (3, "finetune")]
    assert all(0 <= p["mig"] <= 1 for p in series) and record["metrics"]["params_removed"] > 0.4
    # DCI of the dense model (it costs minutes at 10,000 points), MIG alone after the branch point
    assert ["dci_disentanglement" in p for p in series] == [True, True, False]
    assert record[CURVE] == series  # once bvp/run.py merges curves(trainer.callbacks): record[CURVE] == series


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (("callbacks=disentanglement",), "callbacks.disentanglement.metrics=['mig']: dataset=mnist has no ground-truth factors"),
        (
            ("callbacks=disentanglement", "callbacks.disentanglement.metrics=[dci]", "dataset=cifar10"),
            "callbacks.disentanglement.metrics=['dci']: dataset=cifar10 has no ground-truth factors",
        ),
        (
            (*SPRITES, "callbacks=disentanglement", "callbacks.disentanglement.factors=[shape,colour]"),
            "callbacks.disentanglement.factors=['shape', 'colour']: must be a non-empty subset of ['shape', 'scale',",
        ),
        (
            (*SPRITES, "callbacks=disentanglement", "callbacks.disentanglement.finetune_metrics=[mig,sap]"),
            "callbacks.disentanglement.finetune_metrics=['mig', 'sap']: must be a non-empty subset of ['mig', 'dci']",
        ),
        *(
            ((*SPRITES, "callbacks=disentanglement", f"{EVERY}={n}"), f"{EVERY}={r}: must be an integer >= 1, e.g. {EVERY}=5")
            for n, r in (("0", "0"), ("-2", "-2"), ("1.5", "1.5"), ("often", "'often'"))
        ),
    ],
)
def test_bad_monitor_settings_are_refused_before_anything_is_written(
    overrides: tuple[str, ...], line: str, make_cfg, tmp_path
) -> None:
    with pytest.raises(ConfigError) as err:
        train(make_cfg(*overrides))
    lines = err.value.errors
    assert any(e.startswith(line) for e in lines) and all(LINE.match(e) and "\n" not in e for e in lines), lines
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()  # nothing written


def test_the_monitor_refuses_a_factor_its_dataset_lacks_and_a_dataset_without_factors() -> None:
    with pytest.raises(ConfigError) as err:
        DisentanglementMonitor("bvp.data.mnist.MNISTDataModule", metrics=["mig", "dci"])
    assert err.value.errors == [
        "metrics=['mig', 'dci']: dataset=mnist has no ground-truth factors to score; use dataset=dsprites, "
        "or leave the disentanglement monitor out (callbacks=default)"
    ]
    monitor = DisentanglementMonitor("bvp.data.dsprites.DSpritesDataModule", factors=["pos_y", "shape"])
    assert monitor.columns == [4, 0]
