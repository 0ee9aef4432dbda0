"""The training progress bar (callbacks.rich_progress_bar): its epoch label for epoch and step budgets."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from hydra.utils import instantiate

from .conftest import compose_config


def _label(tmp_path: Path, overrides: list[str], **trainer_args: object) -> str:
    cfg = compose_config("train", overrides, tmp_path)
    bar = instantiate(cfg.callbacks.rich_progress_bar)  # the class the config names, as train builds it
    trainer = L.Trainer(logger=False, enable_checkpointing=False, accelerator="cpu", callbacks=[bar], **trainer_args)
    bar.setup(trainer, L.LightningModule(), "fit")
    return bar._get_train_description(3).strip()


def test_a_step_budget_shows_the_steps_not_a_negative_epoch(tmp_path: Path) -> None:
    # the recipe's budget: max_epochs=-1 (no epoch bound), max_steps=3000; Lightning's own bar says "Epoch 3/-2"
    assert _label(tmp_path, ["experiment=ede_mnist_fast"], max_epochs=-1, max_steps=3000) == "Epoch 3 · 3000 steps"


def test_an_epoch_budget_keeps_lightnings_label(tmp_path: Path) -> None:
    assert _label(tmp_path, [], max_epochs=10) == "Epoch 3/9"
