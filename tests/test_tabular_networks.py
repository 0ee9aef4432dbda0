"""The tabular networks on Adult's encoding: the column-token transformer (network.arch=transformer) gives
what the MLP gives (shapes, per-type outputs, every discrete_output), re-encodes soft decoder outputs and
passes gradients; the MLP default is unchanged (its state-dict keys, the config's defaults)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from encdec_pl.data.adult import CATEGORICAL, load_adult
from encdec_pl.data.tabular import TableEncoding, fit_spec
from encdec_pl.errors import InvalidArgument
from encdec_pl.models.tabular import TabularAutoencoder, TabularEncDec, TabularVAE
from encdec_pl.networks.tabular import (
    DISCRETE_OUTPUTS,
    ColumnTokenDecoder,
    ColumnTokenEncoder,
    TabularDecoder,
    TabularEncoder,
)

from .conftest import DATA_ROOT, compose_config

SMALL = {"d_model": 16, "layers": 1, "heads": 2}  # the unit tests' transformer: the shapes do not depend on size


@pytest.fixture(scope="module")
def encoding() -> TableEncoding:
    train, _ = load_adult(DATA_ROOT, download=False)
    return TableEncoding(fit_spec(train[:2000], CATEGORICAL, n_quantiles=100))


@pytest.fixture(scope="module")
def rows(encoding: TableEncoding) -> torch.Tensor:
    train, _ = load_adult(DATA_ROOT, download=False)
    return encoding.encode(train[:16])


def _decoder(encoding: TableEncoding, discrete_output: str = "softmax") -> ColumnTokenDecoder:
    return ColumnTokenDecoder(encoding.width, encoding.numeric_index(), encoding.categorical_slices(), 8,
                              **SMALL, discrete_output=discrete_output)  # fmt: skip


def _encoder(encoding: TableEncoding, latent_dim: int = 8) -> ColumnTokenEncoder:
    return ColumnTokenEncoder(encoding.numeric_index(), encoding.categorical_slices(), latent_dim, **SMALL)


@pytest.mark.parametrize("discrete_output", DISCRETE_OUTPUTS)
def test_the_transformer_decoder_gives_what_the_mlp_decoder_gives(encoding: TableEncoding,
                                                                  discrete_output: str) -> None:  # fmt: skip
    torch.manual_seed(0)
    z = torch.randn(5, 8)
    mlp = TabularDecoder(encoding.width, encoding.numeric_index(), encoding.categorical_slices(), 8, 32, 1,
                         discrete_output)  # fmt: skip
    transformer = _decoder(encoding, discrete_output)
    (mlp_numbers, mlp_logits), (numbers, logits) = mlp.raw(z), transformer.raw(z)
    assert numbers.shape == mlp_numbers.shape == (5, len(encoding.numeric))
    assert [b.shape for b in logits] == [b.shape for b in mlp_logits]
    assert [b.shape[1] for b in logits] == [len(c["levels"]) for c in encoding.categorical]
    out = transformer(z)
    assert out.shape == (5, encoding.width) and torch.isfinite(out).all()
    numbers_in_row = out[:, encoding.numeric_index()]
    assert torch.allclose(numbers_in_row, numbers)  # numbers land where the row holds them
    for s in encoding.categorical_slices():
        block = out[:, s]
        assert torch.allclose(block.sum(dim=1), torch.ones(5), atol=1e-5) and (block >= 0).all()
        if discrete_output == "straight_through":
            assert ((block == 0) | (block == 1)).all()
    # repair works on it as on the MLP's output
    assert encoding.raw_validity(encoding.repair(out))["rows"] == 1.0


def test_the_transformer_encoder_takes_a_decoders_soft_output_and_gradients_flow(
    encoding: TableEncoding, rows: torch.Tensor
) -> None:
    torch.manual_seed(0)
    encoder, decoder = _encoder(encoding), _decoder(encoding)
    z = encoder(rows)
    assert z.shape == (16, 8)
    x_rec = decoder(z)  # softmax blocks, not one-hots
    assert not torch.equal(x_rec, encoding.repair(x_rec))
    z_rec = encoder(x_rec)
    assert z_rec.shape == (16, 8) and torch.isfinite(z_rec).all()
    z_rec.pow(2).sum().backward()
    for name, p in [*encoder.named_parameters(), *decoder.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_a_categorical_token_of_probabilities_is_the_mix_of_its_levels_tokens(encoding: TableEncoding) -> None:
    torch.manual_seed(0)
    encoder = _encoder(encoding)
    first = encoding.categorical_slices()[0]
    a, b = torch.zeros(1, encoding.width), torch.zeros(1, encoding.width)
    for s in encoding.categorical_slices():
        a[0, s.start] = b[0, s.start] = 1.0
    b[0, first.start], b[0, first.start + 1] = 0.0, 1.0
    mix = 0.3 * a + 0.7 * b
    column = len(encoding.numeric)  # tokens: numbers first, then the categorical columns
    tokens = [encoder.tokens(x)[0, column] for x in (a, b, mix)]
    assert torch.allclose(tokens[2], 0.3 * tokens[0] + 0.7 * tokens[1], atol=1e-6)
    assert not torch.allclose(tokens[0], tokens[1])


@pytest.mark.parametrize("model_class", [TabularEncDec, TabularAutoencoder, TabularVAE])
def test_each_tabular_model_trains_a_step_with_the_transformer(encoding: TableEncoding, rows: torch.Tensor,
                                                               model_class: type) -> None:  # fmt: skip
    torch.manual_seed(0)
    model = model_class(table=encoding.spec, arch="transformer", token_dim=16, token_layers=1, token_heads=2)
    assert isinstance(model.encoder, ColumnTokenEncoder) and isinstance(model.decoder, ColumnTokenDecoder)
    latent = model.hparams["latent_dim"]
    assert model.encoder.head.out_features == (2 * latent if model_class is TabularVAE else latent)
    terms = model.compute_losses(rows)
    assert torch.isfinite(terms["loss"])
    terms["loss"].backward()
    assert all(p.grad is not None for p in model.decoder.parameters())
    assert model.decode(torch.randn(3, latent)).shape == (3, encoding.width)


def test_the_mlp_stays_the_default_with_its_state_dict_unchanged(encoding: TableEncoding) -> None:
    model = TabularEncDec(table=encoding.spec, decoder_norm="none")  # the MLP's layout before decoder_norm existed
    assert model.hparams["arch"] == "mlp"
    assert isinstance(model.encoder, TabularEncoder) and isinstance(model.decoder, TabularDecoder)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    width = encoding.width
    assert shapes == {
        "log_sigma": (len(encoding.numeric),),
        **{f"encoder.net.{i}.weight": s for i, s in ((0, (256, width)), (3, (256, 256)), (6, (32, 256)))},
        **{f"encoder.net.{i}.bias": (s,) for i, s in ((0, 256), (3, 256), (6, 32))},
        **{f"decoder.net.{i}.weight": s for i, s in ((0, (256, 32)), (3, (256, 256)), (6, (width, 256)))},
        **{f"decoder.net.{i}.bias": (s,) for i, s in ((0, 256), (3, 256), (6, width))},
    }


def test_the_network_config_holds_the_models_defaults(tmp_path: Path) -> None:
    network = compose_config("train", ["data=adult"], tmp_path).network
    assert network.arch == "mlp"
    for model_class in (TabularEncDec, TabularAutoencoder, TabularVAE):
        defaults = {k: p.default for k, p in inspect.signature(model_class.__init__).parameters.items()}
        assert {k: defaults[k] for k in network} == dict(network), model_class.__name__


@pytest.mark.parametrize(
    "setting,message",
    [({"arch": "transfomer"}, "one of ('mlp', 'transformer')"), ({"token_heads": 3}, "dividing token_dim (64)")],
)
def test_bad_transformer_settings_are_refused_naming_the_key(encoding: TableEncoding, setting: dict,
                                                             message: str) -> None:  # fmt: skip
    with pytest.raises(InvalidArgument) as err:
        TabularEncDec(table=encoding.spec, **setting)
    assert err.value.name == next(iter(setting)) and message in err.value.requirement
