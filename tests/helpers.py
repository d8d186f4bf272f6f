"""Test-only callbacks, importable by Hydra's instantiate (tests/ is on sys.path under pytest)."""

import os
import signal

import lightning.pytorch as L


class CrashAt(L.Callback):
    """Simulates a killed run: raises when epoch ``epoch`` (0-based) starts, or when training ends (after the
    last checkpoint is written, before the run is measured); ``ctrl_c``: a KeyboardInterrupt at that epoch, as
    Ctrl-C raises it; ``sigterm``: a real SIGTERM to this process at that epoch, as a scheduler sends it."""

    def __init__(self, epoch: int | None = None, at_end: bool = False, ctrl_c: bool = False, sigterm: bool = False) -> None:
        self.epoch, self.at_end, self.ctrl_c, self.sigterm = epoch, at_end, ctrl_c, sigterm

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch and self.sigterm:
            os.kill(os.getpid(), signal.SIGTERM)  # Lightning's handler notes it; its loop stops at the next batch
        elif trainer.current_epoch == self.epoch:
            raise (KeyboardInterrupt if self.ctrl_c else RuntimeError)(f"simulated crash at epoch {self.epoch}")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_end and self.sigterm:
            os.kill(os.getpid(), signal.SIGTERM)  # Lightning's handler notes it; no batch is left to stop at
        elif self.at_end:
            raise RuntimeError("simulated crash after the last epoch")
