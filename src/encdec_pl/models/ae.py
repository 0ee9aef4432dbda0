"""Autoencoder: the baseline that compares pixels, on EDE's own networks."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from encdec_pl.errors import require
from encdec_pl.models.base import BaseAutoencoder
from encdec_pl.networks import DataSpec

RECON_LOSSES = ("bce", "mse")


class Autoencoder(BaseAutoencoder):
    """The published encoder and decoder trained to reproduce pixels.

    Same networks, optimizer and data as EncDec; only the loss differs, so any gap in
    the scores is the loss's doing. `recon_loss` is what is minimised (`recon`, also `loss`):

    - "bce" (default): binary cross-entropy per pixel. Its gradient at the decoder's final
      logits is D(E(x)) - x, so it never vanishes.
    - "mse": pixel mean squared error. Through the decoder's final sigmoid its gradient is
      (D(E(x)) - x) * s(1 - s); the first steps (measured: Adam at 1e-3 and 1e-4) push every
      logit far below zero (most MNIST pixels are black), the sigmoid saturates, the gradient
      reaches 0 and the output stays black for good (loss ~0.11, docs/recipe.md).

    Logs `recon`, `mse` (the pixel MSE whatever `recon_loss` is) and `latent_norm`.
    """

    # The AE's checkpoints from before model.recon_loss were trained on pixel MSE.
    settings_before_they_existed: ClassVar[dict[str, Any]] = {
        **BaseAutoencoder.settings_before_they_existed,
        "recon_loss": "mse",
    }

    def __init__(
        self,
        latent_dim: int = 32,
        width: int = 32,
        dropout: float = 1 / 32,
        optimizer: str = "adam",
        lr: float = 9.1e-4,
        latent_norm_window: int = 64,
        recon_loss: str = "bce",
        data_spec: DataSpec | dict[str, Any] | None = None,
        decoder_norm: str = "batch",
    ) -> None:
        require(recon_loss in RECON_LOSSES, "recon_loss", recon_loss, f"one of {sorted(RECON_LOSSES)}")
        super().__init__(latent_dim, width, dropout, optimizer, lr, latent_norm_window, data_spec, decoder_norm)
        self.save_hyperparameters()

    def compute_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encoder(x)
        x_rec = self.decoder(z)
        # In float32 outside autocast: binary_cross_entropy is unsafe under CUDA autocast.
        with torch.autocast(device_type=x.device.type, enabled=False):
            x_rec32, x32 = x_rec.float(), x.float()
            mse = F.mse_loss(x_rec32, x32)
            recon = mse if self.hparams["recon_loss"] == "mse" else F.binary_cross_entropy(x_rec32, x32)
        return {"loss": recon, "recon": recon, "mse": mse, "latent_norm": self.latent_norm_of(z, x_rec)}
