"""Networks (plain torch modules) that models are built from, chosen by what the data yields.

A data module declares what it yields as a spec (`datamodule.data_spec`: an `ImageSpec`, ...);
the spec builds the encoder and decoder for it (`spec.networks(...)`), so a model works on any
kind of data that has a spec and a pair of networks. Models keep the spec in their
hyperparameters as a plain dict (`spec.as_dict()`), which `data_spec_from` reads back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from torch import nn

from encdec_pl.errors import InvalidArgument
from encdec_pl.networks.image import DECODER_NORMS, IMAGE_SHAPE, Decoder, Encoder, ImageSpec


class DataSpec(Protocol):
    """What a data module yields, and the networks for it."""

    kind: str  # the name in `as_dict()`, a key of DATA_SPECS
    noun: str  # what a batch holds, for error messages ("images")
    shape: tuple[int, ...]  # one item, without the batch dimension

    def networks(
        self, code_size: int, latent_dim: int, width: int, dropout: float, decoder_norm: str = "none"
    ) -> tuple[nn.Module, nn.Module]:
        """An encoder with `code_size` outputs and a decoder from `latent_dim` codes (`decoder_norm`: DECODER_NORMS)."""
        ...

    def as_dict(self) -> dict[str, Any]: ...


# kind -> spec class; a new kind of data registers its spec here.
DATA_SPECS: dict[str, type] = {ImageSpec.kind: ImageSpec}


def data_spec_from(value: DataSpec | Mapping[str, Any] | None) -> DataSpec:
    """A spec from a spec or its dict form ({"kind": "image", "shape": [1, 28, 28]}); None: the published images."""
    if value is None:
        return ImageSpec()
    if not isinstance(value, Mapping):
        return value
    settings = dict(value)
    kind = settings.pop("kind", None)
    if kind not in DATA_SPECS:
        raise InvalidArgument("data_spec", dict(value), f"a spec whose kind is one of {sorted(DATA_SPECS)}")
    try:
        return DATA_SPECS[kind](**{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
    except TypeError as err:
        raise InvalidArgument("data_spec", dict(value), f"the settings of a {kind} spec ({err})") from err


__all__ = [
    "DATA_SPECS",
    "DECODER_NORMS",
    "IMAGE_SHAPE",
    "DataSpec",
    "Decoder",
    "Encoder",
    "ImageSpec",
    "data_spec_from",
]
