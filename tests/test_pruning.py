"""Pruning: sparsity, masks held through fine-tuning, decoder gone, compression, export, resume."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from bvp.evaluation.compression import compression_figures, count_nonzero, count_params
from bvp.export import cpu_state_dict, decode_sparse, encode_sparse, export_classifier, load_sparse_state_dict, saved_bytes
from bvp.models import BetaVAEClassif
from bvp.pruning import DecoderStripPruning, scope_parameters, sparsity_report
from bvp.run import build, train
from tests.test_branching import assert_same_weights


def test_global_l1_matches_torch_and_hits_the_amount() -> None:
    torch.manual_seed(0)
    net = BetaVAEClassif((1, 28, 28), latent_dim=4, hidden_dim=32, width=8, head_dim=16)
    reference = copy.deepcopy(net)
    cb = DecoderStripPruning(amount=0.3)
    cb._parameters_to_prune = scope_parameters(net, list(cb.scope), ["weight"])
    cb.apply_pruning(0.3)
    ref_params = scope_parameters(reference, ["encoder", "latent", "head"], ["weight"])
    prune.global_unstructured(ref_params, pruning_method=prune.L1Unstructured, amount=0.3)
    for (m, n), (rm, rn) in zip(cb._parameters_to_prune, ref_params, strict=True):
        assert torch.equal(getattr(m, f"{n}_mask"), getattr(rm, f"{rn}_mask"))
    total = sum(getattr(m, n).numel() for m, n in ref_params)
    assert sparsity_report(net, cb._parameters_to_prune)["overall"] == pytest.approx(round(0.3 * total) / total)
    assert all(not hasattr(m, "weight_mask") for m in net.decoder.modules())  # the decoder is never pruned
    assert all(not hasattr(m, "bias_mask") for m, _ in cb._parameters_to_prune)  # biases off by default


class Probe:
    """Captures state around the prune epoch from inside a real fit."""

    def __init__(self) -> None:
        self.after_prune: dict[str, torch.Tensor] = {}
        self.decoder_ids: set[int] = set()


def test_prune_epoch_strips_decoder_and_masks_hold_through_finetuning(make_cfg, tmp_path: Path) -> None:
    cfg = make_cfg("epochs=2", "finetune_epochs=2")
    dm, module, trainer = build(cfg)
    decoder_ids = {id(p) for p in module.net.decoder.parameters()}
    pruner = next(cb for cb in trainer.callbacks if isinstance(cb, DecoderStripPruning))
    snapshots: dict[str, dict[str, torch.Tensor]] = {}
    original = pruner.on_train_epoch_end

    def spy(trainer_, pl_module):
        original(trainer_, pl_module)
        if pl_module.current_epoch == 1:
            snapshots["after_prune"] = {
                f"{i}": getattr(m, n).detach().clone() for i, (m, n) in enumerate(pruner._parameters_to_prune)
            }

    pruner.on_train_epoch_end = spy
    trainer.fit(module, datamodule=dm)

    assert module.net.decoder is None and module.finetuning
    in_optimizer = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert not in_optimizer & decoder_ids
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert not any(".decoder." in key for key in ckpt["state_dict"])

    changed = False
    for i, (m, n) in enumerate(pruner._parameters_to_prune):
        before, after = snapshots["after_prune"][f"{i}"], getattr(m, n)
        assert torch.all(after[before == 0] == 0)  # pruned weights are still exactly zero
        changed |= not torch.equal(before, after)
    assert changed  # fine-tuning did move the surviving weights
    assert sparsity_report(module.net, pruner._parameters_to_prune)["overall"] == pytest.approx(0.5, abs=1e-4)
    results = pruner.results
    assert {"dense_val_acc", "dense_test_acc", "pruned_val_acc", "pruned_test_acc"} <= set(results)


def test_compression_figures_on_a_hand_built_model() -> None:
    layer = nn.Linear(100, 10)  # 1000 weights + 10 biases
    with torch.no_grad():
        layer.weight.view(-1)[:600] = 0.0  # 600 known zeros
        layer.bias.fill_(1.0)
    figures = compression_figures(full_model_params=3030, classifier=layer, dense_classifier_params=count_params(layer))
    assert count_nonzero(layer) == 410 and figures["nonzero_classifier"] == 410
    assert figures["compression_ratio"] == pytest.approx(1010 / 410)
    assert figures["compression_ratio_full"] == pytest.approx(3030 / 410)
    encoded = encode_sparse(cpu_state_dict(layer))
    assert figures["bytes_sparse"] == len(saved_bytes(encoded))
    assert figures["bytes_dense"] == len(saved_bytes(cpu_state_dict(layer)))
    assert figures["compression_ratio_bytes"] == pytest.approx(figures["bytes_dense"] / figures["bytes_sparse"])
    assert figures["compression_ratio_bytes"] > 1.0
    decoded = decode_sparse(encoded)
    assert all(torch.equal(decoded[k], v) for k, v in layer.state_dict().items())


def test_export_reloads_in_plain_pytorch_with_identical_logits(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = BetaVAEClassif((3, 32, 32), latent_dim=4, hidden_dim=32, width=8, head_dim=16).eval()
    classifier = net.classifier()
    with torch.no_grad():
        classifier[0].net[0].weight[:, :, :2] = 0.0
    x = torch.randn(5, 3, 32, 32)
    paths = export_classifier(classifier, x[:2], tmp_path)
    loaded = torch.export.load(paths["exported"]).module()
    assert torch.equal(loaded(x), classifier(x))  # another batch size than the example: dynamic batch
    restored = copy.deepcopy(classifier)
    restored.load_state_dict(load_sparse_state_dict(paths["sparse_state_dict"]))
    assert torch.equal(restored(x), classifier(x))


@pytest.mark.parametrize(
    ("crash", "epochs_left"),
    [("+callbacks.crash.epoch=2", 2), ("+callbacks.crash.epoch=3", 1), ("+callbacks.crash.at_end=true", 0)],
    ids=["right-after-pruning", "during-finetuning", "after-last-epoch"],
)
def test_killed_run_resumes_to_the_same_final_metrics(make_cfg, crash: str, epochs_left: int) -> None:
    overrides = ("epochs=2", "finetune_epochs=2")
    whole = train(make_cfg(*overrides, name="whole"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg(*overrides, "+callbacks.crash._target_=helpers.CrashAt", crash, name="resumed"))
    resumed = train(make_cfg(*overrides, name="resumed"))  # same folder: picks up checkpoints/last.ckpt
    assert resumed["status"] == "done"
    assert resumed["timing"]["epochs_timed"] == epochs_left  # it resumed rather than starting over
    keys = ("finetuned_test_acc", "finetuned_val_acc", "dense_test_acc", "pruned_test_acc", "compression_ratio")
    keys += ("nonzero_classifier",)
    for key in keys:
        assert resumed["metrics"][key] == whole["metrics"][key], key
    assert_same_weights(resumed, whole)
    assert resumed["sparsity"] == whole["sparsity"]


def test_resume_true_continues_the_newest_unfinished_run_with_the_same_config(make_cfg, monkeypatch) -> None:
    from bvp.config import ConfigError
    from bvp.module import ClassifModule

    overrides = ("epochs=2", "finetune_epochs=2")
    with pytest.raises(ConfigError, match="resume=true: no unfinished run"):
        train(make_cfg(*overrides, "resume=true", name="runs/day/t0"))
    whole = train(make_cfg(*overrides, name="whole"))

    original = ClassifModule.on_train_epoch_start

    def killed_at_epoch_3(self):
        if self.current_epoch == 3:
            raise RuntimeError("killed")
        original(self)

    monkeypatch.setattr(ClassifModule, "on_train_epoch_start", killed_at_epoch_3)
    with pytest.raises(RuntimeError, match="killed"):
        train(make_cfg(*overrides, name="runs/day/t1"))
    monkeypatch.setattr(ClassifModule, "on_train_epoch_start", original)
    resumed = train(make_cfg(*overrides, "resume=true", name="runs/day/t2"))  # a new run folder
    assert resumed["timing"]["epochs_timed"] == 1
    assert resumed["metrics"]["finetuned_test_acc"] == whole["metrics"]["finetuned_test_acc"]
    assert resumed["metrics"]["dense_kl_dims"] == whole["metrics"]["dense_kl_dims"]
    # the folder it resumed says where it was finished, so resume=true does not train it a second time
    from bvp.io import read_json

    old = read_json(Path(make_cfg(name="runs/day/t1").output_dir) / "metrics.json")
    assert old["status"] == "resumed" and old["error"] == f"resumed in {make_cfg(name='runs/day/t2').output_dir}"
    with pytest.raises(ConfigError, match="resume=true: no unfinished run"):
        train(make_cfg(*overrides, "resume=true", name="runs/day/t3"))
