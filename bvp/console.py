"""A quiet, useful console: no third-party tips, known-harmless dependency warnings filtered narrowly (by
message and module), Lightning's progress bar on an interactive terminal only and one line per epoch
elsewhere (a pipe, a log file, a SLURM job)."""

from __future__ import annotations

import logging
import re
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import lightning.pytorch as L
from lightning.pytorch.utilities import rank_zero_only

from bvp.names import LOGGED
from bvp.rules import Boolean, Rules, Spec

log = logging.getLogger(__name__)

# Lightning 2.6 advertises litlogger/litmodels at every Trainer start through rank_zero_info, with no flag
# to turn it off; these are the loggers rank_zero_info writes to (lightning.pytorch's, or fabric's alone)
TIP_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
TIP = re.compile(r"try installing \[lit(logger|models)\]")
# (message regex, category, module regex): warnings raised inside a dependency that a user cannot act on
HARMLESS_WARNINGS = (
    # torch 2.14 deprecated LeafSpec; Lightning 2.6.6 still builds one in its own _tree_flatten
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, r"lightning\.pytorch\.utilities\._pytree"),
    # a branch starts from the shared dense checkpoint (bvp.pruning.branch), which was written from another run folder
    (r"The dirpath has changed from", UserWarning, r"lightning\.pytorch\.callbacks\.model_checkpoint"),
)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not TIP.search(record.getMessage())


DROP_TIPS = _DropTips()


class _Held(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def held_back() -> Iterator[None]:
    """Lightning's info lines (``GPU available: ...``, written as the Trainer is built) held back until the block
    ends without an error, then shown: a run refused for bad input prints its error line alone."""
    loggers = [logging.getLogger(name) for name in TIP_LOGGERS]
    held, propagate = _Held(), [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(held)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, was in zip(loggers, propagate, strict=True):
            logger.removeHandler(held)
            logger.propagate = was
    for record in held.records:  # not reached after an error: the refusal is the only line
        logging.getLogger(record.name).handle(record)


def quiet() -> None:
    """Drop Lightning's third-party tips and the dependency warnings in HARMLESS_WARNINGS; idempotent
    (logging keeps one copy of a filter, ``warnings`` moves a repeated filter to the front)."""
    for name in TIP_LOGGERS:
        logging.getLogger(name).addFilter(DROP_TIPS)
    for message, category, module in HARMLESS_WARNINGS:  # message: a match at its start; module: exactly this one
        warnings.filterwarnings("ignore", message=message, category=category, module=module + r"\Z")


class EpochLine(L.Callback):
    """Keeps Lightning's progress bar on an interactive terminal only (stderr a tty; ``interactive``
    overrides) and turns it off elsewhere as Lightning does on non-zero ranks (``ProgressBar.disable``).
    Without a bar it logs one line per training epoch: the epoch mean train/val loss and accuracy, and
    the epoch's wall time."""

    KEYS = LOGGED  # the values on the line, as the module logs them
    SETTINGS: ClassVar[dict[str, Spec]] = {"interactive": Boolean(null=True)}  # null: whether stderr is a tty

    def __init__(self, interactive: bool | None = None) -> None:
        Rules.of(self.SETTINGS, locals()).check()
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.bar_shown = False
        self._done: int | None = None  # the epoch whose line is due
        self._start = self._seconds = 0.0

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        bar = trainer.progress_bar_callback
        if bar is not None and not self.interactive:
            bar.disable()
        self.bar_shown = bar is not None and self.interactive

    # the module logs train/* in its own on_train_epoch_end, which Lightning calls after the callbacks'
    # hook: the line of epoch k is written when epoch k + 1 starts or training ends
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._done, self._seconds = trainer.current_epoch, time.perf_counter() - self._start

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)

    @rank_zero_only
    def _flush(self, trainer: L.Trainer) -> None:
        if self._done is None or self.bar_shown:
            return
        metrics = trainer.callback_metrics
        values = "  ".join(f"{k} {float(metrics[k]):.4g}" for k in self.KEYS if k in metrics)
        log.info("epoch %d/%d  %s  %.1fs", self._done + 1, trainer.max_epochs, values, self._seconds)
        self._done = None
