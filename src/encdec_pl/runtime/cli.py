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
import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.errors import (
    ConfigCompositionException,
    InstantiationException,
    MissingConfigException,
    OverrideParseException,
)
from hydra.types import RunMode
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException
from yaml import YAMLError

from encdec_pl.errors import ConfigError, EncDecError

# Marks that HYDRA_FULL_ERROR was set by this module (and inherited by child processes
# such as DDP workers), not by the user asking for full tracebacks.
_OWN_MARKER = "ENCDEC_PL_QUIET_ERRORS"

EXIT_CONFIG_ERROR = 2  # like argparse: the command line or config is wrong
EXIT_RUNTIME_ERROR = 1  # data, checkpoint or run failure

T = TypeVar("T")


def run_cli(hydra_main: Callable[[], Any]) -> None:
    """Run a `@hydra.main` function, printing user errors as one line.

    This catches what goes wrong before the run starts (composing the config);
    `@user_errors` on the task function catches what goes wrong inside it.
    """
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


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def user_error_message(err: BaseException) -> str | None:
    """One line describing a user error, or None when `err` is a bug."""
    err = _root_cause(err)
    if isinstance(err, EncDecError):
        return _first_line(err)
    if isinstance(err, MissingConfigException):
        return _missing_config_message(err)
    if isinstance(err, ConfigCompositionException):
        cause = err.__cause__
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and "not in struct" in str(cause):
            return _unknown_key_message(cause)
        detail = f" ({_first_line(cause)})" if cause is not None else ""
        return f"{_first_line(err)}{detail}"
    if isinstance(err, OverrideParseException):
        override = getattr(err, "override", "")
        detail = _first_line(err).removeprefix(f"Error parsing override '{override}'").strip() or "invalid syntax"
        return (
            f"cannot parse the override '{override}': {detail}" if override else f"cannot parse the override: {detail}"
        )
    if isinstance(err, OmegaConfBaseException):
        full_key = getattr(err, "full_key", None)
        if full_key and isinstance(err, ConfigAttributeError) and "not in struct" in str(err):
            return f"setting '{full_key}' is missing from the config (deleted with ~{full_key}?)"
        return f"{full_key}: {_first_line(err)}" if full_key else _first_line(err)
    if isinstance(err, YAMLError):
        return f"invalid YAML in a config file: {' '.join(str(err).split())}"
    if isinstance(err, MisconfigurationException):
        return _first_line(err)
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
    return _first_line(err)
