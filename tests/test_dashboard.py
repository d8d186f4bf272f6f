"""The dashboard and the console: HParams and curves read back from event files, the end-of-run line,
a tiny run's console (no tips, no harmless warnings, one line per epoch off a terminal), the lean export.

Run as a script (``python tests/test_dashboard.py OUT_DIR quiet|loud``) it is the tiny run whose console
the tests read: the project's trainer, callbacks and logger config on a two-layer model.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.context import RequestContext
from tensorboard.plugins.base_plugin import TBContext
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, metadata
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from bvp.console import EpochLine, quiet
from bvp.dashboard import final_line, hparam_value, log_run_summary
from bvp.export import export_classifier
from bvp.identity import run_identity
from bvp.models import BetaVAEClassif

CONF = Path(__file__).resolve().parents[1] / "conf"
METRICS = {
    "dense_test_acc": 0.98,
    "pruned_test_acc": 0.61,
    "finetuned_test_acc": 0.97,
    "accuracy_drop": 0.01,
    "sparsity": 0.4987,
    "compression_ratio": 1.99,
    "dense_kl": 12.5,
    "kl": math.nan,  # not finite: left out
    "kl_dims": [1.0, 2.0],  # a list: left out
    "val/loss": 3.0,  # not a summary number: left out
}


def read_run(log_dir: str) -> EventAccumulator:
    return EventAccumulator(log_dir, size_guidance={"scalars": 0, "tensors": 0}).Reload()


def proto_value(value) -> bool | float | str:
    return getattr(value, value.WhichOneof("kind"))


def test_run_summary_reads_back_every_identity_key_and_the_summary_numbers(make_cfg) -> None:
    cfg = make_cfg("pruning.amount=0.5", "model.cls_weight=20")
    identity = run_identity(cfg)
    logger = instantiate(cfg.logger)
    log_run_summary(logger, identity, METRICS)
    run = read_run(logger.log_dir)

    hparams = run.PluginTagToContent(metadata.PLUGIN_NAME)
    assert metadata.EXPERIMENT_TAG not in hparams  # TensorBoard then builds the columns from every run's keys
    start = metadata.parse_session_start_info_plugin_data(hparams[metadata.SESSION_START_INFO_TAG])
    logged = {k: proto_value(v) for k, v in start.hparams.items()}
    assert logged == {k: hparam_value(v) for k, v in identity.items()}
    assert {"pruning.amount", "pruning.finetune_loss", "model.cls_weight", "dataset.crop_padding"} <= logged.keys()
    assert (logged["pruning.amount"], logged["model.cls_weight"], logged["pruning.prune_bias"]) == (0.5, 20.0, False)
    end = metadata.parse_session_end_info_plugin_data(hparams[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_SUCCESS

    curves = {"curve/dense_test_acc", "curve/pruned_test_acc", "curve/finetuned_test_acc"}
    summaries = {"summary/accuracy_drop", "summary/sparsity", "summary/compression_ratio", "summary/dense_kl"}
    assert set(run.Tags()["scalars"]) == curves | summaries
    for tag in curves | summaries:
        (point,) = run.Scalars(tag)
        assert point.step == 499  # sparsity 0.4987 in per-mille
        assert point.value == pytest.approx(METRICS[tag.split("/", 1)[1]])

    layout = layout_pb2.Layout()
    layout.ParseFromString(run.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    (chart,) = layout.category[0].chart
    assert set(chart.multiline.tag) == curves


def test_hparams_table_tells_runs_apart_by_pruning_amount(make_cfg, tmp_path: Path) -> None:
    """What the HParams tab requests (GetExperiment), for three runs that differ only in pruning.amount."""
    amounts = (0.2, 0.5, 0.8)
    for amount in amounts:
        cfg = make_cfg(f"pruning.amount={amount}", f"output_dir={tmp_path / 'sweep' / f'amount_{amount}'}")
        log_run_summary(instantiate(cfg.logger), run_identity(cfg), {**METRICS, "sparsity": amount})
    sweep = str(tmp_path / "sweep")
    mux = plugin_event_multiplexer.EventMultiplexer().AddRunsFromDirectory(sweep)
    mux.Reload()
    tb = TBContext(logdir=sweep, data_provider=data_provider.MultiplexerDataProvider(mux, sweep))
    request = api_pb2.GetExperimentRequest()
    experiment = get_experiment.Handler(RequestContext(), backend_context.Context(tb), "", request).run()

    infos = {info.name: info for info in experiment.hparam_infos}
    assert infos.keys() == run_identity(cfg).keys()
    assert experiment.hparam_infos[0].name == "pruning.amount"  # differing keys come first: shown by default
    assert [name for name, info in infos.items() if info.differs] == ["pruning.amount"]
    interval = infos["pruning.amount"].domain_interval
    assert (interval.min_value, interval.max_value) == (0.2, 0.8)
    metrics = {m.name.tag for m in experiment.metric_infos}
    assert {"curve/dense_test_acc", "curve/pruned_test_acc", "curve/finetuned_test_acc", "summary/sparsity"} <= metrics


def test_log_run_summary_without_a_tensorboard_logger_writes_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for logger in (None, False):
        log_run_summary(logger, {"seed": 0}, METRICS)
    assert list(tmp_path.iterdir()) == []


def test_final_line_names_the_files_and_the_command(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs" / "runs" / "x" / "tb").mkdir(parents=True)
    line = final_line(tmp_path / "outputs" / "runs" / "x")
    assert "\n" not in line
    run = os.path.join("outputs", "runs", "x")
    for part in ("metrics.json", "classifier.pt2", "tb"):
        assert os.path.join(run, part) in line
    assert line.endswith(f"make tensorboard LOGDIR={run}")
    assert str(Path("/elsewhere/run") / "metrics.json") in final_line("/elsewhere/run")  # outside the cwd: absolute
    (tmp_path / "csv_run" / "csv").mkdir(parents=True)
    (tmp_path / "csv_run" / "csv" / "metrics.csv").write_text("epoch\n")
    line = final_line(tmp_path / "csv_run")  # logger=csv: no TensorBoard to open
    assert "tensorboard" not in line.lower() and line.endswith(os.path.join("csv_run", "csv", "metrics.csv"))


@pytest.mark.parametrize("logger", ["csv", "none"])
def test_a_run_with_the_csv_logger_or_none_records_everything_but_tensorboard(make_cfg, tmp_path: Path, logger: str) -> None:
    from bvp.run import train

    record = train(make_cfg(f"logger={logger}", "epochs=1", "finetune_epochs=1", name=logger))
    run = tmp_path / logger
    assert record["status"] == "done" and 0 <= record["metrics"]["finetuned_test_acc"] <= 1
    assert not (run / "tb").exists() and (run / "classifier.pt2").is_file()
    assert (run / "csv" / "metrics.csv").is_file() == (logger == "csv")
    if logger == "csv":
        assert "val/acc" in (run / "csv" / "metrics.csv").read_text().splitlines()[0]


# -- console --------------------------------------------------------------------------------------------
class TwoLayer(L.LightningModule):
    """Logs epoch means of train/val loss and accuracy under the names bvp.module.ClassifModule uses."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        self.log_dict({f"{stage}/loss": loss, f"{stage}/acc": (logits.argmax(1) == y).float().mean()}, on_epoch=True)
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def tiny_fit(out_dir: Path, *overrides: str) -> L.Trainer:
    """Two epochs with the project's trainer, callbacks (EpochLine included) and logger config."""
    args = [f"output_dir={out_dir}", "trainer.accelerator=cpu", "trainer.log_every_n_steps=1", *overrides]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=args)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    trainer = instantiate(cfg.trainer, max_epochs=2, callbacks=callbacks, logger=instantiate(cfg.logger))
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16)
    trainer.fit(TwoLayer(), train_dataloaders=data, val_dataloaders=data)
    return trainer


