"""The AE and VAE baselines: same networks as EDE, their losses, config selection, checkpoints."""

from __future__ import annotations

import inspect
from pathlib import Path

import lightning as L
import pytest
import torch

from encdec_pl.errors import ConfigError, InvalidArgument
from encdec_pl.losses import latent_norm
from encdec_pl.models import VAE, Autoencoder, BaseAutoencoder, EncDec, model_classes
from encdec_pl.runtime.config import construct

from .conftest import compose_config


def test_baselines_use_the_published_networks() -> None:
    ede, ae, vae = EncDec(), Autoencoder(), VAE()
    shapes = lambda m: [(n, p.shape) for n, p in m.named_parameters()]  # noqa: E731
    assert shapes(ae) == shapes(ede)  # layer for layer, the same parameters
    # the VAE's encoder differs only in its last layer: a mean and a log-variance per latent dim
    head = vae.encoder.head[-1]
    assert head.out_features == 2 * 32 and ede.encoder.head[-1].out_features == 32
    assert shapes(vae.decoder) == shapes(ede.decoder)
    assert sum(p.numel() for p in vae.encoder.features.parameters()) == sum(
        p.numel() for p in ede.encoder.features.parameters()
    )


def test_vae_encode_returns_the_posterior_mean() -> None:
    torch.manual_seed(0)
    vae = VAE(latent_dim=8).eval()
    x = torch.rand(6, 1, 28, 28)
    mean, log_var = vae.encoder(x).chunk(2, dim=1)
    z = vae.encode(x)
    assert z.shape == (6, 8)
    torch.testing.assert_close(z, mean)
    torch.testing.assert_close(vae.encode(x), z)  # deterministic: no sampling in encode


def test_vae_loss_is_the_negative_elbo() -> None:
    torch.manual_seed(0)
    vae = VAE(latent_dim=4, kl_weight=0.5)
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        terms = vae.compute_losses(x)
    assert float(terms["loss"]) == pytest.approx(float(terms["recon"] + 0.5 * terms["kl"]), rel=1e-5)
    assert terms["kl"] >= 0 and terms["recon"] > 0
    # with a posterior equal to the prior the KL term is exactly 0
    with torch.no_grad():
        vae.encoder.head[-1].parametrizations.weight.original0.zero_()
        vae.encoder.head[-1].bias.zero_()
    assert float(vae.compute_losses(x)["kl"]) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("recon_loss", ["bce", "mse"])
def test_autoencoder_loss_is_its_recon_loss_and_reaches_both_networks(recon_loss: str) -> None:
    ae = Autoencoder(recon_loss=recon_loss).eval()
    x = torch.rand(4, 1, 28, 28)
    terms = ae.compute_losses(x)
    x_rec = ae.decode(ae.encode(x))
    mse = (x_rec - x).pow(2).mean()
    bce = -(x * x_rec.log() + (1 - x) * (1 - x_rec).log()).mean()
    assert float(terms["mse"]) == pytest.approx(float(mse), rel=1e-5)
    assert float(terms["loss"]) == pytest.approx(float(bce if recon_loss == "bce" else mse), rel=1e-5)
    terms["loss"].backward()
    assert all(p.grad is not None for p in ae.encoder.parameters())
    assert all(p.grad is not None for p in ae.decoder.parameters())


def test_a_saturated_sigmoid_stops_the_mse_gradient_but_not_the_bce_gradient() -> None:
    # The AE defect (docs/recipe.md): the first optimizer steps drive the decoder's final logits far
    # below zero; through the sigmoid the MSE gradient is then ~0 and the output stays black.
    # Binary cross-entropy's gradient at the logits is D(E(x)) - x, which pulls the bright pixels back.
    torch.manual_seed(0)
    x = (torch.rand(8, 1, 28, 28) > 0.8).float()  # mostly black, as MNIST
    grads = {}
    for recon_loss in ("mse", "bce"):
        torch.manual_seed(0)
        ae = Autoencoder(recon_loss=recon_loss, dropout=0.0)
        with torch.no_grad():
            ae.decoder.conv3.bias.fill_(-25.0)  # every output ~1e-11: a saturated, black image
        ae.compute_losses(x)["loss"].backward()
        grads[recon_loss] = ae.decoder.conv3.bias.grad.abs().item()
    assert grads["mse"] < 1e-8
    assert grads["bce"] > 0.05


def test_recon_loss_is_checked() -> None:
    with pytest.raises(InvalidArgument, match="recon_loss"):
        Autoencoder(recon_loss="l1")


@pytest.mark.parametrize("model_class", model_classes(), ids=lambda m: m.__name__)
def test_every_model_logs_the_same_latent_norm(model_class: type[BaseAutoencoder]) -> None:
    # docs/method.md's definition on the codes `encode` returns: 0.5 * (mean E(x)^2 + mean E(D(E(x)))^2)
    torch.manual_seed(0)
    model = model_class().eval()  # eval: no dropout, so both sides see the same network
    x = torch.rand(8, 1, 28, 28)
    z = model.encode(x)
    expected = latent_norm(z, model.encode(model.decode(z)))
    logged = model.compute_losses(x)["latent_norm"]
    if model_class is VAE:  # the VAE's latent norm is computed on the means, not on a sample
        torch.testing.assert_close(logged, expected)
    else:
        torch.testing.assert_close(logged, expected, rtol=1e-5, atol=1e-7)
    assert not logged.requires_grad or model_class is EncDec  # a diagnostic for the baselines


def test_kl_weight_is_checked() -> None:
    with pytest.raises(InvalidArgument, match="kl_weight"):
        VAE(kl_weight=-1.0)


@pytest.mark.parametrize("option,model_class,loss_keys", [
    ("ede", EncDec, {"margin", "pull_weight", "push_weight", "fake_weight"}),
    ("ae", Autoencoder, set()),
    ("vae", VAE, {"kl_weight"}),
])  # fmt: skip
def test_choosing_a_model_selects_its_loss_group(
    option: str, model_class: type, loss_keys: set[str], tmp_path: Path
) -> None:
    cfg = compose_config("train", [f"model={option}"], tmp_path)
    assert set(cfg.loss) == loss_keys
    # the two groups together name exactly the constructor's arguments
    assert (set(cfg.model) | set(cfg.loss)) - {"_target_"} == set(inspect.signature(model_class).parameters)
    assert type(construct(cfg, "model", "loss")) is model_class


def test_a_loss_that_does_not_fit_the_model_is_a_config_error(tmp_path: Path) -> None:
    cfg = compose_config("train", ["model=ae", "loss=ede"], tmp_path)
    with pytest.raises(ConfigError, match=r"loss\.margin is not a setting of Autoencoder"):
        construct(cfg, "model", "loss")
    cfg = compose_config("train", ["model=vae", "loss.kl_weight=-2"], tmp_path)
    with pytest.raises(ConfigError, match=r"loss\.kl_weight=-2"):
        construct(cfg, "model", "loss")


@pytest.mark.parametrize("model_class", model_classes(), ids=lambda m: m.__name__)
def test_base_class_loads_whichever_model_a_checkpoint_holds(model_class: type, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = model_class(latent_dim=6, width=8).eval()
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    loaded = BaseAutoencoder.load_from_checkpoint(tmp_path / "model.ckpt")
    assert type(loaded) is model_class and not loaded.training
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(loaded.encode(x), model.encode(x))
