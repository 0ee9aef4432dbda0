"""EncDec: the encoder-decoder-encoder network of docs/method.md as a LightningModule."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from encdec_pl.errors import is_number, require
from encdec_pl.losses import EDELoss, latent_norm
from encdec_pl.models.base import BaseAutoencoder
from encdec_pl.networks import DataSpec

# What the published runs used where the recipe differs (the rest of the published setup is the default);
# conf/experiment/ede_published.yaml is the same for the command line.
PUBLISHED: dict[str, Any] = {
    "optimizer": "rmsprop",
    "lr": 1e-4,
    "decoder_norm": "none",
    "code_norm": "none",
    "margin": 1.0,
    "fake_weight": 2.0,
}

# model.code_norm: what is done to the encoder's output before it is a code (docs/recipe.md, "Code scale").
CODE_NORMS = ("none", "rms")


class UnitRMS(nn.Module):
    """Each code (row) scaled to root-mean-square 1. No parameters, so checkpoints keep the same tensors.

    EDE's loss fixes the distances between codes (the margin, the fake distance d*) but not the codes' size,
    which drifts with training (the latent norm); with every code at RMS 1 the margin is a fixed share of it.
    """

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # the mean square in float32: under bf16 autocast a 32-term sum of squares loses digits
        return z * torch.rsqrt(z.float().pow(2).mean(dim=1, keepdim=True) + 1e-8).to(z.dtype)


class EncDec(BaseAutoencoder):
    """Encoder-decoder-encoder trained only by comparing codes (pull, push, fake).

    Defaults are the recipe (docs/recipe.md): the published networks and loss terms (latent size 32, width 32,
    dropout 1/32; docs/method.md) with batch norm in the decoder, every code scaled to RMS 1 at the encoder's
    output (UnitRMS) with margin 0.3, fake weight 8 (published: 2), and Adam at 1e-3. `EncDec(**PUBLISHED)` is the
    published model (RMSprop at 1e-4, the plain decoder, codes of free size, margin 1, fake weight 2).

    >>> model = EncDec.load_from_checkpoint("outputs/train/.../checkpoints/last.ckpt")
    >>> z = model.encode(x)        # (B, 1, 28, 28) in [0, 1] -> (B, 32)
    >>> x_rec = model.decode(z)    # -> (B, 1, 28, 28) in [0, 1]
    """

    settings_before_they_existed: ClassVar[dict[str, Any]] = {
        **BaseAutoencoder.settings_before_they_existed,
        "code_norm": "none",
    }

    def __init__(
        self,
        latent_dim: int = 32,
        width: int = 32,
        dropout: float = 1 / 32,
        margin: float = 0.3,  # the recipe's, for codes at RMS 1; published (EDELoss's default): 1 with free codes
        pull_weight: float = EDELoss.pull_weight,
        push_weight: float = EDELoss.push_weight,
        fake_weight: float = 8.0,  # the recipe's (docs/recipe.md, "Fake weight"); published (EDELoss's default): 2
        optimizer: str = "adam",
        lr: float = 1e-3,
        latent_norm_window: int = 64,
        data_spec: DataSpec | dict[str, Any] | None = None,
        decoder_norm: str = "batch",
        code_norm: str = "rms",
    ) -> None:
        require(is_number(margin) and margin > 0, "margin", margin, "> 0")
        for name, weight in [("pull_weight", pull_weight), ("push_weight", push_weight), ("fake_weight", fake_weight)]:
            require(is_number(weight) and weight >= 0, name, weight, ">= 0")
        require(code_norm in CODE_NORMS, "code_norm", code_norm, f"one of {list(CODE_NORMS)}")
        super().__init__(latent_dim, width, dropout, optimizer, lr, latent_norm_window, data_spec, decoder_norm)
        self.save_hyperparameters()
        self.loss = EDELoss(margin, pull_weight, push_weight, fake_weight)
        self.code_scale = UnitRMS() if code_norm == "rms" else nn.Identity()

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's output as a code, scaled by code_norm: the loss's path (encode checks the shape first)."""
        return self.code_scale(self.encoder(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.code_scale(super().encode(x))

    def compute_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.codes(x)
        x_rec = self.decoder(z)
        # One encoder pass over both re-encodings. The second half sees the decoder
        # output detached (docs/method.md's sg): the fake term trains the encoder alone,
        # as a GAN's discriminator, and never the decoder.
        z_rec, z_fake = self.codes(torch.cat([x_rec, x_rec.detach()])).chunk(2)
        terms = self.loss(z, z_rec, z_fake)
        terms["latent_norm"] = latent_norm(z, z_rec)
        return terms
