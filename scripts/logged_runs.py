"""Helpers shared by the long-running scripts: run one CLI command with its output in a log file,
tell whether a training run in a folder has already completed, and train one that has not (resuming)."""

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


def train_resumably(run_dir: Path, overrides: list[str], extra: list[str], log_name: str) -> None:
    """`python -m encdec_pl.train` into `run_dir` (seed 0, CSV log, one core) with `overrides`, then
    `extra` (the script's command line); skipped when it completed, resumed from its last.ckpt when it started."""
    if completed(run_dir):
        return
    last = run_dir / "checkpoints" / "last.ckpt"
    command = [
        sys.executable, "-m", "encdec_pl.train",
        f"hydra.run.dir={run_dir}",
        *overrides,
        "seed=0",
        "logger=csv",
        "data.num_workers=0",  # one core per run (see PROTOCOL.md); rotation costs little
        "extras.print_config=false",
        *([f"ckpt_path={last}"] if last.is_file() else []),
        *extra,
    ]  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    run(command, run_dir / log_name)


def completed(run_dir: Path) -> bool:
    """True when the training run in `run_dir` finished (its metrics.json says so)."""
    summary = run_dir / "metrics.json"
    return summary.is_file() and json.loads(summary.read_text()).get("status") == "completed"


def measured(curve: list[dict]) -> list[dict]:
    """The rows of a quality curve at which the model was scored (the CSV log repeats a value until the next)."""
    out: list[dict] = []
    for row in curve:
        values = {k: v for k, v in row.items() if k.startswith("quality/")}
        if not out or values != {k: v for k, v in out[-1].items() if k.startswith("quality/")}:
            out.append(row)
    return out


def plot_quality_against_images(lines: list[dict], path: Path, title: str) -> None:
    """Label preservation (top) and sample Frechet distance (bottom, log) against training images.

    Each line: {"images": [...], "label_preservation": [...], "frechet_samples": [...], **matplotlib kwargs}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 6), sharex=True)
    for line in lines:
        style = {k: v for k, v in line.items() if k not in ("images", "label_preservation", "frechet_samples")}
        top.plot(line["images"], line["label_preservation"], marker=".", **style)
        bottom.plot(line["images"], line["frechet_samples"], marker=".", **style)
    top.set_ylabel("label preservation\n(1000 validation images)", fontsize=8)
    bottom.set_ylabel("Frechet distance, samples\n(classifier features)", fontsize=8)
    bottom.set_yscale("log")
    bottom.set_xlabel("training images")
    top.legend(fontsize=7)
    top.set_title(title, fontsize=9)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
