"""Config tree: every combination composes and builds; bad input fails before training, naming the key."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from hydra.utils import instantiate

from bvp.config import ConfigError, check_config
from bvp.run import build, train
from tests.conftest import CONF

GROUPS = {g: sorted(p.stem for p in (CONF / g).glob("*.yaml")) for g in ("dataset", "model", "pruning", "trainer")}


@pytest.mark.parametrize("combo", list(itertools.product(*GROUPS.values())), ids=lambda c: "-".join(c))
def test_every_combination_composes_and_builds(combo: tuple[str, ...], tmp_path: Path) -> None:
    overrides = [f"{g}={o}" for g, o in zip(GROUPS, combo, strict=True)] + [f"output_dir={tmp_path}", "trainer.accelerator=cpu"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    check_config(cfg)
    dm, module, trainer = build(cfg)
    assert module.net.in_shape == dm.shape
    assert (module.net.decoder is not None) == (combo[1] == "beta_vae")
    pruned = combo[2] != "none"
    assert trainer.max_epochs == (cfg.pruning.prune_epoch + cfg.pruning.finetune_epochs if pruned else cfg.epochs)
    assert any(type(cb).__name__ == "DecoderStripPruning" for cb in trainer.callbacks) == pruned


def test_experiment_configs_compose(tmp_path: Path) -> None:
    experiments = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
    assert {"paper", "quick"} <= set(experiments)
    for exp in experiments:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={exp}", f"output_dir={tmp_path}"])
        check_config(cfg)
        instantiate(cfg.dataset)


@pytest.mark.parametrize("group", ["dataset", "model"])
def test_unknown_choice_lists_the_valid_ones(group: str) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"), pytest.raises(MissingConfigException) as err:
        compose("train", overrides=[f"{group}=imagenet"])
    assert all(option in str(err.value) for option in GROUPS[group])


BAD = [
    ("beta=-1", "beta=-1"),
    ("beta=abc", "beta='abc'"),
    ("latent_dim=0", "latent_dim=0"),
    ("epochs=0", "epochs=0"),
    ("lr=0", "lr=0"),
    ("pruning.amount=1.0", "pruning.amount=1.0"),
    ("pruning.amount=-0.1", "pruning.amount=-0.1"),
    ("pruning.prune_epoch=5", "pruning.prune_epoch=5"),
    ("pruning.scope=[]", "pruning.scope=[]"),
    ("pruning.scope=[decoder]", "pruning.scope=['decoder']"),
    ("pruning.finetune_loss=mse", "pruning.finetune_loss='mse'"),
]


@pytest.mark.parametrize(("override", "named"), BAD, ids=[b[0] for b in BAD])
def test_bad_values_fail_before_training(override: str, named: str, make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg(override)
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert named in str(err.value) and "must be" in str(err.value)
    assert not (tmp_path / "run").exists()  # refused before anything was written
