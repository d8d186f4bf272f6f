"""Test-only callbacks, importable by Hydra's instantiate (tests/ is on sys.path under pytest)."""

import lightning.pytorch as L


class CrashAt(L.Callback):
    """Simulates a killed run: raises when epoch ``epoch`` (0-based) starts, or when testing starts."""

    def __init__(self, epoch: int | None = None, at_test: bool = False) -> None:
        self.epoch, self.at_test = epoch, at_test

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"simulated crash at epoch {self.epoch}")

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_test:
            raise RuntimeError("simulated crash before testing")
