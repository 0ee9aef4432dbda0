"""The tabular scores on known answers: real hold-out rows near the ceiling, independently
resampled columns low on Trend, ML efficacy and detection, copies of training rows caught by DCR."""

from __future__ import annotations

import pandas as pd
import pytest

from encdec_pl.data.adult import AdultDataModule
from encdec_pl.data.tabular import TableEncoding
from encdec_pl.evaluation.tabular import (
    alpha_beta,
    dcr_share,
    detection,
    diagnostic_validity,
    independent_columns,
    ml_efficacy,
    quality,
)

from .conftest import DATA_ROOT

pytestmark = pytest.mark.slow

N = 6000  # rows per set: enough for stable scores, a few seconds per metric


@pytest.fixture(scope="module")
def adult() -> AdultDataModule:
    dm = AdultDataModule(str(DATA_ROOT), download=False)
    dm.setup()
    return dm


def _rows(table: pd.DataFrame, n: int = N, seed: int = 0) -> pd.DataFrame:
    return table.sample(n=min(n, len(table)), random_state=seed).reset_index(drop=True)


def test_real_rows_score_near_the_ceiling_and_independent_columns_near_the_floor(adult: AdultDataModule) -> None:
    spec, test = adult.encoding.spec, _rows(adult.test_table)
    real = _rows(adult.train_table)
    fake = independent_columns(adult.train_table, N)
    q_real, q_fake = quality(test, real, spec), quality(test, fake, spec)
    # Shape measures nothing joint: both are near-perfect
    assert q_real["shape"] > 0.98 and q_fake["shape"] > 0.97
    assert q_real["trend"] > 0.95 and q_fake["trend"] < q_real["trend"] - 0.02  # (0.982 / 0.922 on full sets)
    # the default thresholds skip weakly related pairs, which changes the score
    assert q_fake["trend_default_thresholds"] != pytest.approx(q_fake["trend"], abs=0.02)
    assert ml_efficacy(real, adult.test_table, spec) > 0.90
    assert ml_efficacy(fake, adult.test_table, spec) < 0.6
    assert detection(test, real, spec) > 0.85
    assert detection(test, fake, spec) < 0.15
    ab_real, ab_fake = alpha_beta(test, real, adult.encoding), alpha_beta(test, fake, adult.encoding)
    assert ab_real["alpha_precision"] > 0.95 and ab_real["beta_recall"] > 0.4
    assert ab_fake["beta_recall"] < 0.2


def test_dcr_share_is_one_half_for_unseen_rows_and_one_for_copies(adult: AdultDataModule) -> None:
    encoding = TableEncoding(adult.encoding.spec)
    unseen = dcr_share(adult.val_table, adult.train_table, adult.test_table, encoding)
    assert unseen == pytest.approx(0.5, abs=0.05)
    copies = dcr_share(_rows(adult.train_table, 2000), adult.train_table, adult.test_table, encoding)
    assert copies > 0.7  # the training rows were subsampled to the hold-out's size: most copies are caught


def test_diagnostic_validity_is_one_for_valid_rows_and_drops_for_invalid_ones(adult: AdultDataModule) -> None:
    spec = adult.encoding.spec
    rows = _rows(adult.train_table, 1000)
    assert diagnostic_validity(adult.train_table, rows, spec) == 1.0
    rows.loc[: len(rows) // 2, "workclass"] = "Astronaut"
    assert diagnostic_validity(adult.train_table, rows, spec) < 1.0
