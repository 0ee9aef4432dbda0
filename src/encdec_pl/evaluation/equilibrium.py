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


# --- Tuning the rule against quality (scripts/equilibrium_study.py) -----------------------------------


def nearest_index(steps: Sequence[float], step: float) -> int:
    """The index of the measurement nearest to `step` (the earlier one on a tie)."""
    return min(range(len(steps)), key=lambda i: abs(steps[i] - step))


@dataclass
class QualityCurve:
    """One quality metric measured during a run (callbacks=quality): steps, values, and its direction."""

    steps: list[int]
    values: list[float]
    higher_is_better: bool

    def smoothed(self, span: int = 5) -> list[float]:
        """A centred moving mean over `span` measurements. One measurement is noisy: on 1000 validation
        images label preservation has a binomial standard error of about 0.013, and at a constant learning
        rate the model itself wobbles (the recipe's label preservation moved by 0.035 to 0.050 on average
        between measurements 200 steps apart, docs/results.md): the share below compares levels, not single points."""
        v, half = self.values, span // 2
        windows = [v[max(i - half, 0) : i + half + 1] for i in range(len(v))]
        return [sum(w) / len(w) for w in windows]

    def share_given_up(self, step: int) -> float | None:
        """The share of the run's gain (from the first value to the smoothed final level) not yet reached
        at `step` (the nearest measurement, smoothed): 0 = stopping there loses nothing. None: no gain."""
        level = self.smoothed()
        sign = 1 if self.higher_is_better else -1
        gain = sign * (level[-1] - self.values[0])
        if gain <= 0:
            return None
        at = level[nearest_index(self.steps, step)]
        return max(0.0, sign * (level[-1] - at) / gain)

    def plateau_step(self, share: float = 0.01) -> int | None:
        """The first measured step from which less than `share` of the run's gain was still to come (on the
        smoothed level, as share_given_up); None when the metric never improved."""
        for step in self.steps:
            given_up = self.share_given_up(step)
            if given_up is None:
                return None
            if given_up < share:
                return step
        return self.steps[-1]


@dataclass
class StudiedRun:
    """A long run of the equilibrium study: the logged latent norm and the quality curves."""

    steps: list[int]
    latent_norm: list[float]
    quality: dict[str, QualityCurve]

    def stopping_cost(self, rule: EquilibriumRule) -> dict:
        """Where `rule` stops this run, each metric's share of gain given up there, and the steps saved."""
        step = find_equilibrium(self.steps, self.latent_norm, rule)
        lost = {}
        if step is not None:
            lost = {k: s for k, c in self.quality.items() if (s := c.share_given_up(step)) is not None}
        return {"step": step, "lost": lost, "worst_lost": max(lost.values(), default=0.0),
                "saved_share": 0.0 if step is None else 1 - step / self.steps[-1]}  # fmt: skip


TUNING_GRID = {"window": (10, 20, 40, 80), "tolerance": (0.005, 0.01, 0.02, 0.05), "patience": (5, 10, 20, 40)}


def tune_rule(runs: dict[int, StudiedRun], tolerated_loss: float, grid: dict = TUNING_GRID) -> dict:
    """Every rule of `grid` on every run. A rule is safe when it stops every run while giving up at most
    `tolerated_loss` of each metric's gain; `best` is the safe rule that saves the most steps (None: none is
    safe, and the detector cannot be tuned to these runs: the latent norm does not settle where quality does)."""
    from itertools import product

    results = []
    for window, tolerance, patience in product(grid["window"], grid["tolerance"], grid["patience"]):
        rule = EquilibriumRule(window=window, tolerance=tolerance, patience=patience)
        costs = {seed: run.stopping_cost(rule) for seed, run in runs.items()}
        safe = all(c["step"] is not None and c["worst_lost"] <= tolerated_loss for c in costs.values())
        saved = sum(c["saved_share"] for c in costs.values()) / len(costs)
        results.append({"rule": {"window": window, "tolerance": tolerance, "patience": patience}, "runs": costs,
                        "safe": safe, "mean_saved_share": saved})  # fmt: skip
    safe_rules = [r for r in results if r["safe"]]
    stopping = [r for r in results if all(c["step"] is not None for c in r["runs"].values())]
    return {"tolerated_loss": tolerated_loss, "grid": {k: list(v) for k, v in grid.items()},
            "rules_tried": len(results), "rules_safe": len(safe_rules),
            "best": max(safe_rules, key=lambda r: r["mean_saved_share"], default=None),
            # of the rules that stop every run, the one giving up least (what the tolerance would have to be)
            "least_lost": min(stopping, key=lambda r: max(c["worst_lost"] for c in r["runs"].values()), default=None),
            "rules_stopping_every_run": len(stopping)}  # fmt: skip
