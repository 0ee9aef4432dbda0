"""How long the run will take: one log line once the first training steps are measured."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import lightning as L

from encdec_pl.errors import is_positive_int, require

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """3725 -> '1 h 02 min', 95 -> '1 min 35 s', 12 -> '12 s'."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class TimeEstimate(L.Callback):
    """Log the estimated training time, measured over `measure_steps` steps after `skip_steps` warm-up steps.

    The estimate counts training steps only (validations come on top) and is logged once, e.g.
    `Estimated training time: about 58 min for the remaining 8580 steps (0.41 s/step over steps 6-25)...`.
    Runs too short to measure (fewer steps than skip + measure) log nothing.
    """

    def __init__(self, skip_steps: int = 5, measure_steps: int = 20) -> None:
        require(is_positive_int(skip_steps), "skip_steps", skip_steps, "a positive integer")
        require(is_positive_int(measure_steps), "measure_steps", measure_steps, "a positive integer")
        self.skip_steps, self.measure_steps = skip_steps, measure_steps
        self._start_step = 0
        self._clock: float | None = None
        self.seconds_per_step: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_step, self._clock, self.seconds_per_step = trainer.global_step, None, None

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.seconds_per_step is not None:
            return
        done = trainer.global_step - self._start_step
        if done == self.skip_steps:
            self._clock = time.monotonic()
        elif done == self.skip_steps + self.measure_steps and self._clock is not None:
            self.seconds_per_step = (time.monotonic() - self._clock) / self.measure_steps
            self._report(trainer)

    def _report(self, trainer: L.Trainer) -> None:
        total = trainer.estimated_stepping_batches
        if not trainer.is_global_zero or not math.isfinite(total):
            return
        remaining = int(total) - trainer.global_step
        if remaining <= 0:
            return
        first = self._start_step + self.skip_steps + 1
        epochs = f"max_epochs={trainer.max_epochs}" if trainer.max_steps == -1 else f"max_steps={trainer.max_steps}"
        log.info(
            "Estimated training time: about %s for the remaining %d steps (%.2f s/step over steps %d-%d, "
            "validations extra; %s). Shorter: set trainer.max_steps or trainer.max_epochs",
            format_duration(remaining * self.seconds_per_step),
            remaining,
            self.seconds_per_step,
            first,
            first + self.measure_steps - 1,
            epochs,
        )
