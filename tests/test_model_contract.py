"""What every model of the project must do, tested on each model class `encdec_pl.models` exports.

A new model is tested by adding it (docs/extending.md): the parametrisation below finds it.
The last tests follow that checklist with a model and a kind of data defined here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from encdec_pl.models import BaseAutoencoder, model_classes
from encdec_pl.networks import DATA_SPECS, data_spec_from
from encdec_pl.runtime.callbacks.latent_norm import LatentNormPlot, plotted_terms
from encdec_pl.runtime.config import construct

from .conftest import REPO_ROOT, compose_config

MODELS = model_classes()


def model_option(model_class: type[BaseAutoencoder]) -> str:
    """The conf/model option whose _target_ is `model_class`."""
    for path in sorted((REPO_ROOT / "conf" / "model").glob("*.yaml")):
        target = OmegaConf.load(path).get("_target_", "")
        module, _, name = str(target).rpartition(".")
        if name == model_class.__name__ and model_class.__module__.startswith(module):
            return path.stem
    raise AssertionError(f"no conf/model/*.yaml has _target_ {model_class.__name__}")


def fit(model: BaseAutoencoder, data: torch.Tensor, callbacks: list[L.Callback] = (), steps: int = 3) -> L.Trainer:
    loader = DataLoader(TensorDataset(data, torch.zeros(len(data))), batch_size=5)
    trainer = L.Trainer(
        max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, log_every_n_steps=1, limit_val_batches=1, callbacks=list(callbacks),
    )  # fmt: skip
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    return trainer


def test_every_model_class_is_found() -> None:
    assert {m.__name__ for m in MODELS} >= {"EncDec", "Autoencoder", "VAE"}
    assert BaseAutoencoder not in MODELS


@pytest.mark.parametrize("model_class", MODELS, ids=lambda m: m.__name__)
def test_model_has_a_config_that_mirrors_its_constructor(model_class: type[BaseAutoencoder], tmp_path: Path) -> None:
    cfg = compose_config("train", [f"model={model_option(model_class)}"], tmp_path)
    parameters = inspect.signature(model_class.__init__).parameters
    assert (set(cfg.model) | set(cfg.loss)) - {"_target_"} == set(parameters) - {"self"}
    for name, parameter in parameters.items():  # the config's defaults are the constructor's
        if name != "self":
            setting = cfg.model[name] if name in cfg.model else cfg.loss[name]
            assert setting == pytest.approx(parameter.default) if parameter.default is not None else setting is None
    model = construct(cfg, "model", "loss", data_spec=data_spec_from(None).as_dict())
    assert type(model) is model_class


@pytest.mark.parametrize("model_class", MODELS, ids=lambda m: m.__name__)
def test_model_losses_encode_decode(model_class: type[BaseAutoencoder]) -> None:
    torch.manual_seed(0)
    model = model_class(latent_dim=6, width=8)
    x = torch.rand(5, *model.data_spec.shape)  # an odd batch
    terms = model.compute_losses(x)
    assert {"loss", "latent_norm"} <= set(terms)
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values()), terms
    terms["loss"].backward()
    for network in (model.encoder, model.decoder):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in network.parameters())
    model.eval()
    z = model.encode(x)
    assert z.shape == (5, 6)
    assert model.decode(z).shape == x.shape
    with pytest.raises(ValueError, match="encode expects images of shape"):
        model.encode(torch.rand(5, 28, 28))


@pytest.mark.parametrize("model_class", MODELS, ids=lambda m: m.__name__)
def test_model_trains_logs_its_terms_and_round_trips_a_checkpoint(
    model_class: type[BaseAutoencoder], tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = model_class(latent_dim=6, width=8)
    plot = LatentNormPlot(path=str(tmp_path / "latent_norm.png"))
    trainer = fit(model, torch.rand(20, *model.data_spec.shape), [plot])
    terms = set(model.compute_losses(torch.rand(5, *model.data_spec.shape)))
    logged = {k.removeprefix("train/") for k in trainer.callback_metrics if k.startswith("train/")}
    assert logged == terms | {"latent_norm_avg"}
    # The latent-norm plot draws the model's own terms, whatever they are called.
    assert set(plotted_terms(plot.rows)) == terms - {"latent_norm"}
    assert (tmp_path / "latent_norm.png").is_file()
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    loaded = BaseAutoencoder.load_from_checkpoint(tmp_path / "model.ckpt")
    assert type(loaded) is model_class and loaded.hparams == model.hparams
    x = torch.rand(3, *model.data_spec.shape)
    torch.testing.assert_close(loaded.encode(x), model.eval().encode(x))


# ----- docs/extending.md, followed: a new model, and a new kind of data, with nothing else edited -----------
class MedianAutoencoder(BaseAutoencoder):
    """A new model by the checklist: a subclass with its settings and `compute_losses` (L1 on pixels)."""

    def __init__(
        self,
        latent_dim: int = 32,
        width: int = 32,
        dropout: float = 1 / 32,
        optimizer: str = "rmsprop",
        lr: float = 1e-4,
        latent_norm_window: int = 64,
        data_spec: dict[str, Any] | None = None,
        decoder_norm: str = "none",
    ) -> None:
        super().__init__(latent_dim, width, dropout, optimizer, lr, latent_norm_window, data_spec, decoder_norm)
        self.save_hyperparameters()

    def compute_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encoder(x)
        x_rec = self.decoder(z)
        l1 = (x_rec - x).abs().mean()
        return {"loss": l1, "l1": l1, "latent_norm": self.latent_norm_of(z, x_rec)}


def test_a_new_model_trains_from_the_training_config(tmp_path: Path) -> None:
    """The training config builds it by _target_ (model=ae's settings, but for the AE's recon_loss), and it trains."""
    cfg = compose_config(
        "train",
        [f"model._target_={__name__}.MedianAutoencoder", "model=ae", "~model.recon_loss", "model.latent_dim=4"],
        tmp_path,
    )
    model = construct(cfg, "model", "loss", data_spec=data_spec_from(None).as_dict())
    assert isinstance(model, MedianAutoencoder)
    test_model_losses_encode_decode(MedianAutoencoder)
    test_model_trains_logs_its_terms_and_round_trips_a_checkpoint(MedianAutoencoder, tmp_path)


@dataclass(frozen=True)
class VectorSpec:
    """A new kind of data by the checklist: vectors in [0, 1], with a pair of small networks."""

    size: int = 12
    kind: ClassVar[str] = "test_vector"
    noun: ClassVar[str] = "vectors"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.size,)

    def networks(
        self, code_size: int, latent_dim: int, width: int, dropout: float, decoder_norm: str = "none"
    ) -> tuple[nn.Module, nn.Module]:
        assert decoder_norm == "none", "these networks have no normalisation to switch on"
        encoder = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.size, width), nn.ReLU())
        encoder.append(nn.Linear(width, code_size))
        decoder = nn.Sequential(nn.Linear(latent_dim, width), nn.ReLU(), nn.Linear(width, self.size), nn.Sigmoid())
        return encoder, decoder

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size}


@pytest.fixture()
def vector_spec(monkeypatch: pytest.MonkeyPatch) -> VectorSpec:
    monkeypatch.setitem(DATA_SPECS, VectorSpec.kind, VectorSpec)
    return VectorSpec()


@pytest.mark.parametrize("model_class", MODELS, ids=lambda m: m.__name__)
def test_every_model_trains_unchanged_on_a_new_kind_of_data(
    model_class: type[BaseAutoencoder], vector_spec: VectorSpec, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    # decoder_norm is the image decoder's option; a new kind of data brings networks without it
    model = model_class(latent_dim=3, width=16, data_spec=vector_spec.as_dict(), decoder_norm="none")
    assert model.encode(torch.rand(4, 12)).shape == (4, 3)
    with pytest.raises(ValueError, match=r"encode expects vectors of shape \(B, 12\)"):
        model.encode(torch.rand(4, 1, 28, 28))
    trainer = fit(model, torch.rand(20, 12))
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    trainer.save_checkpoint(tmp_path / "vectors.ckpt")
    loaded = BaseAutoencoder.load_from_checkpoint(tmp_path / "vectors.ckpt")
    assert loaded.data_spec == vector_spec
    x = torch.rand(3, 12)
    torch.testing.assert_close(loaded.encode(x), model.eval().encode(x))
