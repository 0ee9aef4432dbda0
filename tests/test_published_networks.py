"""The image networks stay the published ones bit for bit, and checkpoints of the previous layout still load.

tests/data/checkpoints_4613a0a/ holds what commit 4613a0a (before models built their networks from
the data's spec) wrote and computed: a 2-step checkpoint of each model (latent_dim=4, width=4,
`python -m encdec_pl.train model=<ede|ae|vae> model.latent_dim=4 model.width=4 trainer.max_steps=2`),
its codes and decoded images for fixed inputs, and for each model class at its defaults the
initial weights' SHA-256 and outputs for a fixed seed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from encdec_pl.models import BaseAutoencoder, model_classes
from encdec_pl.networks import ImageSpec

DATA = Path(__file__).parent / "data" / "checkpoints_4613a0a"
EXPECTED = json.loads((DATA / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED["networks"]))
def test_image_networks_are_the_published_ones_bit_for_bit(name: str) -> None:
    expected = EXPECTED["networks"][name]
    model_class = next(m for m in model_classes() if m.__name__ == name)
    torch.manual_seed(0)
    # the model as it was before the recipe's settings existed: the published decoder, codes of free size
    model = model_class(**model_class.settings_before_they_existed)
    assert model.data_spec == ImageSpec((1, 28, 28))
    state = model.state_dict()
    assert {k: list(v.shape) for k, v in state.items()} == expected["state_dict"]
    digest = hashlib.sha256()
    for key, value in state.items():
        digest.update(key.encode())
        digest.update(value.detach().contiguous().numpy().tobytes())
    assert digest.hexdigest() == expected["init_sha256"]  # same parameters, same initial weights
    model.eval()
    torch.manual_seed(1)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        z = model.encode(x)
        images = model.decode(z)
    assert float(z.double().sum()) == pytest.approx(expected["codes_sum"], rel=1e-5, abs=1e-6)
    assert float(z.double().abs().sum()) == pytest.approx(expected["codes_abs_sum"], rel=1e-5)
    assert float(images.double().sum()) == pytest.approx(expected["images_sum"], rel=1e-6)


@pytest.mark.parametrize("option", sorted(EXPECTED["checkpoints"]))
def test_checkpoints_of_the_previous_layout_load_and_compute_the_same(option: str) -> None:
    expected = EXPECTED["checkpoints"][option]
    model = BaseAutoencoder.load_from_checkpoint(DATA / f"{option}.ckpt")
    assert type(model).__name__ == expected["class"]
    assert model.data_spec == ImageSpec((1, 28, 28))  # the checkpoint names no spec: the published images
    # settings the checkpoint predates take the value it was trained with, not today's defaults
    assert model.hparams["decoder_norm"] == "none"
    assert model.hparams.get("code_norm", "none") == "none"
    assert model.hparams.get("recon_loss", "mse") == "mse"
    torch.manual_seed(3)
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        z = model.encode(x)
        images = model.decode(z)
    torch.testing.assert_close(z, torch.tensor(expected["codes"]), rtol=1e-5, atol=1e-6)
    assert float(images.double().sum()) == pytest.approx(expected["images_sum"], rel=1e-6)
