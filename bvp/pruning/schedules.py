"""Gradual pruning: Zhu & Gupta's cubic sparsity schedule ("To prune, or not to prune", 2017, eq. 1).

    s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3    for t in {t0, t0 + dt, ..., t0 + n dt}

Sparsity rises fast at first and levels off as the network has fewer redundant weights left. Epochs are
1-based and a step happens at the end of its epoch, as ``pruning.prune_epoch`` does for one-shot pruning:
step k (k = 0..n) at the end of epoch t0 + k dt. Step 0 prunes s_i (0 by default: nothing; it is where the
decoder goes and where a sparsity-curve branch starts), step n brings the sparsity to s_f.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def step_amount(s_k: float, s_prev: float) -> float:
    """Fraction of the weights (or channels) still there to remove at a step, so that the overall sparsity
    goes from ``s_prev`` to ``s_k``: 1 - (1 - s_k) / (1 - s_prev). Repeated pruning compounds on what remains."""
    return 1 - (1 - s_k) / (1 - s_prev)


def step_count(s_k: float, total: int, remaining: int) -> int:
    """How many of the ``remaining`` of ``total`` weights to remove to reach sparsity ``s_k`` exactly (to the
    nearest weight): ``step_amount`` as a count, which, unlike the fraction, does not let rounding accumulate."""
    return max(remaining - round(total * (1 - s_k)), 0)


@dataclass(frozen=True)
class CubicSchedule:
    """The steps of Zhu & Gupta's schedule: ``steps`` (n) steps of ``step_epochs`` (dt) epochs from the end of
    epoch ``start_epoch`` (t0), sparsity ``initial`` (s_i) to ``final`` (s_f)."""

    final: float
    start_epoch: int
    steps: int
    step_epochs: int = 1
    initial: float = 0.0

    @property
    def end_epoch(self) -> int:
        """The epoch at whose end the last step (sparsity ``final``) happens: t0 + n dt."""
        return self.start_epoch + self.steps * self.step_epochs

    def sparsity(self, k: int) -> float:
        """Target overall sparsity after step k (0..n), eq. 1 at t = t0 + k dt."""
        return self.final + (self.initial - self.final) * (1 - k / self.steps) ** 3

    def targets(self) -> list[float]:
        return [self.sparsity(k) for k in range(self.steps + 1)]

    def step_at(self, epoch: int) -> int | None:
        """The step that happens at the end of (1-based) ``epoch``, or None."""
        k, offset = divmod(epoch - self.start_epoch, self.step_epochs)
        return k if offset == 0 and 0 <= k <= self.steps else None

    def amount(self, current_epoch: int) -> float:
        """ModelPruning's callable ``amount``: the fraction of the remaining weights to prune at the end of
        Lightning's (0-based) ``current_epoch``; 0 (no pruning) between steps."""
        k = self.step_at(current_epoch + 1)
        if k is None:
            return 0.0
        return step_amount(self.sparsity(k), self.sparsity(k - 1) if k > 0 else 0.0)


def check_gradual_args(pruning: dict[str, Any], last_epoch: int) -> list[str]:
    """Errors ('key=value: what to write instead') in a gradual pruning config: the window must end by the
    end of ``last_epoch``, the run's last epoch."""
    start, steps, dt = pruning.get("start_epoch"), pruning.get("steps"), pruning.get("step_epochs", 1)
    errors = [
        f"pruning.{key}={value!r}: must be an integer >= 1, e.g. pruning.{key}={example}"
        for key, value, example in (("start_epoch", start, max(last_epoch // 2, 1)), ("steps", steps, 5), ("step_epochs", dt, 1))
        if not isinstance(value, int) or isinstance(value, bool) or value < 1
    ]
    if not errors and start + steps * dt > last_epoch:
        latest = last_epoch - steps * dt
        hint = (
            f"pruning.start_epoch={latest} or less" if latest >= 1 else f"pruning.steps * pruning.step_epochs <= {last_epoch - 1}"
        )
        errors.append(
            f"pruning.start_epoch={start!r}: the window ends at epoch start_epoch + steps * step_epochs = "
            f"{start + steps * dt}, after the last epoch {last_epoch}; write {hint}"
        )
    return errors
