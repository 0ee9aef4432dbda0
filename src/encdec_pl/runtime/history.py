"""Read back what a run logged, from its own files: W&B offline runs or Lightning CSV logs.

W&B keeps an offline run in one `run-<id>.wandb` file: a LevelDB-style log of
protobuf `Record`s (32 KiB blocks of chunks, each with a 7-byte header). The SDK
no longer ships a Python reader for it, so the few lines of format are here.
Tests and notebooks use this to check and plot what was logged, not what was
meant to be logged.
"""

from __future__ import annotations

import csv
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_FILE_HEADER = struct.Struct("<4sHB")  # b":W&B", magic 0xBEE1, version
_CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type
_BLOCK_SIZE = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _wandb_records(path: Path) -> list[bytes]:
    """The serialized records of a .wandb file, chunks reassembled."""
    data = path.read_bytes()
    ident, magic, _version = _FILE_HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a W&B run file")
    records, pending, pos = [], b"", _FILE_HEADER.size
    while pos + _CHUNK_HEADER.size <= len(data):
        space_left = _BLOCK_SIZE - pos % _BLOCK_SIZE
        if space_left < _CHUNK_HEADER.size:  # block tail too short for a header: zero padding
            pos += space_left
            continue
        _crc, length, kind = _CHUNK_HEADER.unpack_from(data, pos)
        pos += _CHUNK_HEADER.size
        chunk, pos = data[pos : pos + length], pos + length
        if kind == _FULL:
            records.append(chunk)
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            records.append(pending + chunk)
            pending = b""
        else:  # zero bytes past the last record of a block being written
            break
    return records


def find_wandb_run_file(folder: str | Path) -> Path:
    """The newest run-*.wandb file below `folder` (a run folder, its wandb/ dir, or the run dir itself)."""
    folder = Path(folder)
    if folder.is_file():
        return folder
    candidates = sorted(folder.rglob("run-*.wandb"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(f"no W&B run file (run-*.wandb) below {folder}")
    return candidates[-1]


def _set_item(target: dict[str, Any], item: Any, value: Any) -> None:
    # Scalars arrive under `key`; media (an image's type, size, file) under `nested_key` parts.
    if item.key:
        target[item.key] = value
        return
    *parents, last = item.nested_key
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


def _parsed_records(folder: str | Path) -> Iterator[Any]:
    """The protobuf `Record`s of the run file below `folder`, in order."""
    from wandb.proto import wandb_internal_pb2  # wandb is a dependency; imported late to keep this module light

    for raw in _wandb_records(find_wandb_run_file(folder)):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        yield record


def read_wandb_history(folder: str | Path) -> list[dict[str, Any]]:
    """Every `wandb.log` row of an offline (or synced) run, in order, as plain dicts."""
    rows = []
    for record in _parsed_records(folder):
        if record.WhichOneof("record_type") != "history":
            continue
        row: dict[str, Any] = {}
        for item in record.history.item:
            _set_item(row, item, json.loads(item.value_json))
        rows.append(row)
    return rows


def read_wandb_config(folder: str | Path) -> dict[str, Any]:
    """The run's config as logged (the last value of each key)."""
    config: dict[str, Any] = {}
    for record in _parsed_records(folder):
        kind = record.WhichOneof("record_type")
        # The config given to wandb.init travels in the run record; later updates in config records.
        updates = record.run.config.update if kind == "run" else record.config.update if kind == "config" else []
        for item in updates:
            _set_item(config, item, json.loads(item.value_json))
    return config


def read_wandb_run(folder: str | Path) -> dict[str, Any]:
    """Who the run is (id, name, group, job type, tags, from its run record) and how it ended:
    `exit_code` from its exit record, None when the run was never finished (still running, or killed)."""
    info: dict[str, Any] = {}
    exit_code = None
    for record in _parsed_records(folder):
        kind = record.WhichOneof("record_type")
        if kind == "run" and not info:
            run = record.run
            info = {"id": run.run_id, "name": run.display_name, "group": run.run_group, "job_type": run.job_type}
            info["tags"] = list(run.tags)
        elif kind == "exit":
            exit_code = record.exit.exit_code
    if not info:
        raise ValueError(f"{find_wandb_run_file(folder)} holds no run record")
    return {**info, "exit_code": exit_code}


def read_csv_history(folder: str | Path) -> list[dict[str, Any]]:
    """Rows of the Lightning CSVLogger metrics.csv files below `folder` (empty cells dropped, numbers parsed).

    A resumed run writes a new version folder (csv/version_1/metrics.csv, ...) that starts at its
    checkpoint's step: the versions are joined oldest first, each one replacing the rows of the earlier
    ones from its first step on, so the history is the run's whole, as one run would have logged it.
    """
    folder = Path(folder)
    paths = [folder] if folder.is_file() else sorted(folder.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not paths:
        raise FileNotFoundError(f"no metrics.csv below {folder}")
    rows: list[dict[str, Any]] = []
    for path in paths:
        with path.open() as f:
            version = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
        steps = [row["step"] for row in version if "step" in row]
        if steps:
            rows = [row for row in rows if row.get("step", -1) < min(steps)]
        rows += version
    return rows


def read_run_history(folder: str | Path) -> list[dict[str, Any]]:
    """A run folder's logged rows, from whichever logger wrote them: its W&B run file, else its CSV log.

    Empty when the run logged neither (logger=none or tensorboard, or it died before logging).
    """
    folder = Path(folder)
    if next(folder.rglob("run-*.wandb"), None) is not None:
        return read_wandb_history(folder)
    if next(folder.rglob("metrics.csv"), None) is not None:
        return read_csv_history(folder)
    return []


def series(rows: list[dict[str, Any]], key: str, step_key: str = "trainer/global_step") -> tuple[list, list]:
    """(steps, values) of one metric from history rows, skipping rows that lack it."""
    # CSVLogger names the step column "step"; W&B rows from Lightning carry trainer/global_step.
    pairs = [(r.get(step_key, r.get("step")), r[key]) for r in rows if key in r]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def measurements(rows: list[dict[str, Any]], key: str, step_key: str = "trainer/global_step") -> tuple[list, list]:
    """(steps, values) of a metric measured now and then (quality/...), each measurement once, at its step.

    Runs logged before the quality callback wrote its measurements directly carry the last value
    again at every logging step until the next measurement; such a repeat is left out.
    """
    steps, values = series(rows, key, step_key)
    kept = [i for i, value in enumerate(values) if i == 0 or value != values[i - 1]]
    return [steps[i] for i in kept], [values[i] for i in kept]
