"""What every autoencoder-like model in the project shares.

This class builds its encoder and decoder from what the data yields (`data_spec`: the
published image networks, networks/image.py, unless the data module declares otherwise), provides
the public API (`encode`, `decode`, `load_from_checkpoint`), the optimizer, and the
logging of loss terms and the latent norm; a subclass implements `compute_losses`.
EDE and the baselines (AE, VAE) thus share networks, optimizer and metric names,
which is what makes their curves and scores comparable.
"""

from __future__ import annotations

import importlib
import inspect
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger

from encdec_pl.errors import CheckpointError, first_line, is_number, is_positive_int, require
from encdec_pl.losses import latent_norm
from encdec_pl.models.checkpoints import check_checkpoint_fits, read_checkpoint
from encdec_pl.networks import DECODER_NORMS, DataSpec, data_spec_from

OPTIMIZERS = {"rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


class WindowMean:
    """Trailing mean over the last `size` values (docs/method.md's 64-step latent-norm window).

    Values stay tensors on their device so that logging does not force a sync every step.
    """

    def __init__(self, size: int) -> None:
        self.values: deque[torch.Tensor] = deque(maxlen=size)

    def update(self, value: torch.Tensor) -> torch.Tensor:
        self.values.append(value.detach())
        return torch.stack(tuple(self.values)).mean()

    def state(self) -> list[float]:
        return [float(v) for v in self.values]

    def load_state(self, values: list[float]) -> None:
        self.values.clear()
        self.values.extend(torch.tensor(v) for v in values)


class BaseAutoencoder(L.LightningModule):
    """Shared training loop for models with an encoder and a decoder, on any data that has a spec.

    Subclasses call `super().__init__(latent_dim, width, dropout, optimizer, lr,
    latent_norm_window, data_spec, decoder_norm)`, then `self.save_hyperparameters()`, and implement
    `compute_losses(x)`, which returns a dict of scalar tensors holding at least
    "loss" (what is minimised) and "latent_norm" (see `latent_norm_of`); the other
    entries are the loss terms, logged as train/<term> and plotted. `data_spec` (what the
    data module yields, `datamodule.data_spec`, or its dict form) picks the networks;
    None: the published networks for 1x28x28 images.
    """

    # Encoder outputs per latent dimension: 1 for a code, 2 for a VAE's mean and log-variance.
    encoder_outputs_per_dim = 1
    # Settings added after checkpoints were first written, each with the value that reproduces the model of
    # a checkpoint that does not name it (the behaviour before the setting existed), whatever the default is now.
    settings_before_they_existed: ClassVar[dict[str, Any]] = {"decoder_norm": "none"}

    def __init__(
        self,
        latent_dim: int = 32,
        width: int = 32,
        dropout: float = 1 / 32,
        optimizer: str = "rmsprop",
        lr: float = 1e-4,
        latent_norm_window: int = 64,
        data_spec: DataSpec | dict[str, Any] | None = None,
        decoder_norm: str = "none",
    ) -> None:
        require(is_positive_int(latent_dim), "latent_dim", latent_dim, "a positive integer")
        require(is_positive_int(width), "width", width, "a positive integer")
        require(is_number(dropout) and 0 <= dropout < 1, "dropout", dropout, "in [0, 1)")
        require(optimizer in OPTIMIZERS, "optimizer", optimizer, f"one of {sorted(OPTIMIZERS)}")
        require(is_number(lr) and lr > 0, "lr", lr, "> 0")
        require(is_positive_int(latent_norm_window), "latent_norm_window", latent_norm_window, "a positive integer")
        super().__init__()
        self.data_spec = data_spec_from(data_spec)
        require(decoder_norm in DECODER_NORMS, "decoder_norm", decoder_norm, f"one of {sorted(DECODER_NORMS)}")
        self.encoder, self.decoder = self.data_spec.networks(
            self.encoder_outputs_per_dim * latent_dim, latent_dim, width, dropout, decoder_norm
        )
        self.latent_norm_avg = WindowMean(latent_norm_window)
        self.example_input_array = torch.zeros(1, *self.data_spec.shape)  # the model summary's sizes and FLOPs

    def save_hyperparameters(self, *args: Any, frame: Any = None, **kwargs: Any) -> None:
        """Lightning's, with `data_spec` kept as plain data (its dict form), whatever the constructor got:
        hyperparameters travel in checkpoints, which load with weights_only=True, and to the loggers."""
        super().save_hyperparameters(*args, frame=frame or inspect.currentframe().f_back, **kwargs)  # type: ignore[union-attr]
        if "data_spec" in self.hparams:
            self.hparams["data_spec"] = self.data_spec.as_dict()

    # ----- public API -------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Data (B, *data_spec.shape) -> codes (B, latent_dim); for images (B, 1, 28, 28), float in [0, 1]."""
        shape = tuple(self.data_spec.shape)
        if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            expected = ", ".join(["B", *map(str, shape)])
            raise ValueError(f"encode expects {self.data_spec.noun} of shape ({expected}), got {tuple(x.shape)}")
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, latent_dim) -> data (B, *data_spec.shape); images (B, 1, 28, 28) in [0, 1]."""
        latent_dim = self.hparams["latent_dim"]
        if z.dim() != 2 or z.shape[1] != latent_dim:
            raise ValueError(f"decode expects codes of shape (B, {latent_dim}), got {tuple(z.shape)}")
        return self.decoder(z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """D(E(x)): what the model makes of an image."""
        return self.decode(self.encode(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """D(E(x)), as `reconstruct`; with `example_input_array` it lets the model summary count FLOPs."""
        return self.reconstruct(x)

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: str | Path, map_location: Any = None, **kwargs: Any
    ) -> BaseAutoencoder:
        """Load weights and settings from a checkpoint; needs neither Hydra nor config files.

        Called on `BaseAutoencoder` itself, it returns whichever model the checkpoint
        holds (EncDec, Autoencoder, VAE). The model comes back in eval mode (dropout
        off), ready for encode/decode.
        """
        path = Path(checkpoint_path)
        if not path.is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
        header = _checkpoint_header(path)
        model_class = _model_class(path, header) if cls is BaseAutoencoder else cls
        saved = header.get("hyper_parameters") or {}
        older = {k: v for k, v in model_class.settings_before_they_existed.items() if k not in saved}
        kwargs = {**older, **kwargs}
        try:
            model = super(BaseAutoencoder, model_class).load_from_checkpoint(path, map_location=map_location, **kwargs)
        except Exception as err:  # noqa: BLE001 - any failure here is a checkpoint that does not load; see below
            raise _why_it_does_not_load(model_class, path, kwargs, err) from err
        return model.eval()

    # ----- diagnostics ------------------------------------------------------------------------
    def latent_norm_of(self, z: torch.Tensor, x_rec: torch.Tensor) -> torch.Tensor:
        """docs/method.md's latent norm 0.5 * (mean(z^2) + mean(E(x_rec)^2)) for codes z = E(x), x_rec = D(z).

        The same definition for every model, on the codes that `encode` returns, so that
        EDE's and the baselines' curves can be compared. A diagnostic: no gradients.
        """
        with torch.no_grad():
            return latent_norm(z, self.encode(x_rec))

    # ----- training ---------------------------------------------------------------------------
    def compute_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def configure_optimizers(self) -> torch.optim.Optimizer:
        optimizer = OPTIMIZERS[self.hparams["optimizer"]]
        return optimizer(self.parameters(), lr=self.hparams["lr"])

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        terms = self.compute_losses(batch[0])
        terms["latent_norm_avg"] = self.latent_norm_avg.update(terms["latent_norm"])
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, on_step=True, on_epoch=False)
        # Lightning minimises "loss"; the other terms, detached, reach callbacks as `outputs`
        # (FaultHandler watches them for NaN without a host-device sync).
        return {k: v if k == "loss" else v.detach() for k, v in terms.items()}

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: Any, stage: str) -> None:
        terms = self.compute_losses(batch[0])
        self.log_dict({f"{stage}/{k}": v for k, v in terms.items()}, on_epoch=True, batch_size=len(batch[0]))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Which class to rebuild: BaseAutoencoder.load_from_checkpoint and `evaluate` read it.
        checkpoint["model_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
        # The window survives a resume, so the logged average has no jump at the resume step.
        checkpoint["latent_norm_window"] = self.latent_norm_avg.state()
        # A resumed run continues the same W&B run (train.py reads this back).
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                checkpoint["wandb_run_id"] = logger.version

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.latent_norm_avg.load_state(checkpoint.get("latent_norm_window", []))


def _why_it_does_not_load(cls: type[BaseAutoencoder], path: Path, kwargs: dict, err: Exception) -> CheckpointError:
    """A one-line CheckpointError saying what is wrong with a checkpoint that failed to load into `cls`.

    Only runs after a failure, so a good checkpoint is read once: unreadable or foreign files,
    settings `cls` does not take (another model's checkpoint), and weights of other shapes
    (a different latent_dim or width than the settings passed in) each get their own message.
    """
    try:
        checkpoint = read_checkpoint(path)
        settings = {**(checkpoint.get("hyper_parameters") or {}), **kwargs}
        try:
            model = cls(**settings)
        except TypeError as type_err:
            return CheckpointError(f"{path} was not saved by {cls.__name__} ({first_line(type_err)})")
        check_checkpoint_fits(path, checkpoint, model)
    except CheckpointError as diagnosis:
        return diagnosis
    return CheckpointError(f"cannot load checkpoint {path}: {first_line(err)}")


def checkpoint_model_class(path: Path) -> type[BaseAutoencoder]:
    """The model class a checkpoint was saved from (its "model_class" entry)."""
    return _model_class(path, _checkpoint_header(path))


def _checkpoint_header(path: Path) -> dict[str, Any]:
    """The checkpoint, memory-mapped (its tensors are not read), or CheckpointError."""
    return read_checkpoint(path, mmap=True)


def _model_class(path: Path, checkpoint: dict[str, Any]) -> type[BaseAutoencoder]:
    # Checkpoints written before the entry existed all hold EncDec, the only model then.
    name = checkpoint.get("model_class", "encdec_pl.models.ede.EncDec")
    module, _, qualname = name.rpartition(".")
    try:
        model_class = getattr(importlib.import_module(module), qualname)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"{path} holds a {name}, which this version of encdec-pl does not have") from err
    if not (isinstance(model_class, type) and issubclass(model_class, BaseAutoencoder)):
        raise CheckpointError(f"{path} holds a {name}, not an encdec-pl model")
    return model_class
