"""LightningModules of the project: EDE and its baselines, sharing one base class and one pair of networks."""

from encdec_pl.models.ae import Autoencoder
from encdec_pl.models.base import BaseAutoencoder
from encdec_pl.models.ede import EncDec
from encdec_pl.models.vae import VAE

__all__ = ["VAE", "Autoencoder", "BaseAutoencoder", "EncDec"]
