"""Errors a user can fix. The command-line entry points print them as one line, no traceback."""

from __future__ import annotations

import math
from typing import Any


class EncDecError(Exception):
    """Base of every error caused by input rather than by a bug."""


class ConfigError(EncDecError):
    """A setting is unknown, of the wrong type, or out of range."""


class DataError(EncDecError):
    """Dataset files are missing, truncated or corrupt, and cannot be downloaded."""


class CheckpointError(EncDecError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


class SweepError(EncDecError):
    """A sweep folder is missing or holds no jobs, or a sweep job failed (died, or a user error in a worker)."""


class InvalidArgument(ConfigError, ValueError):
    """One constructor argument is out of range.

    Carries the argument's name so the CLI can point at the config key it came
    from (`latent_dim` -> `model.latent_dim`).
    """

    def __init__(self, name: str, value: Any, requirement: str) -> None:
        self.name, self.value, self.requirement = name, value, _say_number(value, requirement)
        super().__init__(f"{name}={value!r} is invalid: must be {self.requirement}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its three fields: a sweep job's error travels back from a Ray worker pickled.
        return type(self), (self.name, self.value, self.requirement)


# Requirements that compare a number ("> 0", ">= 0", "in [0, 1)"): for a value that is no number at all,
# or NaN/infinity, "must be >= 0" would be misleading (`fake_weight=[1,2]`, `fake_weight=nan`).
_NUMERIC_REQUIREMENT = ("<", ">", "in [", "in (")


def _say_number(value: Any, requirement: str) -> str:
    if not requirement.startswith(_NUMERIC_REQUIREMENT):
        return requirement
    if isinstance(value, float) and not math.isfinite(value):
        return f"a finite number {requirement}"
    if not is_number(value):
        return f"a number {requirement} (got {_kind(value)})"
    return requirement


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__


def require(condition: bool, name: str, value: Any, requirement: str) -> None:
    """Raise InvalidArgument(name, value, requirement) unless `condition` holds."""
    if not condition:
        raise InvalidArgument(name, value, requirement)


def is_number(value: Any) -> bool:
    # bool is an int subclass, but `fake_weight=true` is a typo, not a weight.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and is_number(value) and value > 0


def is_non_negative_int(value: Any) -> bool:
    return isinstance(value, int) and is_number(value) and value >= 0


def first_line(err: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none): how errors are reported."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
