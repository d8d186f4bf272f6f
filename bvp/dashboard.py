"""TensorBoard as the study's dashboard: each run's identity in the HParams tab, its summary numbers as
HParams metrics and as points of an accuracy-vs-sparsity curve, and the line a run ends with.

HParams: each run writes a session-start record (every run-identifying key, see ``bvp.identity``) and a
session-end record, but no ``experiment`` record. Without one, TensorBoard builds the table's columns from
the union of the keys of all sessions under ``--logdir`` and puts the keys whose values differ first, so a
sweep of six ``pruning.amount`` values shows ``pruning.amount`` as its first column; one experiment record
(as ``SummaryWriter.add_hparams`` or Lightning's ``log_hyperparams(params, metrics)`` write) would fix the
columns to the keys of whichever run TensorBoard reads first. The metric columns are the run's scalars.
"""

from __future__ import annotations

import math
import os
import time
from numbers import Real
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter

from bvp.names import ACCURACIES, EXPORT_FILE, METRICS_FILE, SCALARS

LAYOUT = {
    "accuracy vs sparsity (step = sparsity in per-mille)": {
        "test accuracy: dense, pruned, fine-tuned": ["Multiline", [f"curve/{k}" for k in ACCURACIES]],
    }
}


def summary_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite scalar summary numbers of ``metrics``: every key of ``bvp.names.SCALARS`` (lists such as
    kl_dims and NaNs are left out)."""
    return {
        k: float(metrics[k])
        for k in metrics
        if k in SCALARS and isinstance(metrics[k], Real) and not isinstance(metrics[k], bool) and math.isfinite(metrics[k])
    }


def sparsity_step(metrics: dict[str, Any]) -> int:
    """The run's overall sparsity in per-mille (0 for a dense run): the x axis of its curve points."""
    sparsity = metrics.get("sparsity")
    return round(1000 * sparsity) if isinstance(sparsity, Real) and math.isfinite(sparsity) else 0


def hparam_value(value: Any) -> bool | int | float | str:
    """A value TensorBoard's HParams accept: bool/int/float/str as they are, None as "null", else its str."""
    if value is None:
        return "null"
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def _hparams_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    return Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])


def session_summaries(identity: dict[str, Any]) -> tuple[Summary, Summary]:
    """The HParams plugin's session-start (the run's hparams) and session-end (success) records."""
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for key, value in identity.items():
        value = hparam_value(value)
        if isinstance(value, bool):  # before int: bool is an int
            start.hparams[key].bool_value = value
        elif isinstance(value, str):
            start.hparams[key].string_value = value
        else:
            start.hparams[key].number_value = value
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
    return (
        _hparams_summary(metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=start)),
        _hparams_summary(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end)),
    )


@rank_zero_only
def log_run_summary(logger: TensorBoardLogger | bool | None, identity: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Write the run's HParams session (``identity`` as hparams), its summary numbers at step = sparsity in
    per-mille (``curve/<accuracy>``, ``summary/<other>``) and the custom-scalars layout that groups the three
    accuracies, into the logger's folder (a new event file there, so it works after the logger closed)."""
    if not isinstance(logger, TensorBoardLogger):
        return
    step = sparsity_step(metrics)
    with SummaryWriter(logger.log_dir) as writer:
        for key, value in summary_metrics(metrics).items():
            writer.add_scalar(f"{'curve' if key in ACCURACIES else 'summary'}/{key}", value, step)
        writer.add_custom_scalars(LAYOUT)
        for summary in session_summaries(identity):
            writer.file_writer.add_summary(summary)


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory when it is inside it, else absolute."""
    path = path.resolve()
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def final_line(out_dir: str | os.PathLike) -> str:
    """The one line a run ends with: where its record, export and logs are (TensorBoard's, and how to open them,
    or logger=csv's), as the run folder holds them."""
    run = _shown(Path(out_dir))
    line = f"metrics: {run / METRICS_FILE} | export: {run / EXPORT_FILE}"
    if (Path(out_dir) / "tb").is_dir():
        line += f" | TensorBoard logs: {run / 'tb'} | open them: make tensorboard LOGDIR={run}"
    if (Path(out_dir) / "csv" / "metrics.csv").is_file():
        line += f" | CSV logs: {run / 'csv' / 'metrics.csv'}"
    return line
