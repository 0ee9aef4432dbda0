"""A learning-rate schedule for any model: cosine decay over the run's steps (the recipe's, docs/recipe.md)."""

from __future__ import annotations

import math
from typing import Any

import lightning as L

from encdec_pl.errors import ConfigError, is_number, require


def cosine_factor(step: int, total_steps: int, final_ratio: float) -> float:
    """The learning rate's multiplier at `step`: 1 at step 0, `final_ratio` at `total_steps` and after."""
    progress = min(max(step, 0) / total_steps, 1.0)
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class CosineDecay(L.Callback):
    """Set every parameter group's learning rate to `lr * cosine_factor(step, total, final_ratio)` before each
    training step, `lr` being the model's configured rate and `total` the run's length in steps: Lightning's
    `trainer.estimated_stepping_batches`, i.e. `trainer.max_steps`, or `trainer.max_epochs` times the steps
    of an epoch, whichever ends the run first.

    Why a callback: the schedule is a setting of the run (its length), the same for every model, and a
    function of the global step only, so a resumed run continues on the same curve (the base rate is kept
    in the optimizer's state, which the checkpoint holds). The rate is logged as `train/lr`.
    """

    def __init__(self, final_ratio: float = 0.0) -> None:
        require(is_number(final_ratio) and 0 <= final_ratio <= 1, "final_ratio", final_ratio, "in [0, 1]")
        self.final_ratio = final_ratio
        self.total_steps = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total) or total <= 0:
            raise ConfigError(
                "callbacks.lr_schedule decays over the run's length in steps, which is not set "
                "(trainer.max_steps and trainer.max_epochs are both -1): set trainer.max_steps=<steps> "
                "or trainer.max_epochs=<epochs> (or remove the schedule with lr_schedule=constant)"
            )
        self.total_steps = int(total)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        factor = cosine_factor(trainer.global_step, self.total_steps, self.final_ratio)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group.setdefault("initial_lr", group["lr"]) * factor
        pl_module.log("train/lr", trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)
