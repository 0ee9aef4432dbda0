"""LightningModules of the project: EDE and its baselines, sharing one base class; networks come from the data."""

from encdec_pl.models.ae import Autoencoder
from encdec_pl.models.base import BaseAutoencoder
from encdec_pl.models.ede import EncDec
from encdec_pl.models.vae import VAE

__all__ = ["VAE", "Autoencoder", "BaseAutoencoder", "EncDec", "model_classes"]


def model_classes() -> list[type[BaseAutoencoder]]:
    """Every model class exported here (the subclasses of BaseAutoencoder), in `__all__` order.

    Tests and scripts take their list of models from it: a new model is found once it is exported.
    """
    found = [globals().get(name) for name in __all__]
    return [c for c in found if isinstance(c, type) and issubclass(c, BaseAutoencoder) and c is not BaseAutoencoder]
