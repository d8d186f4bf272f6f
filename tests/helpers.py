"""Test-only callbacks, importable by Hydra's instantiate (tests/ is on sys.path under pytest)."""

import lightning.pytorch as L


class CrashAt(L.Callback):
    """Simulates a killed run: raises when epoch ``epoch`` (0-based) starts, or when training ends (after the
    last checkpoint is written, before the run is measured); ``ctrl_c``: a KeyboardInterrupt at that epoch, as
    Ctrl-C raises it."""

    def __init__(self, epoch: int | None = None, at_end: bool = False, ctrl_c: bool = False) -> None:
        self.epoch, self.at_end, self.ctrl_c = epoch, at_end, ctrl_c

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise (KeyboardInterrupt if self.ctrl_c else RuntimeError)(f"simulated crash at epoch {self.epoch}")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_end:
            raise RuntimeError("simulated crash after the last epoch")
