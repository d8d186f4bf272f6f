"""Gradual pruning: Zhu & Gupta's cubic sparsity schedule ("To prune, or not to prune", 2017, eq. 1).

    s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3    for t in {t0, t0 + dt, ..., t0 + n dt}

Sparsity rises fast at first and levels off as the network has fewer redundant weights left. Epochs are
1-based and a step happens at the end of its epoch, as ``pruning.prune_epoch`` does for one-shot pruning:
step k (k = 0..n) at the end of epoch t0 + k dt. Step 0 prunes s_i (0 by default: nothing; it is where the
decoder goes and where a sparsity-curve branch starts), step n brings the sparsity to s_f.
"""

from __future__ import annotations

from dataclasses import dataclass


def step_count(s_k: float, total: int, remaining: int) -> int:
    """How many of the ``remaining`` of ``total`` weights to remove to reach overall sparsity ``s_k`` (to the
    nearest weight). Pruning compounds on what remains, so this is the fraction 1 - (1 - s_k) / (1 - s_{k-1}) of
    the remaining weights, as a count: unlike a fraction, a count does not let rounding accumulate over steps."""
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
