"""UCI Adult on the real files: row counts, types, the test file's quirks, `?` kept, one-line errors;
the encodings round-trip; repair gives valid rows for any decoder output and refuses NaN/inf."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from encdec_pl.data.adult import CATEGORICAL, FILES, NUMERIC, AdultDataModule, ensure_adult, load_adult
from encdec_pl.data.tabular import NonFiniteOutputError, TableBatches, TableEncoding, fit_spec, validity
from encdec_pl.errors import DataError

from .conftest import DATA_ROOT, run_cli


@pytest.fixture(scope="module")
def adult() -> tuple[pd.DataFrame, pd.DataFrame]:
    return load_adult(DATA_ROOT, download=False)


@pytest.fixture(scope="module")
def encoding(adult: tuple[pd.DataFrame, pd.DataFrame]) -> TableEncoding:
    return TableEncoding(fit_spec(adult[0], CATEGORICAL))


def test_the_real_files_read_with_their_row_counts_types_and_quirks(adult) -> None:
    train, test = adult
    assert (len(train), len(test)) == (32561, 16281)
    assert list(train.columns) == list(test.columns) and len(train.columns) == 15
    assert all(train[name].dtype == np.int64 for name in NUMERIC) and len(NUMERIC) == 6
    # the test file's first line is not a record, and its labels lose their trailing period
    assert test["age"].iloc[0] == 25 and test["fnlwgt"].iloc[0] == 226802
    assert set(train["income"]) == set(test["income"]) == {"<=50K", ">50K"}
    assert (test["income"] == ">50K").sum() == 3846
    # `?` is kept as a category of its own
    assert (train["workclass"] == "?").sum() == 1836 and (train["occupation"] == "?").sum() == 1843
    assert (train["native-country"] == "?").sum() == 583
    assert (train == "?").any(axis=1).sum() == 2399 and (test == "?").any(axis=1).sum() == 1221  # rows with a gap
    assert "?" in CATEGORICAL["workclass"] and "?" not in CATEGORICAL["education"]


def test_the_data_module_splits_officially_and_declares_the_table() -> None:
    dm = AdultDataModule(str(DATA_ROOT), download=False, val_size=3000)
    dm.setup()
    assert (len(dm.train_table), len(dm.val_table), len(dm.test_table)) == (29561, 3000, 16281)
    assert dm.train_set.rows.shape == (29561, 110) and dm.test_set.rows.shape == (16281, 110)
    assert dm.train_set.labels.float().mean() == pytest.approx(0.24, abs=0.01)
    declared = dm.model_inputs()["table"]
    assert [c["name"] for c in declared["columns"]] == list(dm.train_table.columns)
    again = AdultDataModule(str(DATA_ROOT), download=False, val_size=3000)
    again.setup()  # the split has its own seed: the same rows every time
    assert again.val_table.equals(dm.val_table)


def test_table_batches_cover_an_epoch_and_resume_where_they_stopped() -> None:
    rows, labels = torch.arange(50.0).reshape(25, 2), torch.arange(25)
    stream = TableBatches(rows, labels, batch_size=10, shuffle=True, seed=3)
    epoch = [b[1] for b in stream]
    assert [len(b) for b in epoch] == [10, 10, 5] and sorted(torch.cat(epoch).tolist()) == list(range(25))
    it = iter(stream)
    first = next(it)[1]
    state = stream.state_dict()
    rest = [b[1] for b in it]
    resumed = TableBatches(rows, labels, batch_size=10, shuffle=True, seed=0)
    resumed.load_state_dict(state)
    assert [b[1].tolist() for b in resumed] == [b.tolist() for b in rest]
    assert not torch.equal(first, epoch[0])  # a new epoch, a new order


def _copy(tmp_path: Path) -> Path:
    (tmp_path / "adult").mkdir()
    for spec in FILES.values():
        shutil.copy(DATA_ROOT / "adult" / spec.name, tmp_path / "adult" / spec.name)
    return tmp_path


def test_missing_and_truncated_files_stop_with_one_line_naming_them(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "adult" / "adult.test").unlink()
    with pytest.raises(DataError, match=r"Adult files missing in .*adult: adult.test\. Fix: set data.root"):
        ensure_adult(root, download=False)
    shutil.copy(DATA_ROOT / "adult" / "adult.test", root / "adult" / "adult.test")
    data = (root / "adult" / "adult.data").read_bytes()
    (root / "adult" / "adult.data").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"adult.data truncated \(1987152 of 3974305 bytes\)"):
        ensure_adult(root, download=True)  # damaged files are never overwritten by a download


@pytest.mark.slow
def test_the_cli_reports_missing_adult_files_in_one_line(tmp_path: Path) -> None:
    result = run_cli("encdec_pl.train", "data=adult", f"data.root={tmp_path}", "data.download=false",
                     "logger=csv", f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: Adult files missing in") and "adult.data, adult.test" in lines[-1]
    assert "Traceback" not in result.stderr


def test_encodings_round_trip_every_training_and_test_row(adult, encoding: TableEncoding) -> None:
    train, test = adult
    assert encoding.width == 110
    assert encoding.decode(encoding.encode(train)).equals(train)
    # test rows inside the training range come back exactly too
    inside = np.ones(len(test), dtype=bool)
    for column in encoding.numeric:
        inside &= test[column["name"]].between(column["min"], column["max"]).to_numpy()
    assert inside.mean() > 0.99
    assert encoding.decode(encoding.encode(test[inside])).equals(test[inside].reset_index(drop=True))
    numbers = encoding.encode(train)[:, encoding.numeric_index()]
    assert numbers.mean(0).abs().max() < 0.1  # quantile-normal: centred
    # an encoded real row is a valid raw output already, and repair leaves it as it is
    x = encoding.encode(train[:500])
    assert encoding.raw_validity(x)["rows"] == 1.0
    assert torch.allclose(encoding.repair(x), x, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(0.01, 1e6), seed=st.integers(0, 2**16))
def test_repair_turns_any_finite_output_into_valid_rows(encoding: TableEncoding, scale: float, seed: int) -> None:
    raw = torch.randn(64, encoding.width, generator=torch.Generator().manual_seed(seed)) * scale
    rows = encoding.decode(raw)
    assert validity(rows, encoding.spec) == 1.0
    repaired = encoding.repair(raw)
    assert encoding.raw_validity(repaired)["rows"] == 1.0
    assert encoding.decode(repaired).equals(rows)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_repair_refuses_nan_and_infinities_with_a_clear_error(encoding: TableEncoding, bad: float) -> None:
    raw = torch.zeros(10, encoding.width)
    raw[3, 0] = bad
    with pytest.raises(NonFiniteOutputError, match="NaN or infinite values in 1 of 10 rows"):
        encoding.decode(raw)
    with pytest.raises(NonFiniteOutputError):
        encoding.repair(raw)


def test_validity_flags_out_of_range_non_integer_and_unknown_values(adult, encoding: TableEncoding) -> None:
    rows = adult[0][:4].copy().astype({"hours-per-week": float})
    assert validity(rows, encoding.spec) == 1.0
    rows.loc[0, "age"] = 200
    rows.loc[1, "hours-per-week"] = 40.5
    rows.loc[2, "race"] = "Martian"
    assert validity(rows, encoding.spec) == 0.25
