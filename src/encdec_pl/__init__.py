"""encdec-pl: encoder-decoder-encoder (EDE) networks in PyTorch Lightning.

>>> from encdec_pl import EncDec
>>> model = EncDec.load_from_checkpoint("outputs/train/runs/<run>/checkpoints/last.ckpt")
>>> codes = model.encode(images)  # (B, 1, 28, 28) in [0, 1] -> (B, latent_dim)
>>> images = model.decode(codes)  # -> (B, 1, 28, 28) in [0, 1]
"""

from encdec_pl.models import EncDec

__all__ = ["EncDec"]
__version__ = "0.1.0"
