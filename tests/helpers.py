"""Test-only callbacks, importable by Hydra's instantiate (tests/ is on sys.path under pytest)."""

import lightning.pytorch as L


class CrashAt(L.Callback):
    """Simulates a killed run: raises when epoch ``epoch`` (0-based) starts, or when training ends (after the
    last checkpoint is written, before the run is measured)."""

    def __init__(self, epoch: int | None = None, at_end: bool = False) -> None:
        self.epoch, self.at_end = epoch, at_end

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"simulated crash at epoch {self.epoch}")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_end:
            raise RuntimeError("simulated crash after the last epoch")
