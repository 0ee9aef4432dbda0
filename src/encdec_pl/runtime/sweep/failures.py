"""A failed sweep job leaves `error.txt` in its folder: one line saying why, then the traceback.

Written by the job itself when it raises (the Hydra callback in sweep/callback.py), or by the
Ray launcher when the job's process died (killed, out of memory) before it could write anything.
The sweep report shows the first line.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from encdec_pl.errors import first_line
from encdec_pl.runtime.cli import user_error_message

ERROR_FILE = "error.txt"


def describe_error(err: BaseException) -> str:
    """One line: the user-facing message of a user error, else the exception's type and first line."""
    message = user_error_message(err)
    if message is not None:
        return message
    return f"{type(err).__name__}: {first_line(err)}" if str(err).strip() else type(err).__name__


def portable_error(err: BaseException) -> BaseException:
    """`err` as it can cross a process boundary: a user error becomes a SweepError with its one-line
    message (pickling drops the __cause__ that says it is a user error); a bug stays as it is."""
    from encdec_pl.errors import SweepError

    message = user_error_message(err)
    return SweepError(message) if message is not None and not isinstance(err, SweepError) else err


def record_failure(job_dir: Path, err: BaseException) -> Path:
    """Write `error.txt` into the job's folder, unless the job already wrote one."""
    path = Path(job_dir) / ERROR_FILE
    if path.is_file():  # the job's own record (with its traceback) beats what the launcher saw
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    details = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    path.write_text(f"{describe_error(err)}\n\n{details}")
    return path


def read_failure(job_dir: Path) -> str | None:
    """The one-line reason a job failed, or None when it left no error.txt."""
    path = Path(job_dir) / ERROR_FILE
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    return lines[0] if lines else "failed (empty error.txt)"
