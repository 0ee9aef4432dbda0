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
import torch
from torchvision.utils import make_grid

from encdec_pl.errors import is_positive_int, require
from encdec_pl.evaluation.classifier import load_classifier, require_classifier
from encdec_pl.evaluation.scoring import Split, judge, score_model
from encdec_pl.runtime.callbacks.reconstructions import log_image
from encdec_pl.runtime.history import series

matplotlib.use("Agg")  # files only: training machines have no display
import matplotlib.pyplot as plt  # noqa: E402


class QualityMonitor(L.Callback):
    """Score the model before training, every `every_n_steps` steps and at the end; log `quality/<metric>`.

    The metrics are those of `python -m encdec_pl.evaluate` (encdec_pl.evaluation.score_model),
    computed on fixed subsets so that they are cheap and comparable across steps:
    `num_images` validation images (the test split stays untouched), probes and the
    sampling Gaussian fit on `fit_size` training images without augmentation, `num_samples`
    samples. The evaluation classifier must exist at `classifier_path`
    (`python -m encdec_pl.classifier` makes it). Also draws `plot_path`: the windowed latent
    norm and the quality metrics against steps. Scoring draws nothing from the global RNG
    (subsets and samples have their own generators), so the monitor does not change the
    course of training.
    """

    SAMPLE_GRID = 32  # samples shown in the logged grid `quality/samples`
    PLOTTED = ("label_preservation", "frechet/reconstructions", "frechet/samples", "probe/knn/codes")

    def __init__(
        self,
        classifier_path: str,
        every_n_steps: int = 200,
        num_images: int = 1000,
        fit_size: int = 2000,
        num_samples: int = 1000,
        knn_k: int = 5,
        seed: int = 0,
        plot_path: str | None = "images/quality.png",
    ) -> None:
        for name, value in [("every_n_steps", every_n_steps), ("num_images", num_images), ("fit_size", fit_size),
                            ("num_samples", num_samples), ("knn_k", knn_k)]:  # fmt: skip
            require(is_positive_int(value), name, value, "a positive integer")
        self.classifier_path = Path(classifier_path)
        self.every_n_steps, self.num_images, self.fit_size = every_n_steps, num_images, fit_size
        self.num_samples, self.knn_k, self.seed = num_samples, knn_k, seed
        self.plot_path = Path(plot_path) if plot_path else None
        self.rows: list[dict[str, float]] = []
        self._ready = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or self._ready:
            return
        datamodule = trainer.datamodule
        dataset = datamodule.dataset_name
        require_classifier(self.classifier_path, dataset, "the quality callback")
        self.classifier, _ = load_classifier(self.classifier_path, dataset)
        datamodule.setup("fit")
        self.monitored = Split(*datamodule.val_set.as_tensors()).subset(self.num_images, self.seed)
        self.fit = Split(*datamodule.train_set.as_tensors()).subset(self.fit_size, self.seed)
        self.judged = judge(self.classifier, self.monitored.images)
        self._ready = True

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The starting point, before any step. Not repeated on resuming.
        # Under DDP only rank 0 measures (every rank holds the same weights).
        if not self.rows and trainer.is_global_zero:
            self.publish(trainer, self.measure(trainer, pl_module))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if (
            not trainer.is_global_zero
            or step % self.every_n_steps != 0
            or (self.rows and self.rows[-1]["step"] == step)
        ):
            return  # (the same step twice: gradient accumulation)
        self.publish(trainer, self.measure(trainer, pl_module))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The final state as well, so that a run's last quality figures (metrics.json, the value a
        # hyperparameter search optimises) describe the model it saved, whatever every_n_steps is.
        if not trainer.is_global_zero or (self.rows and self.rows[-1]["step"] == trainer.global_step):
            return
        self.publish(trainer, self.measure(trainer, pl_module))

    @staticmethod
    def publish(trainer: L.Trainer, metrics: dict[str, float]) -> None:
        """Each measurement once, at the step it was made: written to the loggers directly, and kept
        in callback_metrics (metrics.json, the value a hyperparameter search optimises).

        Not through self.log: Lightning would send the last value again at every logging step
        until the next measurement, and every chart of it would be a staircase.
        """
        values = {f"quality/{k}": v for k, v in metrics.items()}
        for logger in trainer.loggers:
            logger.log_metrics(values, step=trainer.global_step)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in values.items()})

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        """Score the model now; keep the row for the plot and return the metrics."""
        self.classifier.to(pl_module.device)
        scores = score_model(
            pl_module, self.classifier, self.monitored, self.fit, self.num_samples, self.knn_k, self.seed, self.judged
        )
        metrics = {k: v for k, v in scores.metrics.items() if not k.startswith("accuracy/")}
        if trainer.loggers and len(scores.samples):  # the samples scored, as a picture (W&B, TensorBoard)
            grid = make_grid(scores.samples[: self.SAMPLE_GRID].float().cpu(), nrow=8, padding=2, pad_value=0.5)
            log_image(trainer, "quality/samples", grid, caption=f"samples D(z), step {trainer.global_step}")
        norm = trainer.callback_metrics.get("train/latent_norm_avg")
        row = {"step": trainer.global_step, **metrics}
        if norm is not None:
            row["latent_norm_avg"] = float(norm)
        self.rows.append(row)
        self.plot()
        return metrics

    def plot(self) -> None:
        if self.plot_path is None or len(self.rows) < 2:
            return
        fig, axes = plt.subplots(len(self.PLOTTED) + 1, 1, figsize=(7, 2 * (len(self.PLOTTED) + 1)), sharex=True)
        for ax, key in zip(axes, ("latent_norm_avg", *self.PLOTTED), strict=True):
            # Each measurement a point at its step (the thin line only guides the eye).
            ax.plot(*series(self.rows, key, "step"), marker="o", markersize=3, linewidth=0.6, alpha=0.8)
            ax.set_ylabel(key.replace("/", "\n"), fontsize=8)
            ax.grid(alpha=0.3)
        axes[-1].set_xlabel("step")
        fig.tight_layout()
        self.plot_path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(self.plot_path, dpi=100)
        plt.close(fig)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = state_dict["rows"]
