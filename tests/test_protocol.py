"""The study's protocol: fresh optimizer state at the branch point (carry as an option), layer-wise magnitude
pruning beside global, no decoder at recon_weight=0, the code version in metrics.json, seed-major study order."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from bvp.config import ConfigError
from bvp.identity import code_fingerprint, code_version
from bvp.run import prepare, pruner_of, train
from bvp.study import STUDIES, part_seeds, plan


def optimizer_state_after_branch(make_cfg, *overrides: str) -> int:
    """How many parameters have Adam state right after the branch step (0: fresh)."""
    cfg = make_cfg(*overrides, "cache_dir=null", "pruning.finetune_epochs=0")
    dm, module, trainer, _ = prepare(cfg, Path(cfg.output_dir))
    pruner, seen = pruner_of(trainer), []
    step = pruner.prune_step

    def spy(trainer_, module_, k):
        step(trainer_, module_, k)
        seen.append(sum(len(opt.state) for opt in trainer_.optimizers))

    pruner.prune_step = spy
    trainer.fit(module, datamodule=dm)
    return seen[0]


def test_fresh_optimizer_state_at_the_branch_point_and_carry_keeps_it(make_cfg) -> None:
    assert optimizer_state_after_branch(make_cfg) == 0  # the default: both models start fine-tuning alike
    assert optimizer_state_after_branch(make_cfg, "pruning.optimizer_state=carry") > 0


def test_layerwise_pruning_prunes_every_layer_by_the_amount_and_global_does_not(make_cfg) -> None:
    layerwise = train(make_cfg("pruning.amount=0.8", "pruning.use_global_unstructured=false", name="l"))
    per_layer = {k: v for k, v in layerwise["sparsity"].items() if k != "overall"}
    assert all(v == pytest.approx(0.8, abs=5e-3) for v in per_layer.values()), per_layer  # torch rounds per layer
    glob = train(make_cfg("pruning.amount=0.8", name="g"))
    assert glob["sparsity"]["overall"] == pytest.approx(0.8, abs=1e-4)
    spread = [v for k, v in glob["sparsity"].items() if k != "overall"]
    assert max(spread) - min(spread) > 0.05  # global magnitude ranks across layers: uneven per layer
    assert layerwise["identity"]["pruning.use_global_unstructured"] is False


def test_recon_weight_zero_builds_no_decoder_and_drops_the_reconstruction(make_cfg) -> None:
    cfg = make_cfg("model.recon_weight=0", "beta=4")
    module = instantiate(cfg.model, net={"in_shape": [1, 28, 28], "num_classes": 10})
    assert module.net.decoder is None and module.net.latent.logvar is not None  # still variational: a VIB classifier
    x, y = torch.rand(4, 1, 28, 28), torch.randint(0, 10, (4,))
    terms = module.loss_terms(module(x), x, y)
    assert "recon" not in terms and torch.allclose(terms["loss"], 10 * terms["ce"] + 4 * terms["kl"])
    assert not any(n.startswith("net.decoder") for n, _ in module.named_parameters())


def test_recon_weight_zero_warns_where_a_collapsed_posterior_is_the_optimum(make_cfg) -> None:
    def collapse_warnings(*overrides: str) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            instantiate(make_cfg(*overrides).model, net={"in_shape": [1, 28, 28], "num_classes": 10})
        return [str(w.message) for w in caught if "ignores the input" in str(w.message)]

    (line,) = collapse_warnings("model.recon_weight=0", "beta=10")  # beta >= cls_weight (10): the study's no_recon arm
    assert line.startswith("model.recon_weight=0 with beta=10 >= model.cls_weight=10:")
    assert collapse_warnings("model.recon_weight=0", "beta=4") == []  # beta < cls_weight: encoding the label pays
    assert collapse_warnings("beta=10") == []  # the reconstruction pays for the code


def test_cls_weight_zero_is_a_plain_beta_vae_and_is_refused_where_nothing_would_train(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("model.cls_weight=0", "beta=4", "pruning=none")
    module = instantiate(cfg.model, net={"in_shape": [1, 28, 28], "num_classes": 10})
    x, y = torch.rand(4, 1, 28, 28), torch.randint(0, 10, (4,))
    terms = module.loss_terms(module(x), x, y)
    assert torch.allclose(terms["loss"], terms["recon"] + 4 * terms["kl"])  # disentanglement_lib's beta-VAE loss
    terms["loss"].backward()
    assert all(p.grad is None or not p.grad.any() for p in module.net.head.parameters())  # the head learns nothing
    for extra, why in (("model=cnn", "CE is this model's whole loss"), ("model.recon_weight=0", "CE is this model's whole loss")):
        with pytest.raises(ConfigError) as err:
            train(make_cfg("model.cls_weight=0", extra, "pruning=none", name="refused"))
        assert any(line.startswith("model.cls_weight=0:") and why in line for line in err.value.errors), err.value.errors
    with pytest.raises(ConfigError) as err:  # pruned, it would fine-tune on cls_weight * CE = 0
        train(make_cfg("model.cls_weight=0", name="refused"))
    assert any(line.startswith("model.cls_weight=0:") and "pruning=none" in line for line in err.value.errors)
    assert not (tmp_path / "refused").exists()  # nothing written


def test_metrics_json_records_the_code_version(make_cfg, tmp_path: Path) -> None:
    record = json.loads((Path(train(make_cfg())["artifacts"]["exported"]).parent / "metrics.json").read_text())
    assert record["code"] == code_version()
    assert set(record["code"]) == {"commit", "dirty"}
    if record["code"]["commit"] is not None:  # a git checkout (CI clones one)
        assert len(record["code"]["commit"]) == 40 and isinstance(record["code"]["dirty"], bool)


def test_the_dense_cache_key_changes_with_the_training_code(
    make_cfg, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    first = train(make_cfg(name="a"))
    monkeypatch.setattr("bvp.run.code_fingerprint", lambda: "other code")
    with caplog.at_level("WARNING", logger="bvp.run"):
        second = train(make_cfg(name="b"))
    assert "other code trained it" in caplog.text and first["dense_source"]["path"] in caplog.text  # says why
    assert second["dense_source"]["trained_here"] and second["dense_source"]["path"] != first["dense_source"]["path"]
    assert len(code_fingerprint()) == 16


def test_a_study_runs_seed_major_and_every_part_lists_its_seeds() -> None:
    seeds = {"a": [0, 1, 2], "b": [0, 1]}
    assert plan(("a", "b"), seeds) == [(0, "a"), (0, "b"), (1, "a"), (1, "b"), (2, "a")]
    for part in (p for parts in STUDIES.values() for p in parts):  # each part's config exists and lists seeds from 0
        assert part_seeds(part)[0] == 0
    assert part_seeds("mnist_curves") == list(range(10))
    assert part_seeds("cifar10_cnn") == part_seeds("cifar10_curves") == list(range(5))  # inherited, not repeated


def test_a_study_takes_overrides_after_its_options_and_stops_at_a_refused_sweep(monkeypatch, tmp_path: Path) -> None:
    """make study-quick ARGS=... puts the overrides after --quick. A sweep refused as a whole for a bad setting (exit
    2, no job launched) would be refused again for every other seed and part, so the study stops there with that
    status; a sweep that launched its jobs and had one refused (also exit 2) is a failed sweep: the study goes on."""
    import subprocess
    import time

    from bvp import study
    from bvp.io import atomic_write_json

    def sweep(status: int, launched: bool):
        def run(cmd: list[str]) -> subprocess.CompletedProcess:
            calls.append(cmd)
            if launched:  # as bvp.sweep.SweepProgress stamps it when the jobs start
                folder = Path(next(a for a in cmd if a.startswith("hydra.sweep.dir=")).split("=", 1)[1])
                atomic_write_json(folder / "sweep.json", {"jobs": [], "refused": [], "invocation": {"started": time.time()}})
            return subprocess.CompletedProcess(cmd, status)

        return run

    calls: list[list[str]] = []
    for case, (status, launched, expected, runs) in enumerate(((0, True, 0, 2), (2, False, 2, 1), (2, True, 1, 2))):
        calls.clear()
        monkeypatch.setattr(subprocess, "run", sweep(status, launched))
        assert study.main(["fashion_mnist", "--quick", "beta=3", "--root", str(tmp_path / str(case))]) == expected
        assert all(cmd[-1] == "beta=3" for cmd in calls) and len(calls) == runs


def test_study_records_copy_finished_runs_only_without_checkpoints(tmp_path: Path) -> None:
    from bvp.io import atomic_write_json
    from bvp.study import copy_records

    root, dest = tmp_path / "outputs", tmp_path / "docs"
    for name, status in (("a", "done"), ("b", "running")):
        atomic_write_json(root / "curves" / name / "metrics.json", {"status": status})
        (root / "curves" / name / ".hydra").mkdir()
        (root / "curves" / name / ".hydra" / "overrides.yaml").write_text("- seed=0\n")
        (root / "curves" / name / "checkpoints").mkdir()
        (root / "curves" / name / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    (root / "curves" / "multirun.yaml").write_text("hydra: {}\n")
    assert copy_records(root, dest) == 1 == copy_records(root, dest)  # idempotent
    copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert copied == ["curves/a/.hydra/overrides.yaml", "curves/a/metrics.json", "curves/multirun.yaml"]
