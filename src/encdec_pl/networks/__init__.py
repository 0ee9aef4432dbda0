"""Networks (plain torch modules) that models are built from."""

from encdec_pl.networks.image import IMAGE_SHAPE, Decoder, Encoder

__all__ = ["IMAGE_SHAPE", "Decoder", "Encoder"]
