"""The one device choice of the project: a `device` (or `trainer.accelerator`) setting -> a torch device."""

from __future__ import annotations

import torch

from encdec_pl.errors import ConfigError


def pick_device(setting: str, key: str = "device") -> torch.device:
    """auto (a GPU when there is one) | cpu | cuda | cuda:<n> | gpu -> torch.device.

    ConfigError, naming `key`, for a name torch does not know or a GPU that is not here.
    """
    name = str(setting)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device("cuda" if name == "gpu" else name)
    except RuntimeError as err:
        raise ConfigError(f"{key}={setting!r} is invalid: must be auto, cpu or cuda") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key}={setting}: torch sees no CUDA GPU here; use {key}=cpu or {key}=auto")
    return device


def device_type_for(accelerator: str) -> str:
    """The torch device type a Trainer with `accelerator` trains on ("cuda", "cpu", or another such as "mps")."""
    name = str(accelerator)
    if name == "auto":
        return pick_device(name).type
    return "cuda" if name in ("gpu", "cuda") else name
