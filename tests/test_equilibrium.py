"""The equilibrium detector on synthetic latent-norm series with known answers."""

from __future__ import annotations

import math

import pytest

from encdec_pl.errors import InvalidArgument
from encdec_pl.evaluation.equilibrium import EquilibriumRule, find_equilibrium

RULE = EquilibriumRule(window=10, tolerance=0.01, patience=5)


def test_series_that_plateaus_is_detected_after_it_flattens() -> None:
    # rises from ~0 like the latent norm, then settles at 0.5 from step ~600 on
    steps = list(range(0, 2000, 10))
    values = [0.5 * (1 - math.exp(-s / 120)) for s in steps]
    step = find_equilibrium(steps, values, RULE)
    assert step is not None and 500 <= step <= 900


def test_series_that_keeps_rising_has_no_equilibrium() -> None:
    steps = list(range(0, 2000, 10))
    assert find_equilibrium(steps, [0.01 + s * 1e-3 for s in steps], RULE) is None


def test_oscillation_around_a_level_is_an_equilibrium_but_a_trend_is_not() -> None:
    steps = list(range(0, 1000, 10))
    wobble = [2.0 + 0.05 * (-1) ** i for i in range(len(steps))]
    assert find_equilibrium(steps, wobble, RULE) is not None
    drifting = [2.0 + 0.05 * (-1) ** i + 0.002 * i for i in range(len(steps))]
    assert find_equilibrium(steps, drifting, EquilibriumRule(window=10, tolerance=0.005, patience=5)) is None


def test_min_step_ignores_an_early_flat_stretch() -> None:
    steps = list(range(0, 3000, 10))
    values = [1.0 if s < 1000 else 1.0 + (s - 1000) / 500 if s < 2000 else 3.0 for s in steps]
    assert find_equilibrium(steps, values, RULE) < 1000
    assert find_equilibrium(steps, values, EquilibriumRule(10, 0.01, 5, min_step=1000)) >= 2000


def test_rule_arguments_are_checked() -> None:
    with pytest.raises(InvalidArgument, match="tolerance"):
        EquilibriumRule(tolerance=0)
