"""Packing small jobs: `python -m encdec_pl.bench.packing [jobs=[1,2,4,8]] [key=value ...]`.

A sweep's jobs are small: one may not fill a GPU. This runs N copies of the fast
path at once on one device (N separate processes, as a sweep launcher would start
them), for each N in `jobs`, and reports the aggregate images/s: all the images the
N jobs trained in their common timed window, divided by that window. The N that
maximises it is what the sweep launcher's jobs-per-GPU setting should be
(docs/speed.md). On a CPU each job gets cores/N torch threads.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import queue
import time
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from encdec_pl.bench.loops import build_run, device_name, train_config
from encdec_pl.runtime.cli import run_cli, start_run, user_errors
from encdec_pl.runtime.config import CONFIG_PACKAGE
from encdec_pl.runtime.devices import pick_device

log = logging.getLogger(__name__)


class Window(L.Callback):
    """Waits at a barrier with the other jobs after warm-up, then times `steps` steps."""

    def __init__(self, barrier: Any, warmup: int, steps: int) -> None:
        self.barrier, self.warmup, self.steps = barrier, warmup, steps
        self.start = self.end = 0.0

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.warmup:
            if trainer.strategy.root_device.type == "cuda":
                torch.cuda.synchronize()
            self.barrier.wait()
            self.start = time.monotonic()  # one clock for every process of the machine
        elif trainer.global_step == self.warmup + self.steps:
            if trainer.strategy.root_device.type == "cuda":
                torch.cuda.synchronize()
            self.end = time.monotonic()


def run_job(train_cfg: dict, warmup: int, steps: int, threads: int, barrier: Any, results: Any) -> None:
    """One sweep job: the fast path from a resolved training config, timed in the common window."""
    torch.set_num_threads(threads)
    cfg = OmegaConf.create(train_cfg)
    window = Window(barrier, warmup, steps)
    datamodule, model, trainer, _ = build_run(
        cfg, [window], max_steps=warmup + steps, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0
    )
    trainer.fit(model, datamodule=datamodule)
    results.put((window.start, window.end))


def measure(train_cfg: dict, jobs: int, warmup: int, steps: int, threads: int) -> dict[str, float]:
    context = mp.get_context("spawn")  # a fresh interpreter per job, as a launcher starts them (and CUDA-safe)
    barrier, results = context.Barrier(jobs), context.Queue()
    processes = [
        context.Process(target=run_job, args=(train_cfg, warmup, steps, threads, barrier, results)) for _ in range(jobs)
    ]
    for process in processes:
        process.start()
    windows: list[tuple[float, float]] = []
    while len(windows) < jobs:
        try:
            windows.append(results.get(timeout=5))
        except queue.Empty:
            failed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if failed:  # the others would wait at the barrier for ever
                for process in processes:
                    process.terminate()
                raise RuntimeError(f"a packed job failed (exit code {failed[0]}); its output is above") from None
    for process in processes:
        process.join()
    start, end = min(w[0] for w in windows), max(w[1] for w in windows)
    images = jobs * steps * train_cfg["data"]["batch_size"]
    return {
        "jobs": jobs,
        "threads_per_job": threads,
        "seconds": end - start,
        "aggregate_img_per_s": images / (end - start),
    }


@hydra.main(version_base="1.3", config_path=CONFIG_PACKAGE, config_name="bench_packing")
@user_errors
def main(cfg: DictConfig) -> None:
    output_dir = start_run(cfg)
    device = pick_device(cfg.device)
    train_cfg = OmegaConf.to_container(train_config(cfg, cfg.batch_size, device), resolve=True)
    cores = os.cpu_count() or 1
    rows = []
    for jobs in cfg.jobs:
        threads = cfg.threads_per_job or max(1, cores // jobs)
        log.info("%d job(s) at once, %d thread(s) each", jobs, threads)
        rows.append(measure(train_cfg, jobs, cfg.warmup_steps, cfg.steps, threads))
    single = rows[0]["aggregate_img_per_s"] if rows[0]["jobs"] == 1 else float("nan")
    table = Table(title=f"Packing jobs on one device (fast path, batch {cfg.batch_size})")
    for column in ("jobs", "threads/job", "aggregate img/s", "vs 1 job"):
        table.add_column(column, justify="right")
    for row in rows:
        ratio = row["aggregate_img_per_s"] / single
        table.add_row(
            str(row["jobs"]), str(row["threads_per_job"]), f"{row['aggregate_img_per_s']:.0f}", f"{ratio:.2f}x"
        )
    console = Console(width=max(Console().width, 100))
    console.print(table)
    best = max(rows, key=lambda r: r["aggregate_img_per_s"])
    console.print(f"device: {device_name(device)}")
    console.print(f"most images/s with {best['jobs']} job(s) per device: the sweep launcher's jobs-per-GPU setting")
    out = output_dir / "packing.json"
    out.write_text(
        json.dumps({"device": device_name(device), "rows": rows, "best_jobs": best["jobs"]}, indent=2) + "\n"
    )
    console.print(f"written: {out}")


if __name__ == "__main__":
    run_cli(main)
