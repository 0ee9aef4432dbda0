"""Checking a dataset's files before anything reads them: one rule and one pair of messages for every dataset.

Missing files are downloaded when allowed; damaged ones are never overwritten (the user may have
copied them by hand). Whatever is still wrong afterwards stops the run with one line naming the
files, what is wrong with them, where, and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from encdec_pl.errors import DataError


def require_files(
    what: str,
    folder: Path,
    problems: Callable[[], dict[str, str]],
    download: bool,
    fetch: Callable[[], str],
    layout: str,
    source: str = "",
) -> None:
    """Raise DataError unless `problems()` (file name -> what is wrong) comes back empty.

    `fetch()` downloads the missing files and returns "" or why it failed; it runs only when
    `download` is on and every bad file is missing. `layout` says what the data root must hold,
    `source` where files come from (" from <url>"), for the messages.
    """
    bad = problems()
    download_error = ""
    if bad and download and all(p == "missing" for p in bad.values()):
        download_error = fetch()
        bad = problems()
    if not bad:
        return
    if all(p == "missing" for p in bad.values()):
        tried = f"; download{source} failed ({download_error})" if download_error else ""
        fix = "or run once with internet access" if download else "or set data.download=true with internet access"
        raise DataError(
            f"{what} files missing in {folder}: {', '.join(bad)}{tried}. "
            f"Fix: set data.root (or ENCDEC_DATA_DIR) to a folder holding {layout}, {fix}"
        )
    listing = "; ".join(f"{name} {problem}" for name, problem in bad.items())
    raise DataError(
        f"{what} files damaged in {folder}: {listing}. "
        f"Fix: delete them and run again with internet access to re-download{source}, or copy good ones there"
    )
