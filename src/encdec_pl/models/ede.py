"""EncDec: the encoder-decoder-encoder network of docs/method.md as a LightningModule."""

from __future__ import annotations

from typing import Any

import torch

from encdec_pl.errors import is_number, require
from encdec_pl.losses import EDELoss, latent_norm
from encdec_pl.models.base import BaseAutoencoder
from encdec_pl.networks import DataSpec

# What the published runs used where the recipe differs (the rest of the published setup is the default);
# conf/experiment/ede_published.yaml is the same for the command line.
PUBLISHED: dict[str, Any] = {"optimizer": "rmsprop", "lr": 1e-4, "decoder_norm": "none"}


class EncDec(BaseAutoencoder):
    """Encoder-decoder-encoder trained only by comparing codes (pull, push, fake).

    Defaults are the recipe (docs/recipe.md): the published networks and loss (latent size 32, width 32,
    dropout 1/32, EDELoss's margin 1 and fake weight 2; docs/method.md) with batch norm in the decoder and
    Adam at 1e-3. `EncDec(**PUBLISHED)` is the published model (RMSprop at 1e-4, the plain decoder).

    >>> model = EncDec.load_from_checkpoint("outputs/train/.../checkpoints/last.ckpt")
    >>> z = model.encode(x)        # (B, 1, 28, 28) in [0, 1] -> (B, 32)
    >>> x_rec = model.decode(z)    # -> (B, 1, 28, 28) in [0, 1]
    """

    def __init__(
        self,
        latent_dim: int = 32,
        width: int = 32,
        dropout: float = 1 / 32,
        margin: float = EDELoss.margin,
        pull_weight: float = EDELoss.pull_weight,
        push_weight: float = EDELoss.push_weight,
        fake_weight: float = EDELoss.fake_weight,
        optimizer: str = "adam",
        lr: float = 1e-3,
        latent_norm_window: int = 64,
        data_spec: DataSpec | dict[str, Any] | None = None,
        decoder_norm: str = "batch",
    ) -> None:
        require(is_number(margin) and margin > 0, "margin", margin, "> 0")
        for name, weight in [("pull_weight", pull_weight), ("push_weight", push_weight), ("fake_weight", fake_weight)]:
            require(is_number(weight) and weight >= 0, name, weight, ">= 0")
        super().__init__(latent_dim, width, dropout, optimizer, lr, latent_norm_window, data_spec, decoder_norm)
        self.save_hyperparameters()
        self.loss = EDELoss(margin, pull_weight, push_weight, fake_weight)

    def compute_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encoder(x)
        x_rec = self.decoder(z)
        # One encoder pass over both re-encodings. The second half sees the decoder
        # output detached (docs/method.md's sg): the fake term trains the encoder alone,
        # as a GAN's discriminator, and never the decoder.
        z_rec, z_fake = self.encoder(torch.cat([x_rec, x_rec.detach()])).chunk(2)
        terms = self.loss(z, z_rec, z_fake)
        terms["latent_norm"] = latent_norm(z, z_rec)
        return terms
