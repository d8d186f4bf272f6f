"""Test-only callbacks, importable by Hydra's instantiate (tests/ is on sys.path under pytest)."""

import lightning.pytorch as L


class CrashAtEpoch(L.Callback):
    """Simulates a killed run: raises as epoch ``epoch`` (0-based) starts."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"simulated crash at epoch {self.epoch}")
