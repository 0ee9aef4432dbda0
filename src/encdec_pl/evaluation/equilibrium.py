"""Detecting the latent-norm equilibrium (docs/method.md): where the windowed latent norm stops moving.

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
