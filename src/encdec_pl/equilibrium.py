"""Detecting the latent-norm equilibrium (METHOD.md): where the windowed latent norm stops moving.

The rule: compare the mean of the last `window` samples with the mean of the `window`
samples before them; the series is at equilibrium once their relative difference stays
below `tolerance` for `patience` consecutive samples, and not before `min_step` (the
initial rise from ~0 must not count as a plateau). The step reported is the first step
of that calm stretch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L

from encdec_pl.errors import is_number, is_positive_int, require


@dataclass
class EquilibriumRule:
    window: int = 20  # samples per mean (samples arrive every trainer.log_every_n_steps steps)
    tolerance: float = 0.02  # relative change between consecutive window means
    patience: int = 10  # consecutive calm samples needed
    min_step: int = 0  # no equilibrium is reported before this training step

    def __post_init__(self) -> None:
        require(is_positive_int(self.window), "window", self.window, "a positive integer")
        require(is_number(self.tolerance) and self.tolerance > 0, "tolerance", self.tolerance, "> 0")
        require(is_positive_int(self.patience), "patience", self.patience, "a positive integer")
        require(isinstance(self.min_step, int) and self.min_step >= 0, "min_step", self.min_step, "an integer >= 0")


class EquilibriumTracker:
    """Feed (step, value) pairs one at a time; `equilibrium_step` is set once the rule is met."""

    def __init__(self, rule: EquilibriumRule) -> None:
        self.rule = rule
        self.samples: deque[tuple[int, float]] = deque(maxlen=2 * rule.window)
        self.calm_since: int | None = None
        self.calm_count = 0
        self.equilibrium_step: int | None = None

    def relative_change(self) -> float | None:
        """|mean(last window) - mean(window before)| / |mean(window before)|, once 2 windows are in."""
        if len(self.samples) < 2 * self.rule.window:
            return None
        values = [v for _, v in self.samples]
        before = sum(values[: self.rule.window]) / self.rule.window
        recent = sum(values[self.rule.window :]) / self.rule.window
        return abs(recent - before) / max(abs(before), 1e-12)

    def update(self, step: int, value: float) -> bool:
        """Add one sample; True on the sample where equilibrium is first reached."""
        if self.equilibrium_step is not None:
            return False
        self.samples.append((step, value))
        change = self.relative_change()
        if change is None or change >= self.rule.tolerance or step < self.rule.min_step:
            self.calm_since, self.calm_count = None, 0
            return False
        if self.calm_since is None:
            self.calm_since = step
        self.calm_count += 1
        if self.calm_count >= self.rule.patience:
            self.equilibrium_step = self.calm_since
            return True
        return False


def find_equilibrium(steps: Sequence[int], values: Sequence[float], rule: EquilibriumRule) -> int | None:
    """The step at which a recorded series reaches equilibrium under `rule`, or None."""
    tracker = EquilibriumTracker(rule)
    for step, value in zip(steps, values, strict=True):
        if tracker.update(step, value):
            return tracker.equilibrium_step
    return None


class EquilibriumDetector(L.Callback):
    """Watch the windowed latent norm during training; log the equilibrium step, optionally stop there.

    Reads `monitor` from the logged metrics at every logging step. When the rule is met it
    logs `equilibrium/step` and `equilibrium/value`, and with `stop=True` ends training.
    """

    def __init__(
        self,
        monitor: str = "train/latent_norm_avg",
        window: int = 20,
        tolerance: float = 0.02,
        patience: int = 10,
        min_step: int = 0,
        stop: bool = False,
    ) -> None:
        self.monitor, self.stop = monitor, stop
        self.tracker = EquilibriumTracker(EquilibriumRule(window, tolerance, patience, min_step))

    @property
    def equilibrium_step(self) -> int | None:
        return self.tracker.equilibrium_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step % trainer.log_every_n_steps != 0 or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if self.tracker.update(trainer.global_step, value):
            pl_module.log_dict(
                {"equilibrium/step": float(self.tracker.equilibrium_step), "equilibrium/value": value},
                on_step=True,
                on_epoch=False,
            )
            L.pytorch.utilities.rank_zero_info(
                f"Latent norm at equilibrium since step {self.tracker.equilibrium_step} ({self.monitor}={value:.4f})"
                + ("; stopping" if self.stop else "")
            )
            if self.stop:
                trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {
            "samples": list(self.tracker.samples),
            "calm_since": self.tracker.calm_since,
            "calm_count": self.tracker.calm_count,
            "equilibrium_step": self.tracker.equilibrium_step,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.tracker.samples.extend(tuple(s) for s in state_dict["samples"])
        self.tracker.calm_since = state_dict["calm_since"]
        self.tracker.calm_count = state_dict["calm_count"]
        self.tracker.equilibrium_step = state_dict["equilibrium_step"]
