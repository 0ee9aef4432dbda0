"""Helpers shared by the long-running scripts: run one CLI command with its output in a log file,
and tell whether a training run in a folder has already completed (so a script can resume)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def run(command: list[str], log: Path) -> None:
    """Run one CLI command, its output appended to `log`; stop the script if it fails."""
    print(f"$ {' '.join(command)}", flush=True)
    start = time.time()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("a") as f:
        result = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, env=env)
    print(f"  ({time.time() - start:.0f} s, exit {result.returncode}, log {log})", flush=True)
    if result.returncode != 0:
        sys.exit(f"error: a run failed (exit {result.returncode}); see {log}")


def completed(run_dir: Path) -> bool:
    """True when the training run in `run_dir` finished (its metrics.json says so)."""
    summary = run_dir / "metrics.json"
    return summary.is_file() and json.loads(summary.read_text()).get("status") == "completed"