@pytest.mark.parametrize("mode", ["loud", "quiet"])
def test_tiny_run_console_has_no_tip_no_harmless_warning_and_one_line_per_epoch(tmp_path: Path, mode: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CONF.parent), str(CONF.parent / "tests")])}
    script = [sys.executable, __file__, str(tmp_path / "run"), mode]
    run = subprocess.run(script, capture_output=True, text=True, timeout=300, env=env, check=True, stdin=subprocess.DEVNULL)
    console = run.stdout + run.stderr
    assert ("litlogger" in console, "LeafSpec" in console) == ((True, True) if mode == "loud" else (False, False))
    assert "it/s" not in console  # stderr is a pipe: no bar
    lines = [line for line in console.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert all(all(k in line for k in EpochLine.KEYS) for line in lines)


def test_quiet_ignores_a_harmless_warning_only_from_its_module() -> None:
    message = "`isinstance(treespec, LeafSpec)` is deprecated, use ... instead."
    cases = [  # (category, module), numbered by line: only the first is the known-harmless one
        (FutureWarning, "lightning.pytorch.utilities._pytree"),
        (FutureWarning, "lightning.pytorch.utilities._pytree_v2"),
        (FutureWarning, "mycode"),
        (UserWarning, "lightning.pytorch.utilities._pytree"),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet()
        for line, (category, module) in enumerate(cases, start=1):
            warnings.warn_explicit(message, category, "x.py", line, module=module)
    assert [w.lineno for w in caught] == [2, 3, 4]


def test_epoch_line_logs_the_logged_values_and_keeps_the_bar_on_a_terminal(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="bvp.console")
    trainer = tiny_fit(tmp_path / "pipe", "callbacks.epoch_line.interactive=false")
    assert trainer.progress_bar_callback.is_disabled
    lines = [r.getMessage() for r in caplog.records if r.name == "bvp.console"]
    assert len(lines) == 2
    metrics = trainer.callback_metrics  # the last epoch's values, as the line of epoch 2 shows them
    for key in EpochLine.KEYS:
        assert f"{key} {float(metrics[key]):.4g}" in lines[1]
    caplog.clear()
    trainer = tiny_fit(tmp_path / "tty", "callbacks.epoch_line.interactive=true")
    assert trainer.progress_bar_callback.is_enabled
    assert not [r for r in caplog.records if r.name == "bvp.console"]  # the bar is the progress display


# -- export ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)], ids=["mnist", "cifar10"])
def test_export_holds_the_weights_plus_a_small_overhead(tmp_path: Path, shape: tuple[int, int, int]) -> None:
    """Bound: parameter bytes + 64 KiB (measured: graph and zip headers about 30 KB, plus the 2-sample
    example, 6 KB on MNIST, 25 KB on CIFAR10). An example that is a view of its 1000-image batch would
    add that batch: 3.1 MB (MNIST), 12.3 MB (CIFAR10)."""
    torch.manual_seed(0)
    classifier = BetaVAEClassif(shape).classifier().eval()
    weights = sum(t.numel() * t.element_size() for t in classifier.state_dict().values())
    batch = torch.rand(1000, *shape)
    paths = export_classifier(classifier, batch[:2], tmp_path)
    assert Path(paths["exported"]).stat().st_size <= weights + 64 * 1024
    program = torch.export.load(paths["exported"])
    (example,), _ = program.example_inputs
    assert example.untyped_storage().nbytes() == 2 * batch[0].numel() * 4
    with torch.no_grad():
        assert torch.equal(program.module()(batch[:5]), classifier(batch[:5]))


if __name__ == "__main__":
    if sys.argv[2] == "quiet":
        quiet()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tiny_fit(Path(sys.argv[1]))
