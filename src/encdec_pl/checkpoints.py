"""Finding, reading and checking checkpoints, with one-line errors; the command that resumes a run;
the callback that keeps `last.ckpt` current.

Imports neither Hydra nor OmegaConf at module level: `EncDec.load_from_checkpoint` uses this
module in programs that have neither.
"""

from __future__ import annotations

import logging
import re
import shlex
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from encdec_pl.errors import CheckpointError

log = logging.getLogger(__name__)

LAST = "last"  # ckpt_path=last
RUN_FOLDER_NAME = re.compile(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}(_\d+)?")  # hydra/default.yaml's run.dir
# Overrides that apply to one run only: a resume command leaves them out.
ONE_RUN_ONLY = (
    "ckpt_path",
    "callbacks.fault_handler.resume_lr_factor",
    "callbacks.fault_handler.simulate_nan_at_step",
)


def resolve_ckpt_path(value: str | None, output_dir: Path, runs_dir: Path | None = None) -> Path | None:
    """The checkpoint that `ckpt_path=<value>` names, or None to train from scratch.

    A path is taken as given (relative to where the command started). `last` means this run
    folder's checkpoints/last.ckpt when there is one. Otherwise:
    - in a fresh timestamped folder below `runs_dir` (a new command without hydra.run.dir):
      the newest checkpoints/last.ckpt of any run there, so `ckpt_path=last` continues the latest run;
    - in a folder chosen with hydra.run.dir (or a sweep's job folder): nothing yet, so training
      starts from scratch, with a warning. One command then serves a job's first start and every
      restart after a preemption.
    """
    if value is None:
        return None
    if str(value) != LAST:
        from encdec_pl.config import _abspath  # Hydra-aware; imported here to keep this module Hydra-free

        path = Path(_abspath(str(value)))
        if not path.is_file():
            raise CheckpointError(f"ckpt_path={value}: no checkpoint file at {path}")
        return path
    own = output_dir / "checkpoints" / "last.ckpt"
    if own.is_file():
        return own
    if runs_dir is not None and is_fresh_run_folder(output_dir, runs_dir):
        newest = latest_checkpoint(runs_dir)
        if newest is None:
            raise CheckpointError(f"ckpt_path=last: no run under {runs_dir} has a checkpoints/last.ckpt to resume")
        log.info("ckpt_path=last: resuming the latest run, %s", newest)
        return newest
    log.warning("ckpt_path=last: no checkpoint in %s yet; training from scratch", output_dir)
    return None


def is_fresh_run_folder(output_dir: Path, runs_dir: Path) -> bool:
    """True for the folder a command gets when hydra.run.dir is not set: <runs_dir>/<date>_<time>[_n]."""
    output_dir = Path(output_dir).absolute()
    return output_dir.parent == Path(runs_dir).absolute() and RUN_FOLDER_NAME.fullmatch(output_dir.name) is not None


def latest_checkpoint(runs_dir: Path) -> Path | None:
    """The most recently written <run>/checkpoints/last.ckpt below `runs_dir`, or None."""
    candidates = list(Path(runs_dir).glob("*/checkpoints/last.ckpt")) if Path(runs_dir).is_dir() else []
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def latest_run(runs_dir: Path) -> Path | None:
    """The run folder below `runs_dir` whose checkpoints/last.ckpt was written last, or None."""
    newest = latest_checkpoint(runs_dir)
    return newest.parent.parent if newest is not None else None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's contents (on CPU), or CheckpointError naming the file and what is wrong with it."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
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
    return (str(err).strip() or type(err).__name__).splitlines()[0]


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
    saved_hparams = checkpoint.get("hyper_parameters") or {}
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


def resume_command(path: Path, *extra: str) -> str:
    """The command that continues this run from `path`: its own overrides, then ckpt_path and `extra`.

    The run's overrides of ONE_RUN_ONLY keys and of the keys in `extra` are left out.
    Outside a Hydra run (no overrides known) it is only `ckpt_path=<path> <extra>`.
    """
    replaced = {*ONE_RUN_ONLY, *(e.split("=", 1)[0] for e in extra)}
    overrides: list[str] = []
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            overrides = list(HydraConfig.get().overrides.task)
    except ImportError:  # pragma: no cover - Hydra is a dependency; only the model API runs without it
        pass
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in replaced]
    return shlex.join(["python", "-m", "encdec_pl.train", *kept, f"ckpt_path={path}", *extra])


class LastCheckpoint(ModelCheckpoint):
    """`checkpoints/last.ckpt`: the state after every validation and at the end of training.

    A ModelCheckpoint without a monitor that keeps one file, overwritten each time. Lightning
    2.6's `save_last` on the monitored checkpoint writes last.ckpt only when the monitored value
    improved, so it lagged whenever val/loss did not improve (EDE's total loss need not fall as
    the latent norm settles); and a run that ends between validations (max_steps reached) would
    otherwise keep an older state. Non-finite states are never written: FaultHandler refuses them.
    """

    def __init__(self, dirpath: str | Path, filename: str = LAST) -> None:
        super().__init__(dirpath=dirpath, filename=filename, monitor=None, save_top_k=1, enable_version_counter=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer):  # skips when this step is saved already
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))
