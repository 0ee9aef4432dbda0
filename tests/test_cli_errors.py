"""Bad input to `python -m encdec_pl.train` gives one clear line and a non-zero exit, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "override,expected",
    [
        ("loss.fake_wieght=2.0", "did you mean 'loss.fake_weight'"),
        ("loss.fake_weight=-1", "loss.fake_weight=-1 is invalid: must be >= 0"),
        ("model.latent_dim=0", "model.latent_dim=0 is invalid: must be a positive integer"),
        ("model=transformer", "model=transformer is not an option; choose one of: "),
        ("trainer.max_epoch=3", "did you mean 'trainer.max_epochs'"),
        ("data.batch_size=-5", "data.batch_size=-5 is invalid"),
        ("ckpt_path=/no/such.ckpt", "ckpt_path=/no/such.ckpt: no checkpoint file at /no/such.ckpt"),
        ("data.root=/no/such/folder", "MNIST files missing in /no/such/folder/MNIST/raw"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(override: str, expected: str, tmp_path: Path) -> None:
    result = run_cli("encdec_pl.train", override, "data.download=false", f"hydra.run.dir={tmp_path}", "logger=none")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "checkpoints").exists()  # nothing started


def test_help_lists_the_config_groups() -> None:
    result = run_cli("encdec_pl.train", "--help")
    assert result.returncode == 0
    for group in ("model", "loss", "data", "trainer", "logger", "callbacks", "experiment", "debug"):
        assert f"{group}:" in result.stdout
