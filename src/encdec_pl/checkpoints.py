"""Finding and reading checkpoints, with one-line errors for the ones that are missing or unreadable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from encdec_pl.config import _abspath
from encdec_pl.errors import CheckpointError


def resolve_ckpt_path(value: str | None, output_dir: Path) -> Path | None:
    """The checkpoint that `ckpt_path=<value>` names: a path, or "last" for this run's last.ckpt."""
    if value is None:
        return None
    path = output_dir / "checkpoints" / "last.ckpt" if value == "last" else Path(_abspath(str(value)))
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={value}: no checkpoint file at {path}")
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's contents (on CPU), or CheckpointError naming the file."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError, EOFError, UnpicklingError...
        first_line = (str(err).strip() or type(err).__name__).splitlines()[0]
        raise CheckpointError(f"cannot read checkpoint {path}: {first_line}") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return checkpoint
