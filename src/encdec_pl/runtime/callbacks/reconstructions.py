"""Callbacks that turn a run into pictures and measurements: reconstruction grids, latent-norm
curves, and quality metrics during training.

Each picture is saved as a PNG in the run folder and, where the logger can show
images (W&B, TensorBoard), logged as well.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from torchvision.utils import make_grid, save_image

from encdec_pl.errors import is_positive_int, require

matplotlib.use("Agg")  # files only: training machines have no display


def log_image(trainer: L.Trainer, key: str, image: torch.Tensor, caption: str = "") -> None:
    """Send one (C, H, W) image in [0, 1] to every logger of `trainer` that shows images."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            # As 0-255 bytes: wandb.Image casts a tensor to uint8 without scaling, so [0, 1] floats came out black.
            pixels = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
            logger.log_image(key=key, images=[pixels], caption=[caption], step=trainer.global_step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, global_step=trainer.global_step)


def reconstruction_grid(originals: torch.Tensor, reconstructions: torch.Tensor, images_per_row: int) -> torch.Tensor:
    """Rows of originals, each followed by the row of their reconstructions, as one (3, H, W) image."""
    rows = []
    for start in range(0, len(originals), images_per_row):
        rows += [originals[start : start + images_per_row], reconstructions[start : start + images_per_row]]
    return make_grid(torch.cat(rows), nrow=images_per_row, padding=2, pad_value=0.5)


class ReconstructionGrid(L.Callback):
    """At each validation, draw the same validation images above their reconstructions D(E(x))."""

    def __init__(self, num_images: int = 32, images_per_row: int = 8, dirpath: str = "images/reconstructions") -> None:
        require(is_positive_int(num_images), "num_images", num_images, "a positive integer")
        require(is_positive_int(images_per_row), "images_per_row", images_per_row, "a positive integer")
        self.num_images, self.images_per_row, self.dirpath = num_images, images_per_row, Path(dirpath)
        self.images: torch.Tensor | None = None
        self.last_path: Path | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.draw(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A run shorter than one validation interval still shows a picture, of its final state.
        if self.last_path is None or self.last_path != self._path(trainer):
            self.draw(trainer, pl_module)

    def _path(self, trainer: L.Trainer) -> Path:
        return self.dirpath / f"step_{trainer.global_step:06d}.png"

    def draw(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or getattr(pl_module, "is_tabular", False):
            return  # (table rows are no pictures: `sample` and `evaluate` show what a tabular model makes)
        if self.images is None:  # the first validation images, the same ones every time
            loader = trainer.val_dataloaders
            if loader is None and trainer.datamodule is not None:  # no validation has run
                loader = trainer.datamodule.val_dataloader()
            if loader is None:
                return
            dataset = loader.dataset
            self.images = torch.stack([dataset[i][0] for i in range(min(self.num_images, len(dataset)))])
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            reconstructions = pl_module.reconstruct(self.images.to(pl_module.device)).float().cpu()
        pl_module.train(was_training)
        grid = reconstruction_grid(self.images, reconstructions, self.images_per_row)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        self.last_path = self._path(trainer)
        save_image(grid, self.last_path)
        caption = f"originals above reconstructions, step {trainer.global_step}"
        log_image(trainer, "val/reconstructions", grid, caption=caption)
