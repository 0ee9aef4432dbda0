"""Resuming a run: what `ckpt_path=` means (a file, or "last") and the command that continues a run."""

from __future__ import annotations

import logging
import re
import shlex
from pathlib import Path

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
        from encdec_pl.runtime.config import _abspath  # Hydra-aware; imported here to keep this module Hydra-free

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
