"""Reading a checkpoint file and checking that it fits a model, with one-line errors.

Used by `BaseAutoencoder.load_from_checkpoint` in programs that have neither Hydra nor configs.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from encdec_pl.errors import CheckpointError, first_line


def read_checkpoint(path: Path, mmap: bool = False) -> dict[str, Any]:
    """The checkpoint's contents (on CPU; `mmap`: tensors mapped, not read), or CheckpointError naming the file
    and what is wrong with it."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # noqa: BLE001 - torch raises OSError, KeyError, RuntimeError, UnpicklingError...
        raise CheckpointError(f"cannot read checkpoint {path}: {_why_unreadable(Path(path), err)}") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (it holds no state_dict)")
    return checkpoint


def _why_unreadable(path: Path, err: Exception) -> str:
    # torch's own messages for these cases are cryptic ("[Errno 22] Invalid argument", "101"):
    # look at the file instead. torch.save writes a zip archive, whose index sits at its end.
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(4)
    if size == 0:
        return "the file is empty"
    if head == b"PK\x03\x04" and not zipfile.is_zipfile(path):
        return f"the file is truncated ({size} bytes, the archive's end is missing): was it fully written or copied?"
    if head != b"PK\x03\x04" and not head.startswith(b"\x80"):  # neither a zip archive nor a legacy pickle
        return "not a PyTorch checkpoint (torch.save) file"
    return first_line(err)


def check_checkpoint_fits(
    path: Path, checkpoint: dict[str, Any], model: nn.Module, setting_name: Callable[[str], str] = str
) -> None:
    """Raise CheckpointError, naming the differing settings, when the checkpoint's weights do not fit `model`.

    `setting_name` turns a hyperparameter into the name the user sets it by (latent_dim -> model.latent_dim).
    """
    expected = model.state_dict()
    saved = checkpoint["state_dict"]
    reshaped = [k for k in expected if k in saved and tuple(saved[k].shape) != tuple(expected[k].shape)]
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    if not (reshaped or missing or unexpected):
        return
    # a setting the checkpoint predates had the value that reproduced its behaviour (BaseAutoencoder)
    saved_hparams = {**getattr(model, "settings_before_they_existed", {}), **(checkpoint.get("hyper_parameters") or {})}
    model_hparams = dict(getattr(model, "hparams", {}))
    differing = [k for k in model_hparams if k in saved_hparams and saved_hparams[k] != model_hparams[k]]
    details = []
    if reshaped:
        k = reshaped[0]
        more = f", and {len(reshaped) - 1} more tensors differ" if len(reshaped) > 1 else ""
        details.append(f"{k} is {list(saved[k].shape)} in the checkpoint, {list(expected[k].shape)} here{more}")
    if missing:
        details.append(f"{len(missing)} tensors missing from it (e.g. {missing[0]})")
    if unexpected:
        details.append(f"{len(unexpected)} tensors this model does not have (e.g. {unexpected[0]})")
    message = f"{path} does not fit {type(model).__name__}"
    if differing:
        settings = ", ".join(f"{setting_name(k)}={saved_hparams[k]!r} (here {model_hparams[k]!r})" for k in differing)
        fix = " ".join(f"{setting_name(k)}={saved_hparams[k]!r}" for k in differing)
        raise CheckpointError(
            f"{message}: it was saved with {settings} ({'; '.join(details)}); use its settings: {fix}"
        )
    raise CheckpointError(f"{message}: {'; '.join(details)}")
