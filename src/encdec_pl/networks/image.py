"""The published EDE encoder and decoder for 28x28 single-channel images.

Both follow docs/method.md's reference setup layer for layer. The channel width `w`
and the code size `latent_dim` are separate arguments: the published code tied
them (both 32), which would make a latent-size sweep silently change the
network's capacity too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from encdec_pl.errors import InvalidArgument

IMAGE_SHAPE = (1, 28, 28)


@dataclass(frozen=True)
class ImageSpec:
    """What an image data module yields: float images of `shape` (channels, height, width) in [0, 1]."""

    shape: tuple[int, ...] = IMAGE_SHAPE
    kind: ClassVar[str] = "image"
    noun: ClassVar[str] = "images"  # what `encode` calls its inputs in errors

    def networks(
        self, code_size: int, latent_dim: int, width: int, dropout: float, decoder_norm: str = "none"
    ) -> tuple[nn.Module, nn.Module]:
        """The published encoder (`code_size` outputs) and decoder (from `latent_dim`)."""
        if tuple(self.shape) != IMAGE_SHAPE:
            raise InvalidArgument("data_spec", self.as_dict(), "images of shape [1, 28, 28] (the published networks)")
        return Encoder(code_size, width, dropout), Decoder(latent_dim, width, decoder_norm)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "shape": list(self.shape)}


def _conv(in_channels: int, out_channels: int) -> nn.Module:
    # Every conv in both networks is 5x5 with padding 2 (size-preserving) and weight norm.
    return weight_norm(nn.Conv2d(in_channels, out_channels, kernel_size=5, padding=2))


class Encoder(nn.Module):
    """Image (B, 1, 28, 28) in [0, 1] -> code (B, latent_dim), no activation on the code.

    Three blocks of [dropout, conv, dropout, ReLU, 2x2 max-pool] take 28 -> 14 -> 7 -> 3.
    The light dropout is deliberate: the published runs went to NaN without it.
    """

    def __init__(self, latent_dim: int = 32, width: int = 32, dropout: float = 1 / 32) -> None:
        super().__init__()
        channels = [IMAGE_SHAPE[0], width, 2 * width, 4 * width]
        blocks: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            blocks += [
                nn.Dropout(dropout),
                _conv(c_in, c_out),
                nn.Dropout(dropout),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            weight_norm(nn.Linear(4 * width * 3 * 3, latent_dim)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# norm -> the layer inserted before each hidden ReLU of the decoder, given the number of features.
DECODER_NORMS: dict[str, Callable[[int, bool], nn.Module]] = {
    "none": lambda features, is_map: nn.Identity(),
    "batch": lambda features, is_map: nn.BatchNorm2d(features) if is_map else nn.BatchNorm1d(features),
}


class Decoder(nn.Module):
    """Code (B, latent_dim) -> image (B, 1, 28, 28) in [0, 1].

    4x4 -> 8x8 -> crop 7x7 -> 14x14 -> 28x28 by bilinear upsampling, each step
    followed by a 5x5 conv. The crop keeps the top-left 7x7 of the 8x8 map.

    `norm="none"` is the published decoder. `norm="batch"` puts batch normalisation before
    each of its three hidden ReLUs (as DCGAN's generator has): EDE's decoder is trained only
    through the encoder, and without it Adam's first steps move every layer the same way until
    the final sigmoid saturates and its gradient vanishes (docs/recipe.md measures both).
    """

    def __init__(self, latent_dim: int = 32, width: int = 32, norm: str = "none") -> None:
        super().__init__()
        if norm not in DECODER_NORMS:
            raise InvalidArgument("decoder_norm", norm, f"one of {sorted(DECODER_NORMS)}")
        self.width = width
        make_norm = DECODER_NORMS[norm]
        self.project = nn.Sequential(
            weight_norm(nn.Linear(latent_dim, 4 * width * 4 * 4)), make_norm(4 * width * 4 * 4, False), nn.ReLU()
        )
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv1 = nn.Sequential(_conv(4 * width, 2 * width), make_norm(2 * width, True), nn.ReLU())
        self.conv2 = nn.Sequential(_conv(2 * width, width), make_norm(width, True), nn.ReLU())
        self.conv3 = _conv(width, IMAGE_SHAPE[0])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(-1, 4 * self.width, 4, 4)
        h = self.conv1(self.upsample(h))[..., :7, :7]  # 8x8 -> 7x7
        h = self.conv2(self.upsample(h))  # 14x14
        return torch.sigmoid(self.conv3(self.upsample(h)))  # 28x28
