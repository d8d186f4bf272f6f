"""Sparsity curves from one dense model: branches share the cached dense checkpoint, train it once even when
started together, never use a corrupt or foreign one, and resume; the fine-tune objectives keep what they say."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bvp.export import load_sparse_state_dict
from bvp.io import read_json
from bvp.pruning.branch import DenseCache
from bvp.run import train

ROOT = Path(__file__).resolve().parents[1]
SAME = ("finetuned_test_acc", "finetuned_val_acc", "pruned_test_acc", "dense_test_acc", "dense_kl_dims", "nonzero_classifier")


def assert_same_weights(a: dict, b: dict) -> None:
    """The two runs shipped bit-identical classifiers (tiny runs' accuracies alone can sit at chance level)."""
    wa, wb = (load_sparse_state_dict(r["artifacts"]["sparse_state_dict"]) for r in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def cache_of(record: dict) -> DenseCache:
    """The DenseCache a run used, rebuilt from the identity recorded beside its checkpoint."""
    path = Path(record["dense_source"]["path"])
    cache = DenseCache(path.parent.parent, json.loads((path.parent / "dense.json").read_text())["identity"])
    assert cache.ckpt == path
    return cache


def test_branches_share_one_dense_training_and_match_a_run_that_trained_its_own(make_cfg, tmp_path: Path) -> None:
    first = train(make_cfg("pruning.amount=0.5", name="a"))
    branch = train(make_cfg("pruning.amount=0.9", name="b"))
    alone = train(make_cfg("pruning.amount=0.9", f"cache_dir={tmp_path / 'other'}", name="c"))
    assert first["dense_source"]["trained_here"] and not branch["dense_source"]["trained_here"]
    assert branch["dense_source"]["path"] == first["dense_source"]["path"]
    assert first["timing"]["epochs_timed"] == 3 and branch["timing"]["epochs_timed"] == 1  # 2 dense + 1 fine-tune epochs
    assert branch["metrics"]["dense_test_acc"] == first["metrics"]["dense_test_acc"]
    assert branch["metrics"]["dense_kl_dims"] == first["metrics"]["dense_kl_dims"]
    assert branch["metrics"]["sparsity"] == pytest.approx(0.9, abs=1e-3)
    for key in SAME:  # starting from the cached dense model changes nothing
        assert branch["metrics"][key] == alone["metrics"][key], key
    assert_same_weights(branch, alone)


def test_random_pruning_draws_the_same_mask_whether_the_dense_model_was_trained_or_loaded(make_cfg, tmp_path: Path) -> None:
    overrides = ("pruning.pruning_fn=random_unstructured", "pruning.amount=0.7")
    trained = train(make_cfg(*overrides, name="a"))
    loaded = train(make_cfg(*overrides, "pruning.finetune_epochs=0", name="b"))  # other fine-tuning, same branch
    assert trained["dense_source"]["trained_here"] and not loaded["dense_source"]["trained_here"]
    assert loaded["metrics"]["pruned_test_acc"] == trained["metrics"]["pruned_test_acc"]
    alone = train(make_cfg(*overrides, "pruning.finetune_epochs=0", f"cache_dir={tmp_path / 'other'}", name="c"))
    assert_same_weights(loaded, alone)  # with no epoch after the branch, the shipped weights are the pruned ones


def test_no_cache_dir_means_every_run_trains_its_own_dense_model(make_cfg) -> None:
    first, second = (train(make_cfg("cache_dir=null", name=n)) for n in ("a", "b"))
    assert first["dense_source"] == second["dense_source"] == {"path": None, "trained_here": True}
    assert second["timing"]["epochs_timed"] == 3


def test_amount_zero_is_the_dense_model_with_the_same_finetuning(make_cfg) -> None:
    record = train(make_cfg("pruning.amount=0"))
    metrics = record["metrics"]
    assert metrics["sparsity"] == 0.0 and metrics["nonzero_classifier"] == metrics["params_classifier"]
    assert metrics["pruned_test_acc"] == metrics["dense_test_acc"]  # pruning nothing changes nothing
    assert "finetuned_test_acc" in metrics


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "other-config"])
def test_a_bad_cached_checkpoint_is_never_used(make_cfg, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    first = train(make_cfg("pruning.amount=0.5", name="a"))
    cache = cache_of(first)
    data = cache.ckpt.read_bytes()
    if damage == "truncated":
        cache.ckpt.write_bytes(data[: len(data) // 2])
    elif damage == "corrupt":
        cache.ckpt.write_bytes(data[:1000] + bytes(255 - b for b in data[1000:1100]) + data[1100:])
    else:
        meta = json.loads(cache.meta.read_text())
        meta["identity"]["beta"] = 123.0
        cache.meta.write_text(json.dumps(meta))
    again = train(make_cfg("pruning.amount=0.5", name="b"))
    assert again["dense_source"]["trained_here"]  # trained the dense model again
    assert "not using the cached dense model" in caplog.text
    assert again["metrics"]["dense_test_acc"] == first["metrics"]["dense_test_acc"]
    assert cache.problem() is None  # and cached a good one


def test_a_branch_killed_midway_resumes_to_the_same_metrics(make_cfg) -> None:
    overrides = ("epochs=2", "finetune_epochs=2", "pruning.amount=0.8")
    train(make_cfg("epochs=2", "finetune_epochs=2", name="dense"))  # fills the cache
    whole = train(make_cfg(*overrides, name="whole"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg(*overrides, "+callbacks.crash._target_=helpers.CrashAt", "+callbacks.crash.epoch=3", name="killed"))
    resumed = train(make_cfg(*overrides, name="killed"))
    assert resumed["timing"]["epochs_timed"] == 1 and not resumed["dense_source"]["trained_here"]
    for key in SAME:
        assert resumed["metrics"][key] == whole["metrics"][key], key
    assert_same_weights(resumed, whole)


def test_ctrl_c_records_an_interrupted_run_that_a_re_run_finishes(make_cfg, capsys: pytest.CaptureFixture[str]) -> None:
    """Lightning answers Ctrl-C with SystemExit(1); bvp records it as interrupted (not failed) and says how to go on."""
    crash = ("+callbacks.crash._target_=helpers.CrashAt", "+callbacks.crash.epoch=1", "+callbacks.crash.ctrl_c=true")
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as stop:
            train(make_cfg("epochs=2", *crash, name="stopped"))
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores SIGINT from then on, for its shutdown
    record = read_json(make_cfg(name="stopped").output_dir + "/metrics.json")
    assert stop.value.code == 130 and record["status"] == "interrupted", record["error"]
    assert record["error"] == "KeyboardInterrupt: stopped by the user"
    assert "add resume=true to the same command to resume it" in capsys.readouterr().err
    resumed = train(make_cfg("epochs=2", name="stopped"))
    assert resumed["status"] == "done" and resumed["timing"]["epochs_timed"] == 2  # epoch 0 was kept


def test_sigterm_records_an_interrupted_run_that_a_re_run_finishes(make_cfg, capsys: pytest.CaptureFixture[str]) -> None:
    """A scheduler's SIGTERM (preemption, `timeout`) is an interruption too: status interrupted, exit 143."""
    crash = ("+callbacks.crash._target_=helpers.CrashAt", "+callbacks.crash.epoch=1", "+callbacks.crash.sigterm=true")
    handler = signal.signal(signal.SIGTERM, lambda *_: None)  # never the default (kill pytest), whatever Lightning does
    try:
        with pytest.raises(SystemExit) as stop:
            train(make_cfg("epochs=2", *crash, name="stopped"))
    finally:
        signal.signal(signal.SIGTERM, handler)
    record = read_json(make_cfg(name="stopped").output_dir + "/metrics.json")
    assert stop.value.code == 143 and record["status"] == "interrupted", record["error"]
    assert record["error"] == "SIGTERM: stopped by a signal"
    assert "add resume=true to the same command to resume it" in capsys.readouterr().err
    resumed = train(make_cfg("epochs=2", name="stopped"))
    assert resumed["status"] == "done" and resumed["timing"]["epochs_timed"] == 2


def test_a_run_killed_before_the_branch_resumes_and_shares_its_dense_model(make_cfg, tmp_path: Path) -> None:
    overrides = ("epochs=3", f"cache_dir={tmp_path / 'fresh'}")
    whole = train(make_cfg(*overrides, f"cache_dir={tmp_path / 'reference'}", name="whole"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_cfg(*overrides, "+callbacks.crash._target_=helpers.CrashAt", "+callbacks.crash.epoch=1", name="killed"))
    resumed = train(make_cfg(*overrides, name="killed"))
    assert resumed["dense_source"]["trained_here"] and resumed["timing"]["epochs_timed"] == 3
    for key in SAME:
        assert resumed["metrics"][key] == whole["metrics"][key], key
    assert_same_weights(resumed, whole)
    assert cache_of(resumed).problem() is None


def test_two_processes_started_together_train_the_dense_model_once(mnist_root: Path, tmp_path: Path) -> None:
    from tests.conftest import TINY

    def start(amount: str, name: str) -> subprocess.Popen:
        args = [*TINY, f"data_dir={mnist_root}", f"cache_dir={tmp_path / 'cache'}", f"pruning.amount={amount}"]
        cmd = [sys.executable, "train.py", *args, f"hydra.run.dir={tmp_path / name}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    procs = [start("0.5", "a"), start("0.9", "b")]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    records = [json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("a", "b")]
    assert sorted(r["dense_source"]["trained_here"] for r in records) == [False, True]
    assert sorted(r["timing"]["epochs_timed"] for r in records) == [1, 3]
    assert records[0]["metrics"]["dense_test_acc"] == records[1]["metrics"]["dense_test_acc"]


def _mean_code_spread_after_finetuning(objective: str) -> tuple[float, float, float, float]:
    """Train a tiny Beta-VAE-Classif (beta = cls_weight = 1) densely, then fine-tune it on ``objective``'s loss:
    total variance of the latent mean over held-out data, before and after, and the KL before and after."""
    from functools import partial

    from bvp.losses import kl_per_dim
    from bvp.models import BetaVAEClassif
    from bvp.module import ClassifModule
    from bvp.objectives import OBJECTIVES
    from tests.conftest import class_images

    def images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = class_images(n, (28, 28), seed)
        return torch.tensor(x).float().div(255).unsqueeze(1), torch.tensor(y).long()

    def fit(module: ClassifModule, steps: int) -> None:
        opt = torch.optim.Adam(module.net.parameters(), lr=2e-3)
        gen = torch.Generator().manual_seed(0)
        for _ in range(steps):
            idx = torch.randint(0, len(x), (64,), generator=gen)
            loss = module.loss_terms(module(x[idx]), x[idx], y[idx])["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()

    @torch.no_grad()
    def spread_and_kl(module: ClassifModule) -> tuple[float, float]:
        out = module.net.eval()(x_test)
        module.net.train()
        kl = float(kl_per_dim(out.mu, out.logvar).sum(1).mean()) if out.logvar is not None else float("nan")
        return float(out.mu.var(0).sum()), kl

    torch.manual_seed(0)
    (x, y), (x_test, _) = images(512, 0), images(256, 1)
    net = BetaVAEClassif((1, 28, 28), latent_dim=4, hidden_dim=32, width=8, head_dim=16)
    module = ClassifModule(net, partial(torch.optim.Adam, lr=2e-3), beta=1.0, cls_weight=1.0)
    fit(module, 300)
    dense = spread_and_kl(module)
    module.enter_finetune(OBJECTIVES[objective])
    fit(module, 400)
    return (*dense, *spread_and_kl(module))


def test_ce_keeps_the_latent_mean_informative_where_ce_kl_collapses_it() -> None:
    spread, kl, ce_spread, _ = _mean_code_spread_after_finetuning("ce")
    assert ce_spread > spread  # CE alone keeps (here: widens) the spread of the codes the head reads
    spread_, kl_, ce_kl_spread, ce_kl_kl = _mean_code_spread_after_finetuning("ce_kl")
    assert (spread_, kl_) == (spread, kl)  # the same dense model
    # beta >= cls_weight: CE + beta*KL is minimised by a posterior that ignores x; fine-tuning heads there
    assert ce_kl_kl < 0.2 * kl and ce_kl_spread < 0.3 * spread


def test_full_objective_keeps_the_decoder_while_finetuning_and_ships_the_classifier(make_cfg, tmp_path: Path) -> None:
    record = train(make_cfg("pruning.finetune_loss=full", "finetune_epochs=2"))
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    keys = ckpt["state_dict"]
    assert any(".decoder." in k for k in keys) and any("latent.logvar" in k for k in keys)  # trained while fine-tuning
    assert "kl" in record["metrics"] and record["metrics"]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    exported = torch.export.load(record["artifacts"]["exported"])
    names = set(exported.state_dict)
    assert names and not any("decoder" in n or "logvar" in n for n in names)
