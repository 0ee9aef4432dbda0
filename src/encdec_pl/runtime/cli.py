"""Command-line wrapper for the Hydra entry points: user errors become one line, not a traceback.

Hydra reports a bad override with several lines of its own (and a traceback for
errors inside the run). Here Hydra is asked to raise instead, and every error
that the user can fix - a typo'd key, an unknown option, a value out of range,
missing data, an unreadable checkpoint - is printed as a single `error: ...`
line with a non-zero exit. Anything else is a bug and keeps its full traceback.
Set HYDRA_FULL_ERROR=1 to see tracebacks for everything.
"""

from __future__ import annotations

import difflib
import errno
import functools
import json
import logging
import os
import secrets
import shutil
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import (
    ConfigCompositionException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from hydra.types import RunMode
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException
from yaml import YAMLError

from encdec_pl.errors import ConfigError, EncDecError, first_line, is_non_negative_int
from encdec_pl.runtime.config import print_config_tree, register_resolvers

# Marks that HYDRA_FULL_ERROR was set by this module (and inherited by child processes
# such as DDP workers), not by the user asking for full tracebacks.
_OWN_MARKER = "ENCDEC_PL_QUIET_ERRORS"

EXIT_CONFIG_ERROR = 2  # like argparse: the command line or config is wrong
EXIT_RUNTIME_ERROR = 1  # data, checkpoint or run failure

T = TypeVar("T")
log = logging.getLogger(__name__)


def prepare_process(launchers: Sequence[type] = ()) -> None:
    """What a command does once per process, before Hydra composes its config; safe to call again.

    Registers the configs' resolvers (${abspath:...}, ${new_dir:...}...) and the sweep `launchers`
    (Hydra finds launchers by listing the `hydra_plugins` namespace package, which an editable
    install's import hook cannot list), and silences messages nobody can act on.
    """
    register_resolvers()
    if launchers:
        from hydra.core.plugins import Plugins

        for launcher in launchers:
            Plugins.instance().register(launcher)
    # Lightning's advert for its cloud logger at each Trainer start, and a deprecation inside
    # Lightning's own use of torch's pytree.
    lightning_info = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(getattr(f, "__name__", "") == "_no_litlogger" for f in lightning_info.filters):
        lightning_info.addFilter(_no_litlogger)
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # The model summary cannot size bf16 weights and says so at every start; the sizes it prints are fp32's.
    warnings.filterwarnings("ignore", message=r"Precision bf16-mixed is not supported by the model summary")
    # conf/hydra/launcher/ray.yaml keeps the Ray plugin's option name, so Hydra checks it against the
    # plugin's schema of that name (wanted: typos fail) and warns that such matching is deprecated.
    warnings.filterwarnings("ignore", message=r"\s*'hydra/launcher/ray' is validated against ConfigStore schema")


def _no_litlogger(record: logging.LogRecord) -> bool:
    # ...and that the progress bar's model summary replaces Lightning's own (callbacks.model_summary).
    message = record.getMessage()
    return "litlogger" not in message and "Skipping setting a default `ModelSummary`" not in message


def start_run(cfg: DictConfig, seeded: bool = True) -> Path:
    """The start of every command's run: its folder, the seed, the resolved config saved; returns the folder.

    `prepare_run`, then `record_run`. A command that builds and checks more before anything is
    written (train) calls the two itself, with its checks in between.
    """
    prepare_run(cfg, seeded)
    return record_run(cfg)


def prepare_run(cfg: DictConfig, seeded: bool = True) -> None:
    """Apply `extras.ignore_warnings`; for a `seeded` command (its config has a top-level `seed`, which
    `~seed` deletes: a one-line error), seed torch, numpy and Python with it.

    seed=null draws a random seed (Lightning 2.6's seed_everything(None) would use 0, every time),
    logs it and puts it into `cfg`, so that config.yaml records it. Writes nothing.
    """
    extras = cfg.get("extras") or {}
    if extras.get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    if seeded:
        seed = cfg.seed
        if seed is not None and not (is_non_negative_int(seed) and seed < 2**32):
            raise ConfigError(f"seed={seed!r} is invalid: must be an integer in [0, 2**32 - 1], or null")
        if seed is None:
            seed = secrets.randbelow(2**32)
            log.info("seed=null: drew seed %d (saved in config.yaml; seed=%d repeats this run)", seed, seed)
        # seed=0 is a seed like any other.
        with open_dict(cfg):
            cfg.seed = L.seed_everything(seed, workers=True, verbose=False)


def record_run(cfg: DictConfig) -> Path:
    """Create `paths.output_dir`, save the resolved config as config.yaml and, with `extras.print_config`,
    print the config tree (kept as config_tree.log); return the folder."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
    if (cfg.get("extras") or {}).get("print_config"):
        print_config_tree(cfg, save_to=output_dir / "config_tree.log")
    return output_dir


def write_summary(
    output_dir: Path, command: str, status: str, global_step: int | None, metrics: dict[str, Any], **details: Any
) -> Path:
    """`<output_dir>/metrics.json`, the one summary every command writes, in one schema:

    {"command": "train" | "evaluate" | "classifier", "status": "completed" | "interrupted" | "diverged" | "failed",
     "global_step": the model's training step (null where there is none), "metrics": {name: number},
     ...what else that command records (evaluate: "reference", "checkpoint", "model"...)}.
    Sweep reports (runtime.sweep.results), scripts/ and the tests read it.
    """
    summary = {"command": command, "status": status, "global_step": global_step, "metrics": metrics, **details}
    path = output_dir / "metrics.json"
    partial = path.with_name(path.name + ".partial")  # written whole, then renamed: never half a file
    partial.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(partial, path)
    return path


def run_cli(hydra_main: Callable[[], Any], launchers: Sequence[type] = ()) -> None:
    """Run a `@hydra.main` function, printing user errors as one line.

    Every command's `__main__` calls it: it prepares the process (`prepare_process`), then
    catches what goes wrong before the run starts (composing the config);
    `@user_errors` on the task function catches what goes wrong inside it.
    """
    prepare_process(launchers)
    user_wants_tracebacks = os.environ.get("HYDRA_FULL_ERROR") == "1" and not os.environ.get(_OWN_MARKER)
    if user_wants_tracebacks:
        hydra_main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra then raises instead of printing its own report
    os.environ[_OWN_MARKER] = "1"
    try:
        hydra_main()
    except BrokenPipeError:
        # The reader went away (`--help | head`): not worth a traceback. Python's recipe:
        # point stdout at /dev/null so that flushing at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_RUNTIME_ERROR)
    except Exception as err:  # noqa: BLE001 - sorted into user errors and bugs by exit_on_user_error
        exit_on_user_error(err)
        raise
    finally:
        remove_empty_run_folders()


# What Hydra and the entry points write into a run folder before anything of value: a folder that
# holds nothing else was made by a command that was rejected (or had nothing to do).
def _is_bookkeeping(entry: Path) -> bool:
    if entry.is_dir():
        return entry.name == ".hydra"
    return entry.name == "config.yaml" or entry.suffix == ".log"  # <task>.log, config_tree.log


def remove_empty_run_folders() -> None:
    """Delete the run folders this command created that hold only bookkeeping (no checkpoint, image, log of a run)."""
    from encdec_pl.runtime.config import CREATED_DIRS

    for folder in CREATED_DIRS:
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        if all(_is_bookkeeping(entry) for entry in entries):
            shutil.rmtree(folder, ignore_errors=True)


def user_errors(task: Callable[[DictConfig], T]) -> Callable[[DictConfig], T]:
    """Decorate a Hydra task function so that a user error in a single run exits with one line.

    In a multirun the error is raised as usual instead: Hydra then marks that one job as
    failed (and names its overrides) while the other jobs go on.
    """

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> T:
        try:
            return task(cfg)
        except Exception as err:  # noqa: BLE001 - re-raised unless it is a user error in a single run
            if HydraConfig.get().mode != RunMode.MULTIRUN:
                exit_on_user_error(err)
            raise

    return wrapper


def exit_on_user_error(err: BaseException) -> None:
    """Print `error: <one line>` and exit when `err` is the user's to fix; return if it is a bug."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1" and not os.environ.get(_OWN_MARKER):
        return
    message = user_error_message(err)
    if message is None:
        return
    print(f"error: {message}", file=sys.stderr, flush=True)
    cause = _root_cause(err)
    config_error = isinstance(
        cause, (ConfigError, ConfigCompositionException, OmegaConfBaseException, YAMLError, OverrideParseException)
    )
    sys.exit(EXIT_CONFIG_ERROR if config_error else EXIT_RUNTIME_ERROR)


def _root_cause(err: BaseException) -> BaseException:
    # Hydra's instantiate wraps the exception raised by the target; the target's is the one to report.
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return err


# A folder the run cannot write to: a read-only filesystem, missing permissions, a full disk.
_WRITE_ERRORS = {
    errno.EROFS: "the filesystem is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on the device",
    errno.ENOTDIR: "a file is in the way of the folder",
}


def _write_error(err: BaseException) -> OSError | None:
    """The OSError behind `err` (itself, or a cause/context) when it says a path cannot be written."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _WRITE_ERRORS and err.filename:
            return err
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return None


def user_error_message(err: BaseException) -> str | None:
    """One line describing a user error, or None when `err` is a bug."""
    write_error = _write_error(err)
    if write_error is not None:
        return (
            f"cannot write to {write_error.filename}: {_WRITE_ERRORS[write_error.errno]}. Fix: choose a writable "
            "folder for the run with hydra.run.dir=<folder> (or for all runs with paths.log_dir=<folder>)"
        )
    err = _root_cause(err)
    if isinstance(err, EncDecError):
        return first_line(err)
    if isinstance(err, MissingConfigException):
        return _missing_config_message(err)
    if isinstance(err, ConfigCompositionException):
        cause = err.__cause__
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and "not in struct" in str(cause):
            return _unknown_key_message(cause)
        detail = f" ({first_line(cause)})" if cause is not None else ""
        return f"{first_line(err)}{detail}"
    if isinstance(err, OverrideParseException):
        override = getattr(err, "override", "")
        detail = first_line(err).removeprefix(f"Error parsing override '{override}'").strip() or "invalid syntax"
        if "LexerNoViableAlt" in detail or "token recognition error" in detail:
            # Hydra's grammar takes only plain ASCII characters in an unquoted value (a path with é, say)
            key, _, value = str(override).partition("=")
            example = f"\"{key}='{value}'\"" if key and value else "\"key='value'\""
            detail += f"; quote the value for Hydra, inside the shell's quotes: {example}"
        return (
            f"cannot parse the override '{override}': {detail}" if override else f"cannot parse the override: {detail}"
        )
    if isinstance(err, OmegaConfBaseException):
        full_key = getattr(err, "full_key", None)
        if full_key and isinstance(err, ConfigAttributeError) and "not in struct" in str(err):
            return f"setting '{full_key}' is missing from the config (deleted with ~{full_key}?)"
        return f"{full_key}: {first_line(err)}" if full_key else first_line(err)
    if isinstance(err, YAMLError):
        return f"invalid YAML in a config file: {' '.join(str(err).split())}"
    if isinstance(err, MisconfigurationException):
        return first_line(err)
    if isinstance(err, ValueError) and str(err).startswith("Config group override must be a string or a list"):
        # Hydra's own ValueError for `group=null` on the command line (e.g. experiment=null)
        return (
            "a config group cannot be set to null on the command line: remove it with ~<group> "
            "(e.g. ~experiment), or choose one of its options (python -m encdec_pl.train --help)"
        )
    return None


def _unknown_key_message(err: OmegaConfBaseException) -> str:
    full_key = str(err.full_key)
    parent = getattr(err, "parent_node", None)
    siblings = [str(k) for k in parent] if OmegaConf.is_dict(parent) else []
    prefix = full_key.rsplit(".", 1)[0] + "." if "." in full_key else ""
    message = f"unknown setting '{full_key}'"
    close = difflib.get_close_matches(full_key.rsplit(".", 1)[-1], siblings, n=1)
    if close:
        message += f" (did you mean '{prefix}{close[0]}'?)"
    if siblings and len(siblings) <= 12:
        message += f"; settings under '{prefix.rstrip('.') or 'the top level'}': {', '.join(sorted(siblings))}"
    return message + ". To add a new key on purpose, prefix it with '+'"


def _missing_config_message(err: MissingConfigException) -> str:
    options = list(err.options or [])
    name = err.missing_cfg_file or ""
    if options and "/" in name:
        group, option = name.rsplit("/", 1)
        close = difflib.get_close_matches(option, options, n=1)
        hint = f" (did you mean {group}={close[0]}?)" if close else ""
        return f"{group}={option} is not an option{hint}; choose one of: {', '.join(sorted(options))}"
    return first_line(err)
