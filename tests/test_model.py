"""EncDec's public API: encode/decode shapes and ranges, argument checks, checkpoints without Hydra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from encdec_pl import EncDec
from encdec_pl.errors import CheckpointError, InvalidArgument
from encdec_pl.networks.image import Decoder, Encoder
from encdec_pl.networks.tabular import TabularDecoder


@pytest.mark.parametrize("latent_dim,width", [(32, 32), (8, 16), (64, 32)])
def test_encode_decode_shapes_and_ranges(latent_dim: int, width: int) -> None:
    model = EncDec(latent_dim=latent_dim, width=width).eval()
    x = torch.rand(5, 1, 28, 28)
    z = model.encode(x)
    assert z.shape == (5, latent_dim)
    images = model.decode(torch.randn(5, latent_dim) * 10)  # far-off codes still give valid images
    assert images.shape == (5, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1


def test_width_is_independent_of_latent_dim() -> None:
    # Sweeping latent_dim must not change the convolution widths (docs/method.md).
    convs = lambda m: [p.shape for n, p in m.named_parameters() if "features" in n and "original1" in n]  # noqa: E731
    assert convs(Encoder(latent_dim=8, width=32)) == convs(Encoder(latent_dim=64, width=32))
    assert Encoder(latent_dim=8, width=16).head[-1].out_features == 8
    assert Decoder(latent_dim=8, width=16).conv3.in_channels == 16


def test_batch_norm_decoder_adds_only_normalisation_and_decodes_from_running_statistics() -> None:
    """decoder_norm=batch: the published layers (same parameter names and shapes) plus three batch norms;
    in eval mode one code decodes the same alone as in a batch (running statistics, not the batch's)."""
    plain, normed = Decoder(latent_dim=8, width=16), Decoder(latent_dim=8, width=16, norm="batch")
    shapes = lambda m: {n: p.shape for n, p in m.named_parameters()}  # noqa: E731
    added = set(shapes(normed)) - set(shapes(plain))
    assert set(shapes(plain)) <= set(shapes(normed))
    assert {n.rsplit(".", 1)[0] for n in added} == {"project.1", "conv1.1", "conv2.1"}
    normed.train()
    normed(torch.randn(64, 8) * 3 + 1)  # moves the running statistics away from their initial values
    normed.eval()
    z = torch.randn(6, 8)
    images = normed(z)
    torch.testing.assert_close(normed(z[:1]), images[:1])
    assert images.min() >= 0 and images.max() <= 1
    model = EncDec(decoder_norm="batch")
    assert model.hparams["decoder_norm"] == "batch"
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.decoder.modules()) == 2


def test_batch_norm_in_the_tabular_decoder_keeps_the_plain_layout_and_its_outputs() -> None:
    """model.decoder_norm=batch on tables: batch norm before each hidden SiLU of the decoder MLP; with "none"
    the layers (and so the state-dict keys of older checkpoints) are those of the MLP before the option."""
    table = {"width": 5, "numeric_index": [0, 1], "categorical_slices": [slice(2, 5)], "latent_dim": 4,
             "hidden_dim": 8, "depth": 2}  # fmt: skip
    plain, normed = TabularDecoder(**table), TabularDecoder(**table, norm="batch")
    assert [n for n, _ in plain.named_parameters()] == [f"net.{i}.{w}" for i in (0, 3, 6) for w in ("weight", "bias")]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in normed.modules()) == 2
    normed.train()
    normed(torch.randn(64, 4) * 3 + 1)
    normed.eval()
    z = torch.randn(6, 4)
    rows = normed(z)
    torch.testing.assert_close(normed(z[:1]), rows[:1])  # running statistics in eval: one row decodes alone
    torch.testing.assert_close(rows[:, 2:5].sum(dim=1), torch.ones(6))  # the categorical block stays a softmax
    with pytest.raises(ValueError, match="norm"):
        TabularDecoder(**table, norm="layer")


