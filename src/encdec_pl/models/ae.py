"""Autoencoder: the baseline that compares pixels, on EDE's own networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from encdec_pl.models.base import BaseAutoencoder


class Autoencoder(BaseAutoencoder):
    """The published encoder and decoder trained to reproduce pixels (mean squared error).

    Same networks, optimizer and data as EncDec; only the loss differs, so any gap in
    the scores is the loss's doing. Logs `recon` (the MSE, also `loss`) and `latent_norm`.
    """

    def __init__(
        self,
        latent_dim: int = 32,
        width: int = 32,
        dropout: float = 1 / 32,
        optimizer: str = "rmsprop",
        lr: float = 1e-4,
        latent_norm_window: int = 64,
    ) -> None:
        super().__init__(latent_dim, width, dropout, optimizer, lr, latent_norm_window)
        self.save_hyperparameters()

    def compute_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encoder(x)
        x_rec = self.decoder(z)
        recon = F.mse_loss(x_rec.float(), x.float())
        return {"loss": recon, "recon": recon, "latent_norm": self.latent_norm_of(z, x_rec)}
