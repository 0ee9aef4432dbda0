"""LightningModules of the project: EDE and (later) its baselines, sharing one base class."""

from encdec_pl.models.base import BaseAutoencoder
from encdec_pl.models.ede import EncDec

__all__ = ["BaseAutoencoder", "EncDec"]
