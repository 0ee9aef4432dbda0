"""The recipe's learning-rate schedule (lr_schedule=cosine): its curve, and that a real run follows it."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from encdec_pl import EncDec
from encdec_pl.errors import ConfigError
from encdec_pl.runtime.callbacks import CosineDecay
from encdec_pl.runtime.callbacks.lr_schedule import cosine_factor

from .conftest import compose_config


def test_cosine_factor_runs_from_one_to_the_final_ratio() -> None:
    assert cosine_factor(0, 100, 0.0) == 1.0
    assert cosine_factor(50, 100, 0.0) == pytest.approx(0.5)
    assert cosine_factor(100, 100, 0.1) == pytest.approx(0.1)
    assert cosine_factor(250, 100, 0.1) == pytest.approx(0.1)  # past the end: stays at the floor
    values = [cosine_factor(s, 100, 0.0) for s in range(101)]
    assert all(a >= b for a, b in zip(values[:-1], values[1:], strict=True))


class RecordRates(L.Callback):
    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def _trainer(max_steps: int, *callbacks: L.Callback) -> L.Trainer:
    return L.Trainer(max_steps=max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, accelerator="cpu", callbacks=list(callbacks))  # fmt: skip


def test_a_run_follows_the_curve_and_resumes_on_it(tmp_path) -> None:
    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.rand(64, 1, 28, 28)), batch_size=8)
    model = EncDec(latent_dim=4, width=4, optimizer="adam", lr=1e-3)
    record = RecordRates()
    trainer = _trainer(6, CosineDecay(), record)
    trainer.fit(model, data)
    assert record.rates == pytest.approx([1e-3 * cosine_factor(s, 6, 0.0) for s in range(6)])
    trainer.save_checkpoint(tmp_path / "mid.ckpt")
    # Resumed with a longer budget, the base rate comes from the checkpoint's optimizer state, not from
    # the rate the optimizer had when it stopped.
    resumed = RecordRates()
    _trainer(8, CosineDecay(), resumed).fit(EncDec(latent_dim=4, width=4, optimizer="adam", lr=1e-3), data,
                                            ckpt_path=tmp_path / "mid.ckpt")  # fmt: skip
    assert resumed.rates == pytest.approx([1e-3 * cosine_factor(s, 8, 0.0) for s in (6, 7)])
    assert not math.isclose(resumed.rates[0], record.rates[-1])


def test_resume_lr_factor_lowers_the_scheduled_rate_too(tmp_path) -> None:
    # After a divergence the fault handler resumes at resume_lr_factor times the rate; with a schedule that
    # sets the rate every step, the factor has to reach the schedule's base rate or it is undone at once.
    from encdec_pl.runtime.callbacks import FaultHandler

    data = DataLoader(TensorDataset(torch.rand(64, 1, 28, 28)), batch_size=8)
    torch.manual_seed(0)
    first = _trainer(4, CosineDecay())
    first.fit(EncDec(latent_dim=4, width=4, optimizer="adam", lr=1e-3), data)
    first.save_checkpoint(tmp_path / "mid.ckpt")
    resumed = RecordRates()
    trainer = _trainer(6, FaultHandler(resume_lr_factor=0.5, save_on_signal=False), CosineDecay(), resumed)
    trainer.fit(EncDec(latent_dim=4, width=4, optimizer="adam", lr=1e-3), data, ckpt_path=tmp_path / "mid.ckpt")
    assert resumed.rates == pytest.approx([0.5e-3 * cosine_factor(s, 6, 0.0) for s in (4, 5)])


def test_with_max_epochs_only_the_schedule_spans_the_epochs() -> None:
    # data=adult runs are set in epochs: the decay must end with the last epoch, not at max_steps=-1.
    data = DataLoader(TensorDataset(torch.rand(32, 1, 28, 28)), batch_size=8)  # 4 steps per epoch
    record = RecordRates()
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", callbacks=[CosineDecay(), record])  # fmt: skip
    trainer.fit(EncDec(latent_dim=4, width=4, optimizer="adam", lr=1e-3), data)
    assert record.rates == pytest.approx([1e-3 * cosine_factor(s, 8, 0.0) for s in range(8)])


def test_without_a_length_the_schedule_says_what_to_set() -> None:
    data = DataLoader(TensorDataset(torch.rand(8, 1, 28, 28)), batch_size=8)
    trainer = L.Trainer(max_epochs=-1, max_steps=-1, max_time="00:00:00:05", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                        callbacks=[CosineDecay()])  # fmt: skip
    with pytest.raises(ConfigError, match="trainer.max_steps=<steps> or trainer.max_epochs=<epochs>"):
        trainer.fit(EncDec(latent_dim=4, width=4), data)


def test_the_schedule_is_on_by_default_and_one_override_away(tmp_path) -> None:
    assert compose_config("train", [], tmp_path).callbacks.lr_schedule._target_.endswith("CosineDecay")
    assert "lr_schedule" not in compose_config("train", ["lr_schedule=constant"], tmp_path).callbacks
    assert "lr_schedule" not in compose_config("train", ["experiment=ede_published"], tmp_path).callbacks
    back = compose_config("train", ["experiment=ede_published", "lr_schedule=cosine"], tmp_path)
    assert back.callbacks.lr_schedule._target_ == "encdec_pl.runtime.callbacks.CosineDecay"
