"""The equilibrium detector on synthetic latent-norm series with known answers."""

from __future__ import annotations

import math
import random

import pytest

from encdec_pl.errors import InvalidArgument
from encdec_pl.evaluation.equilibrium import EquilibriumRule, QualityCurve, StudiedRun, find_equilibrium, tune_rule

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


def _studied_run(noise_seed: int) -> StudiedRun:
    """A run whose latent norm jumps up in 300 steps, then drifts up 0.2% per 100 steps until step 1500 and
    is flat after; quality (label preservation) rises until step 1500 and is flat after, with noise."""
    rng = random.Random(noise_seed)
    steps = list(range(0, 4000, 10))
    norms = [5 * min(s / 300, 1) * (1 + 0.00002 * min(max(s - 300, 0), 1200)) for s in steps]
    q_steps = list(range(0, 4001, 200))
    quality = [0.1 + 0.8 * min(s / 1500, 1) + rng.gauss(0, 0.005) for s in q_steps]
    return StudiedRun(steps, norms, {"label_preservation": QualityCurve(q_steps, quality, True)})


def test_share_given_up_is_the_missing_part_of_the_gain() -> None:
    steps = list(range(0, 4001, 200))
    rising = QualityCurve(steps, [min(s / 2000, 1.0) for s in steps], higher_is_better=True)  # flat from 2000
    assert rising.share_given_up(3000) == pytest.approx(0.0)
    assert rising.share_given_up(1000) == pytest.approx(0.5)  # the smoothed level at 1000 is still 0.5
    falling = QualityCurve(steps, [100 - 80 * min(s / 2000, 1.0) for s in steps], higher_is_better=False)  # a distance
    assert falling.share_given_up(3000) == pytest.approx(0.0) and falling.share_given_up(400) > 0.7
    assert QualityCurve(steps, [0.5 - s / 10000 for s in steps], higher_is_better=True).share_given_up(100) is None
    assert rising.plateau_step() == 2400 and falling.plateau_step() == 2400  # the 5-point mean is flat from there


def test_tuning_rejects_a_rule_that_stops_in_the_slow_drift_and_picks_one_that_waits() -> None:
    runs = {seed: _studied_run(seed) for seed in range(3)}
    loose = EquilibriumRule(window=10, tolerance=0.05, patience=5)  # calls the drift calm: stops near step 400
    assert all(run.stopping_cost(loose)["worst_lost"] > 0.5 for run in runs.values())
    tuning = tune_rule(runs, tolerated_loss=0.02)
    best = tuning["best"]
    assert best is not None and 0 < tuning["rules_safe"] < tuning["rules_tried"]
    for cost in best["runs"].values():
        assert cost["step"] >= 1300 and cost["worst_lost"] <= 0.02  # stops on the quality plateau...
        assert cost["saved_share"] > 0.3  # ...and well before the end


def test_tuning_says_so_when_no_rule_is_safe() -> None:
    # the latent norm never settles while quality keeps rising to the end: no rule may stop it
    steps, q_steps = list(range(0, 3000, 10)), list(range(0, 3001, 200))
    rising = QualityCurve(q_steps, [s / 3000 for s in q_steps], higher_is_better=True)
    run = StudiedRun(steps, [1 + s / 100 for s in steps], {"q": rising})
    assert tune_rule({0: run}, tolerated_loss=0.02)["best"] is None


@pytest.mark.parametrize("code_norm", ["none", "rms"])
def test_detector_is_off_for_codes_of_fixed_size(code_norm: str, caplog: pytest.LogCaptureFixture) -> None:
    """With model.code_norm=rms the latent norm is 1 at every step: a rule loose enough to fire on the plain
    model's first steps must not fire on it, and the run says why once."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from encdec_pl import EncDec
    from encdec_pl.runtime.callbacks import EquilibriumDetector

    torch.manual_seed(0)
    detector = EquilibriumDetector(window=2, tolerance=10.0, patience=1)
    trainer = L.Trainer(max_steps=6, log_every_n_steps=1, callbacks=[detector], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    data = DataLoader(TensorDataset(torch.rand(48, 1, 28, 28)), batch_size=8)
    with caplog.at_level("INFO"):
        trainer.fit(EncDec(latent_dim=4, width=4, code_norm=code_norm), data)
    if code_norm == "rms":
        assert detector.equilibrium_step is None
        assert not any(k.startswith("equilibrium/") for k in trainer.callback_metrics)
        assert "Equilibrium detector off: model.code_norm=rms" in caplog.text
    else:
        assert detector.equilibrium_step is not None
        assert trainer.callback_metrics["equilibrium/reached"] == 1