def test_code_norm_rms_puts_every_code_at_rms_1_and_keeps_the_checkpoint_layout(tmp_path: Path) -> None:
    """model.code_norm=rms: encode and the loss's three encodings give codes of RMS 1 (the latent norm is 1);
    no tensors are added, and a checkpoint brings the setting back."""
    torch.manual_seed(0)
    plain, scaled = EncDec(latent_dim=8, width=8, code_norm="none"), EncDec(latent_dim=8, width=8, code_norm="rms")
    assert plain.state_dict().keys() == scaled.state_dict().keys()
    scaled.load_state_dict(plain.state_dict())
    plain.eval(), scaled.eval()
    x = torch.rand(5, 1, 28, 28)
    z, z_plain = scaled.encode(x), plain.encode(x)
    torch.testing.assert_close(z.pow(2).mean(dim=1), torch.ones(5))
    # the direction of each code is the plain encoder's: only its length changes
    torch.testing.assert_close(z, z_plain / z_plain.pow(2).mean(dim=1, keepdim=True).sqrt())
    assert float(scaled.compute_losses(x)["latent_norm"]) == pytest.approx(1.0, abs=1e-5)
    assert float(plain.compute_losses(x)["latent_norm"]) != pytest.approx(1.0, abs=1e-2)
    path = tmp_path / "scaled.ckpt"
    _save_checkpoint(scaled, path)
    loaded = EncDec.load_from_checkpoint(path)
    assert loaded.hparams["code_norm"] == "rms"
    torch.testing.assert_close(loaded.encode(x), z)


def test_encode_rejects_wrong_shapes_with_a_clear_message() -> None:
    model = EncDec()
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        model.encode(torch.rand(5, 28, 28))
    with pytest.raises(ValueError, match=r"\(B, 32\)"):
        model.decode(torch.rand(5, 16))


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"latent_dim": 0}, "latent_dim"),
        ({"latent_dim": 2.5}, "latent_dim"),
        ({"width": -1}, "width"),
        ({"fake_weight": -1.0}, "fake_weight"),
        ({"push_weight": "a"}, "push_weight"),
        ({"margin": 0.0}, "margin"),
        ({"dropout": 1.0}, "dropout"),
        ({"lr": 0}, "lr"),
        ({"optimizer": "sgdd"}, "optimizer"),
        ({"decoder_norm": "layer"}, "decoder_norm"),
        ({"code_norm": "batch"}, "code_norm"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs: dict, name: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        EncDec(**kwargs)
    assert info.value.name == name
    assert name in str(info.value)


def _save_checkpoint(model: EncDec, path: Path) -> None:
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)


def test_checkpoint_round_trip_restores_settings_and_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = EncDec(latent_dim=16, width=8, fake_weight=4.0).eval()
    path = tmp_path / "model.ckpt"
    _save_checkpoint(model, path)
    loaded = EncDec.load_from_checkpoint(path)
    assert not loaded.training  # ready for inference: dropout off
    assert loaded.hparams["latent_dim"] == 16 and loaded.hparams["fake_weight"] == 4.0
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(loaded.encode(x), model.encode(x))


def test_checkpoint_loads_without_hydra_or_omegaconf(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    _save_checkpoint(EncDec(latent_dim=12), path)
    # A fresh interpreter where importing hydra or omegaconf fails outright.
    script = f"""
import sys
sys.modules["hydra"] = None
sys.modules["omegaconf"] = None
import torch
from encdec_pl import EncDec
model = EncDec.load_from_checkpoint({str(path)!r})
z = model.encode(torch.rand(3, 1, 28, 28))
x = model.decode(z)
print(tuple(z.shape), tuple(x.shape))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "(3, 12) (3, 1, 28, 28)"


def test_missing_or_corrupt_checkpoint_gives_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        EncDec.load_from_checkpoint(tmp_path / "nope.ckpt")
    good = tmp_path / "good.ckpt"
    _save_checkpoint(EncDec(), good)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated.ckpt"):
        EncDec.load_from_checkpoint(truncated)
