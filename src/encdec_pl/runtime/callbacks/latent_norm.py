"""Callbacks that turn a run into pictures and measurements: reconstruction grids, latent-norm
curves, and quality metrics during training.

Each picture is saved as a PNG in the run folder and, where the logger can show
images (W&B, TensorBoard), logged as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import matplotlib

from encdec_pl.runtime.history import series

matplotlib.use("Agg")  # files only: training machines have no display
import matplotlib.pyplot as plt  # noqa: E402


def plotted_terms(rows: list[dict[str, float]]) -> list[str]:
    """The loss terms among logged training rows: every logged name but the step and the latent norm, "loss" first."""
    names = dict.fromkeys(key for row in rows for key in row)
    terms = [key for key in names if key not in ("step", "latent_norm", "latent_norm_avg")]
    return sorted(terms, key=lambda key: key != "loss")


class LatentNormPlot(L.Callback):
    """Keep the logged training scalars and plot latent norm and loss terms against steps.

    Samples `trainer.callback_metrics` at the trainer's logging interval (so it costs
    what logging costs), keeps the rows in checkpoints so the curve survives a
    resume, and redraws the PNG at every validation and at the end of training.
    """

    def __init__(self, path: str = "images/latent_norm.png") -> None:
        self.path = Path(path)
        self.rows: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step % trainer.log_every_n_steps != 0:
            return
        row = {k[len("train/") :]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
        if row:
            self.rows.append({"step": trainer.global_step, **row})

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.plot(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.plot(trainer)

    def plot(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero or len(self.rows) < 2:
            return
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
        top.plot(*series(self.rows, "latent_norm", "step"), color="tab:blue", alpha=0.3, label="per step")
        top.plot(*series(self.rows, "latent_norm_avg", "step"), color="tab:blue", label="window mean")
        top.set_ylabel("latent norm")
        for key in plotted_terms(self.rows):
            bottom.plot(*series(self.rows, key, "step"), label=key)
        bottom.set_xlabel("step")
        bottom.set_ylabel("training loss terms")
        for ax in (top, bottom):
            ax.legend(loc="best")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.path, dpi=110)
        plt.close(fig)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = state_dict["rows"]
