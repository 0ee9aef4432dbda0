"""Resuming a run: what `ckpt_path=` means (a file, or "last") and the command that continues a run."""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
        without = newer_runs_without_checkpoint(runs_dir, newest, output_dir)
        note = f" (newer runs without a checkpoint, not resumable: {', '.join(p.name for p in without)})"
        log.warning("ckpt_path=last: resuming the latest run, %s%s", newest, note if without else "")
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


def newer_runs_without_checkpoint(runs_dir: Path, newest: Path, output_dir: Path) -> list[Path]:
    """Run folders below `runs_dir` started after `newest` was written that hold no checkpoint (killed early)."""
    written = newest.stat().st_mtime
    runs = [
        run
        for run in Path(runs_dir).iterdir()
        if run.is_dir()
        and run.absolute() != Path(output_dir).absolute()
        and RUN_FOLDER_NAME.fullmatch(run.name)
        and (run / "config.yaml").is_file()
        and (run / "config.yaml").stat().st_mtime > written
        and not (run / "checkpoints" / "last.ckpt").is_file()
    ]
    return sorted(runs)


def check_resume_settings(
    path: Path,
    checkpoint: dict[str, Any],
    asked: dict[str, Any],
    setting_name: Callable[[str], str],
    by_last: bool,
    newer_without_checkpoint: list[Path] | None = None,
) -> None:
    """CheckpointError when the run in `path` was started with other settings than `asked` (the model's, now).

    A resumed run keeps the checkpoint's weights and optimizer state: resuming with other settings
    would continue another run under this command's name (`ckpt_path=last` finding an older run,
    or a resume command with a changed value), so it is refused, naming both and how to pick one.
    """
    saved = checkpoint.get("hyper_parameters") or {}
    differing = [k for k in asked if k in saved and not _same(saved[k], asked[k])]
    if not differing:
        return
    run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    theirs = " ".join(f"{setting_name(k)}={saved[k]!r}" for k in differing)
    ours = " ".join(f"{setting_name(k)}={asked[k]!r}" for k in differing)
    step = checkpoint.get("global_step", "?")
    which = f"ckpt_path=last found the latest run, {run}," if by_last else f"the checkpoint {path}"
    if by_last and newer_without_checkpoint:
        which += f" (newer runs hold no checkpoint: {', '.join(p.name for p in newer_without_checkpoint)})"
    raise CheckpointError(
        f"{which} (step {step}) was trained with {theirs}, not {ours} as asked: resuming would continue "
        f"that run with other settings. To continue it: {theirs} ckpt_path={hydra_quote(str(path))}; "
        f"to start a new run with {ours}: leave out ckpt_path"
    )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def run_is_complete(checkpoint: dict[str, Any], max_steps: int | None, max_epochs: int | None) -> str:
    """Why the run saved in `checkpoint` has nothing left to train under these limits ('' if it has)."""
    step = int(checkpoint.get("global_step", 0))
    try:
        epochs = int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"])
    except (KeyError, TypeError, ValueError):
        epochs = -1
    if max_steps is not None and max_steps >= 0 and step >= max_steps:
        return f"it reached trainer.max_steps={max_steps} (step {step})"
    if max_epochs is not None and max_epochs >= 0 and epochs >= max_epochs:
        return f"it reached trainer.max_epochs={max_epochs} (step {step})"
    return ""


def checkpoint_to_score(value: str, train_runs_dir: Path) -> Path:
    """The checkpoint file that evaluate's `ckpt_path=<value>` names: a file, a run folder, or `last`.

    `last` is the newest checkpoints/last.ckpt of the training runs (below `train_runs_dir`); a run
    folder (or its checkpoints/ folder) means the last.ckpt inside it.
    """
    if str(value) == LAST:
        newest = latest_checkpoint(train_runs_dir)
        if newest is None:
            raise CheckpointError(
                f"ckpt_path=last: no training run under {train_runs_dir} has a checkpoints/last.ckpt; "
                "give a checkpoint file or a run folder"
            )
        log.info("ckpt_path=last: scoring the latest training run's checkpoint, %s", newest)
        return newest
    from encdec_pl.runtime.config import _abspath  # Hydra-aware; imported here to keep this module Hydra-free

    path = Path(_abspath(str(value)))
    if path.is_dir():
        for candidate in (path / "checkpoints" / "last.ckpt", path / "last.ckpt"):
            if candidate.is_file():
                return candidate
        raise CheckpointError(
            f"ckpt_path={value}: {path} is a folder without checkpoints/last.ckpt (or last.ckpt) in it; "
            "give a checkpoint file, a run folder, or ckpt_path=last for the latest training run"
        )
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={value}: no checkpoint file at {path}")
    return path


def latest_run(runs_dir: Path) -> Path | None:
    """The run folder below `runs_dir` whose checkpoints/last.ckpt was written last, or None."""
    newest = latest_checkpoint(runs_dir)
    return newest.parent.parent if newest is not None else None


def resume_command(path: Path, *extra: str) -> str:
    """The command that continues this run from `path`: its own overrides, then ckpt_path and `extra`.

    The run's overrides of ONE_RUN_ONLY keys and of the keys in `extra` are left out.
    Outside a Hydra run (no overrides known) it is only `ckpt_path=<path> <extra>`. It starts with
    the interpreter that ran this command, as the shell finds it (`python`, or `.venv/bin/python`
    when the virtual environment is not activated), and works as pasted into the folder it ran from.
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
    words = [*python_command(), "-m", "encdec_pl.train", *kept, f"ckpt_path={hydra_quote(str(path))}", *extra]
    return " ".join(shell_quote(word) for word in words)


def shell_quote(word: str) -> str:
    """shlex.quote, but "key='a b'" rather than 'key='"'"'a b'"'"'' for a Hydra-quoted value."""
    if "'" in word and not any(c in word for c in '"$`\\!'):
        return f'"{word}"'
    return shlex.quote(word)


# Characters that Hydra's override grammar takes in an unquoted value (and that mean nothing special there).
_HYDRA_PLAIN = re.compile(r"[A-Za-z0-9_/.+-]+")


def hydra_quote(value: str) -> str:
    """`value` as Hydra's override parser reads it back unchanged: quoted when it holds anything but plain ASCII."""
    if _HYDRA_PLAIN.fullmatch(value):
        return value
    return "'" + value.replace("'", "\\'") + "'"


def _started_in() -> Path:
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return Path(HydraConfig.get().runtime.cwd)
    except ImportError:  # pragma: no cover
        pass
    return Path.cwd()


def _as_typed(program: Path) -> str:
    """`program` as the user would type it in the folder the command started in."""
    here = _started_in().absolute()
    program = program.absolute()
    if not program.is_relative_to(here):
        return str(program)
    relative = os.path.relpath(program, here)
    return relative if "/" in relative else f"./{relative}"


def python_command() -> list[str]:
    """This interpreter as the shell finds it: `python` when that is the one on PATH, else its path."""
    executable = Path(sys.executable)
    found = shutil.which("python")
    if found is not None and Path(found).absolute().parent == executable.absolute().parent:
        return ["python"]
    return [_as_typed(executable)]


def wandb_command() -> list[str]:
    """The `wandb` program of this environment as the shell finds it (its path, or `python -m wandb`)."""
    program = Path(sys.executable).absolute().parent / "wandb"
    found = shutil.which("wandb")
    if found is not None and Path(found).absolute() == program:
        return ["wandb"]
    if program.is_file():
        return [_as_typed(program)]
    return [*python_command(), "-m", "wandb"]
