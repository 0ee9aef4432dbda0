"""Variational autoencoder: the baseline with a sampling encoder, on EDE's own networks."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from encdec_pl.errors import is_number, require
from encdec_pl.models.base import BaseAutoencoder
from encdec_pl.networks import DataSpec

# exp(log_var) overflows float32 near 88; these bounds never bind in a healthy run.
_LOG_VAR_RANGE = (-30.0, 20.0)


class VAE(BaseAutoencoder):
    """A VAE with a Bernoulli decoder and a standard normal prior, on the published networks.

    The encoder is the published one with 2 * latent_dim outputs, the mean and the
    log-variance of q(z|x); `encode` returns the mean, the code used for probes,
    reconstructions and the latent norm. Loss: the negative ELBO per image,
    `recon` (binary cross-entropy summed over pixels) + `kl_weight` * `kl`
    (KL(q(z|x) || N(0, I)) summed over latent dims).
    """

    encoder_outputs_per_dim = 2

    def __init__(
        self,
        latent_dim: int = 32,
        width: int = 32,
        dropout: float = 1 / 32,
        kl_weight: float = 1.0,
        optimizer: str = "adam",
        lr: float = 1e-3,
        latent_norm_window: int = 64,
        data_spec: DataSpec | dict[str, Any] | None = None,
        decoder_norm: str = "batch",
    ) -> None:
        require(is_number(kl_weight) and kl_weight >= 0, "kl_weight", kl_weight, ">= 0")
        super().__init__(latent_dim, width, dropout, optimizer, lr, latent_norm_window, data_spec, decoder_norm)
        self.save_hyperparameters()

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x), each (B, latent_dim)."""
        mean, log_var = super().encode(x).chunk(2, dim=1)
        return mean, log_var.clamp(*_LOG_VAR_RANGE)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) in [0, 1] -> the posterior means (B, latent_dim)."""
        return self.posterior(x)[0]

    def compute_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mean, log_var = self.posterior(x)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        x_rec = self.decoder(z)
        # In float32 outside autocast: binary_cross_entropy is unsafe under CUDA autocast.
        with torch.autocast(device_type=x.device.type, enabled=False):
            recon = F.binary_cross_entropy(x_rec.float(), x.float(), reduction="sum") / len(x)
            mean32, log_var32 = mean.float(), log_var.float()
            kl = 0.5 * (mean32.pow(2) + log_var32.exp() - 1 - log_var32).sum(dim=1).mean()
        terms = {"loss": recon + self.hparams["kl_weight"] * kl, "recon": recon, "kl": kl}
        with torch.no_grad():  # the latent norm of the codes, D(mean) re-encoded, as for every model
            terms["latent_norm"] = self.latent_norm_of(mean, self.decoder(mean))
        return terms
