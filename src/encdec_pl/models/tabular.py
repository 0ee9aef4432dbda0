"""EDE, AE and VAE on tables: the project's models with the tabular networks as their parts.

Each class is its image counterpart (same loss terms, optimizer, logged metrics, checkpoint
handling) with the encoder and decoder of `encdec_pl.networks.tabular`, built from the table's encoding
`table` (the spec of `encdec_pl.networks.table_encoding.TableEncoding`, which the data module declares and the
checkpoint keeps). EDE's loss is unchanged: three terms on codes, no per-type term. AE and
VAE need the per-type reconstruction loss EDE claims to do without: mean squared error or a
Gaussian likelihood on the numbers, cross-entropy on the categories, `numeric_weight` and
`categorical_weight` between them (EDE takes these settings from the same config group and
ignores them).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from encdec_pl.errors import is_number, is_positive_int, require
from encdec_pl.losses import latent_norm
from encdec_pl.models.ae import Autoencoder
from encdec_pl.models.ede import EncDec
from encdec_pl.models.vae import _LOG_VAR_RANGE, VAE
from encdec_pl.networks.table_encoding import TableEncoding
from encdec_pl.networks.tabular import (
    ARCHS,
    DISCRETE_OUTPUTS,
    ColumnTokenDecoder,
    ColumnTokenEncoder,
    RowDecoder,
    TabularDecoder,
    TabularEncoder,
)

NUMERIC_LOSSES = ("mse", "gaussian")


def _check_table_settings(table: Any, hidden_dim: Any, depth: Any, discrete_output: Any, tau: Any,
                          numeric_loss: Any, numeric_weight: Any, categorical_weight: Any,
                          decoder_norm: Any) -> None:  # fmt: skip
    require(isinstance(table, dict) and "columns" in table, "table", type(table).__name__,
            "the table's encoding, which the data module declares (data=adult)")  # fmt: skip
    require(is_positive_int(hidden_dim), "hidden_dim", hidden_dim, "a positive integer")
    require(is_positive_int(depth), "depth", depth, "a positive integer")
    require(discrete_output in DISCRETE_OUTPUTS, "discrete_output", discrete_output, f"one of {DISCRETE_OUTPUTS}")
    require(is_number(tau) and tau > 0, "tau", tau, "> 0")
    require(numeric_loss in NUMERIC_LOSSES, "numeric_loss", numeric_loss, f"one of {NUMERIC_LOSSES}")
    require(is_number(numeric_weight) and numeric_weight >= 0, "numeric_weight", numeric_weight, ">= 0")
    require(is_number(categorical_weight) and categorical_weight >= 0, "categorical_weight", categorical_weight, ">= 0")
    require(decoder_norm in ("none", "batch"), "decoder_norm", decoder_norm, '"none" or "batch"')


def _check_arch(arch: Any, token_dim: Any, token_layers: Any, token_heads: Any) -> None:
    require(arch in ARCHS, "arch", arch, f"one of {ARCHS}")
    require(is_positive_int(token_dim), "token_dim", token_dim, "a positive integer")
    require(is_positive_int(token_layers), "token_layers", token_layers, "a positive integer")
    require(is_positive_int(token_heads) and token_dim % token_heads == 0, "token_heads", token_heads,
            f"a positive integer dividing token_dim ({token_dim})")  # fmt: skip


class TabularParts:
    """What the three tabular models share: networks built from `table`, row-shaped encode/decode."""

    is_tabular = True
    hparams: Any
    encoder: nn.Module
    decoder: RowDecoder

    def _build_tabular(self, encoder_outputs: int) -> None:
        hp = self.hparams
        self.encoding = TableEncoding(hp["table"])
        enc = self.encoding
        numeric, blocks = enc.numeric_index(), enc.categorical_slices()
        # checkpoints from before network.arch existed hold no `arch`: they are MLPs
        # model.decoder_norm applies to the MLP; the transformer normalises its tokens itself (pre-norm LayerNorm)
        if hp.get("arch", "mlp") == "transformer":
            tokens = hp["token_dim"], hp["token_layers"], hp["token_heads"]
            self.encoder = ColumnTokenEncoder(numeric, blocks, encoder_outputs, *tokens, hp["dropout"])
            self.decoder = ColumnTokenDecoder(enc.width, numeric, blocks, hp["latent_dim"], *tokens,
                                              hp["discrete_output"], hp["tau"])  # fmt: skip
        else:
            self.encoder = TabularEncoder(enc.width, encoder_outputs, hp["hidden_dim"], hp["depth"], hp["dropout"])
            self.decoder = TabularDecoder(enc.width, numeric, blocks, hp["latent_dim"], hp["hidden_dim"], hp["depth"],
                                          hp["discrete_output"], hp["tau"], hp["decoder_norm"])  # fmt: skip
        # sigma of the Gaussian likelihood on each number (numeric_loss=gaussian), learned
        self.log_sigma = nn.Parameter(torch.zeros(len(enc.numeric)))
        self.example_input_array = torch.zeros(1, enc.width)  # the model summary's sizes and FLOPs

    def _check_rows(self, x: torch.Tensor) -> None:
        width = self.encoding.width
        if x.dim() != 2 or x.shape[1] != width:
            raise ValueError(f"encode expects encoded rows of shape (B, {width}), got {tuple(x.shape)}")

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, latent_dim) -> decoder outputs (B, width) in the encoded row's layout (not yet repaired)."""
        latent_dim = self.hparams["latent_dim"]
        if z.dim() != 2 or z.shape[1] != latent_dim:
            raise ValueError(f"decode expects codes of shape (B, {latent_dim}), got {tuple(z.shape)}")
        return self.decoder(z)

    def repaired(self, x: torch.Tensor) -> torch.Tensor:
        """The encoding of the nearest valid rows (exact one-hots, numbers in range, integers)."""
        return self.encoding.repair(x)

    def reconstruction_terms(self, x: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-type reconstruction loss of decoding `z` against rows `x`, summed over columns, mean over rows."""
        hp = self.hparams
        numbers, logits = self.decoder.raw(z)
        with torch.autocast(device_type=x.device.type, enabled=False):
            target = x[:, self.decoder.numeric_index].float()
            error = (numbers.float() - target).pow(2)
            if hp["numeric_loss"] == "gaussian":
                log_sigma = self.log_sigma.float()
                error = 0.5 * error * torch.exp(-2 * log_sigma) + log_sigma + 0.5 * math.log(2 * math.pi)
            recon_numeric = error.sum(dim=1).mean()
            recon_categorical = sum(
                F.cross_entropy(block.float(), x[:, a:b].argmax(dim=1))
                for (a, b), block in zip(self.decoder.categorical, logits, strict=True)
            )
        recon = hp["numeric_weight"] * recon_numeric + hp["categorical_weight"] * recon_categorical
        terms = {"recon": recon, "recon_numeric": recon_numeric.detach(),
                 "recon_categorical": recon_categorical.detach()}  # fmt: skip
        with torch.no_grad():
            x_rec = self.decoder.assemble(numbers, [torch.softmax(block, dim=1) for block in logits])
        terms["_x_rec"] = x_rec
        return terms


class TabularEncDec(TabularParts, EncDec):
    """EDE on encoded table rows: the same pull, push and fake terms, on the tabular networks.

    `discrete_output` (encdec_pl.networks.tabular) sets what the decoder emits for categorical columns; with
    `repair`, the fake term re-encodes the repaired row (exact one-hots, valid numbers).
    """

    def __init__(
        self,
        table: dict[str, Any],
        latent_dim: int = 32,
        width: int = 32,
        dropout: float = 1 / 32,
        hidden_dim: int = 256,
        depth: int = 2,
        discrete_output: str = "softmax",
        tau: float = 0.2,
        arch: str = "mlp",
        token_dim: int = 64,
        token_layers: int = 2,
        token_heads: int = 4,
        numeric_loss: str = "mse",
        numeric_weight: float = 1.0,
        categorical_weight: float = 1.0,
        margin: float = 0.3,  # EncDec's: the recipe's margin for codes at RMS 1
        pull_weight: float = 1.0,
        push_weight: float = 1.0,
        fake_weight: float = 8.0,  # EncDec's: the recipe's (measured on images; experiment=ede_adult sets 2)
        optimizer: str = "adam",
        lr: float = 1e-3,
        latent_norm_window: int = 64,
        decoder_norm: str = "batch",
        code_norm: str = "rms",
    ) -> None:
        _check_table_settings(table, hidden_dim, depth, discrete_output, tau, numeric_loss, numeric_weight,
                              categorical_weight, decoder_norm)  # fmt: skip
        _check_arch(arch, token_dim, token_layers, token_heads)
        super().__init__(latent_dim, width, dropout, margin, pull_weight, push_weight, fake_weight, optimizer, lr,
                         latent_norm_window, code_norm=code_norm)  # fmt: skip
        self.save_hyperparameters(logger=False)  # `table` holds the encoding's knots: kept out of the loggers
        self._build_tabular(latent_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Encoded rows (B, width) -> codes (B, latent_dim)."""
        self._check_rows(x)
        return self.codes(x)

    def compute_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.codes(x)
        x_rec = self.decoder(z)
        fake = self.repaired(x_rec.detach()) if self.hparams["discrete_output"] == "repair" else x_rec.detach()
        z_rec, z_fake = self.codes(torch.cat([x_rec, fake])).chunk(2)
        terms = self.loss(z, z_rec, z_fake)
        terms["latent_norm"] = latent_norm(z, z_rec)
        return terms


class TabularAutoencoder(TabularParts, Autoencoder):
    """The autoencoder on tables: per-type reconstruction loss (see the module docstring).

    `recon_loss` is the image autoencoder's setting (model.recon_loss) and is not used here.
    """

    def __init__(
        self,
        table: dict[str, Any],
        latent_dim: int = 32,
        width: int = 32,
        dropout: float = 1 / 32,
        hidden_dim: int = 256,
        depth: int = 2,
        discrete_output: str = "softmax",
        tau: float = 0.2,
        arch: str = "mlp",
        token_dim: int = 64,
        token_layers: int = 2,
        token_heads: int = 4,
        numeric_loss: str = "mse",
        numeric_weight: float = 1.0,
        categorical_weight: float = 1.0,
        optimizer: str = "adam",
        lr: float = 9.1e-4,
        latent_norm_window: int = 64,
        recon_loss: str = "bce",
        decoder_norm: str = "batch",
    ) -> None:
        _check_table_settings(table, hidden_dim, depth, discrete_output, tau, numeric_loss, numeric_weight,
                              categorical_weight, decoder_norm)  # fmt: skip
        _check_arch(arch, token_dim, token_layers, token_heads)
        # recon_loss (model.recon_loss) is the image AE's pixel loss; on tables the per-type loss is
        # set by numeric_loss and the type weights (network group). Accepted, so model=ae composes.
        super().__init__(latent_dim, width, dropout, optimizer, lr, latent_norm_window, recon_loss)
        self.save_hyperparameters(logger=False)
        self._build_tabular(latent_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self._check_rows(x)
        return self.encoder(x)

    def compute_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encoder(x)
        terms = self.reconstruction_terms(x, z)
        x_rec = terms.pop("_x_rec")
        return {"loss": terms["recon"], **terms, "latent_norm": self.latent_norm_of(z, x_rec)}


class TabularVAE(TabularParts, VAE):
    """The VAE on tables: per-type reconstruction loss + kl_weight * KL(q(z|x) || N(0, I))."""

    def __init__(
        self,
        table: dict[str, Any],
        latent_dim: int = 32,
        width: int = 32,
        dropout: float = 1 / 32,
        hidden_dim: int = 256,
        depth: int = 2,
        discrete_output: str = "softmax",
        tau: float = 0.2,
        arch: str = "mlp",
        token_dim: int = 64,
        token_layers: int = 2,
        token_heads: int = 4,
        numeric_loss: str = "mse",
        numeric_weight: float = 1.0,
        categorical_weight: float = 1.0,
        kl_weight: float = 1.0,
        optimizer: str = "adam",
        lr: float = 1e-3,
        latent_norm_window: int = 64,
        decoder_norm: str = "batch",
    ) -> None:
        _check_table_settings(table, hidden_dim, depth, discrete_output, tau, numeric_loss, numeric_weight,
                              categorical_weight, decoder_norm)  # fmt: skip
        _check_arch(arch, token_dim, token_layers, token_heads)
        super().__init__(latent_dim, width, dropout, kl_weight, optimizer, lr, latent_norm_window)
        self.save_hyperparameters(logger=False)
        self._build_tabular(2 * latent_dim)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_rows(x)
        mean, log_var = self.encoder(x).chunk(2, dim=1)
        return mean, log_var.clamp(*_LOG_VAR_RANGE)

    def compute_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mean, log_var = self.posterior(x)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        terms = self.reconstruction_terms(x, z)
        terms.pop("_x_rec")
        with torch.autocast(device_type=x.device.type, enabled=False):
            mean32, log_var32 = mean.float(), log_var.float()
            kl = 0.5 * (mean32.pow(2) + log_var32.exp() - 1 - log_var32).sum(dim=1).mean()
        out = {"loss": terms["recon"] + self.hparams["kl_weight"] * kl, **terms, "kl": kl}
        with torch.no_grad():
            out["latent_norm"] = self.latent_norm_of(mean, self.decoder(mean))
        return out


TABULAR_VARIANTS: dict[type, type] = {EncDec: TabularEncDec, Autoencoder: TabularAutoencoder, VAE: TabularVAE}


def tabular_variant(model_class: type) -> type:
    """The tabular model for a model class of the `model` group (EncDec -> TabularEncDec), or ValueError."""
    if model_class in TABULAR_VARIANTS.values():
        return model_class
    if model_class not in TABULAR_VARIANTS:
        known = ", ".join(c.__name__ for c in TABULAR_VARIANTS)
        raise ValueError(f"{model_class.__name__} has no tabular form; tables train with {known}")
    return TABULAR_VARIANTS[model_class]
