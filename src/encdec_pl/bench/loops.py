"""The three training loops that `python -m encdec_pl.bench` times, and how they are timed.

1. `published_loop`: the loop the method was published with, written from docs/method.md:
   a DataLoader over MNIST as PIL images, rotated one at a time (RandomRotation then
   ToTensor), fp32, eager, plain PyTorch, and a *new DataLoader iterator at every step*,
   which starts its worker process every time.
2. `lightning_loop` with the training config and `speed=off`: a conventional Lightning
   loop (DataLoader with worker processes, fp32, eager).
3. `lightning_loop` with the training config as it is: the project's fast path.

Throughput is images per second over `steps` consecutive training steps after
`warmup` steps, repeated `repeats` times; the median repeat is reported. The device
is synchronised only at the edges of a repeat, so the timing adds no sync to the loop.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from encdec_pl.data import ensure_dataset
from encdec_pl.models import EncDec
from encdec_pl.models.ede import PUBLISHED
from encdec_pl.runtime.callbacks.equilibrium import EquilibriumDetector
from encdec_pl.runtime.callbacks.speed import FastStep
from encdec_pl.runtime.config import build_model, build_trainer, construct


@dataclass
class Timing:
    """What one loop did: images/s of each repeat, peak memory, and (optionally) the equilibrium."""

    name: str
    batch_size: int
    images_per_s: list[float] = field(default_factory=list)
    peak_memory_mb: float = float("nan")
    settings: dict[str, Any] = field(default_factory=dict)
    equilibrium_step: int | None = None
    equilibrium_seconds: float | None = None
    steps_run: int = 0
    seconds_run: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.images_per_s) if self.images_per_s else float("nan")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        )
    return f"cpu: {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def train_config(cfg: DictConfig, batch_size: int, device: torch.device, *extra: str) -> DictConfig:
    """The training config (conf/train.yaml) as `python -m encdec_pl.train` would compose it, plus overrides."""
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    overrides = [
        f"experiment={cfg.experiment}",  # the network and optimiser the loops time (bench.yaml)
        f"seed={cfg.seed}",
        f"data.batch_size={batch_size}",
        f"trainer.accelerator={accelerator}",
        "trainer.devices=1",
        *cfg.train_overrides,
        *extra,
    ]
    return compose(config_name="train", overrides=overrides)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def current_rss_mb() -> float:
    """Resident memory of this process now (Linux), in MB; NaN where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except OSError:
        return float("nan")
    import resource

    return pages * resource.getpagesize() / 2**20


class MemoryPeak:
    """Peak memory while a loop runs: CUDA's allocator peak on a GPU, the sampled RSS of this process on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak = device, 0.0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def sample(self) -> None:
        if self.device.type != "cuda":
            self.peak = max(self.peak, current_rss_mb())

    def result(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return self.peak


class RepeatTimer:
    """Turns step-end calls into images/s per repeat: `warmup` steps ignored, then `repeats` x `steps`."""

    def __init__(self, batch_size: int, warmup: int, steps: int, repeats: int, device: torch.device) -> None:
        self.batch_size, self.warmup, self.steps, self.repeats = batch_size, warmup, steps, repeats
        self.device, self.memory = device, MemoryPeak(device)
        self.done, self.start = 0, 0.0
        self.images_per_s: list[float] = []

    @property
    def total_steps(self) -> int:
        return self.warmup + self.steps * self.repeats

    def step_done(self) -> None:
        self.done += 1
        self.memory.sample()
        measured = self.done - self.warmup
        if measured < 0 or measured % self.steps != 0:
            return
        synchronize(self.device)
        now = time.perf_counter()
        if measured > 0:
            self.images_per_s.append(self.steps * self.batch_size / (now - self.start))
        self.start = now


# ----- 1. the published loop ---------------------------------------------------------------------
def published_loop(
    data_root: str, batch_size: int, warmup: int, steps: int, repeats: int, device: torch.device, seed: int = 0
) -> Timing:
    """docs/method.md's reference setup run as it was published: a new loader iterator (and worker) per step."""
    torch.manual_seed(seed)
    ensure_dataset(data_root, "mnist", download=False)
    augment = transforms.Compose([transforms.RandomRotation(10), transforms.ToTensor()])  # PIL in, [0, 1] out
    loader = DataLoader(
        datasets.MNIST(data_root, train=True, transform=augment), batch_size=batch_size, shuffle=True, num_workers=1
    )
    model = EncDec(**PUBLISHED).to(device).train()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    timer = RepeatTimer(batch_size, warmup, steps, repeats, device)
    for _ in range(timer.total_steps):
        x, _ = next(iter(loader))  # the published pattern: iter() here starts a worker process every step
        loss = model.compute_losses(x.to(device))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        timer.step_done()
    settings = {
        "precision": "32-true",
        "data": "new iterator + worker per step",
        "channels_last": False,
        "compile": False,
    }
    return Timing("published loop", batch_size, timer.images_per_s, timer.memory.result(), settings)


# ----- 2. and 3. Lightning loops from the training config -----------------------------------------
class StepTimerCallback(L.Callback):
    """Feeds a RepeatTimer from Lightning's batch-end hook and records wall-clock per step."""

    def __init__(self, timer: RepeatTimer | None) -> None:
        self.timer = timer
        self.start = 0.0
        self.step_times: dict[int, float] = {}  # global step -> seconds since fit started

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.timer is not None:
            self.timer.step_done()
        else:
            self.step_times[trainer.global_step] = time.perf_counter() - self.start


def build_run(cfg: DictConfig, callbacks: Sequence[L.Callback], **trainer_args: Any) -> tuple[Any, Any, L.Trainer, Any]:
    """Data module, model, Trainer and FastStep callback from a composed training config, built as train.py does."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = construct(cfg, "data")
    model = build_model(cfg, datamodule)
    trainer = build_trainer(
        cfg,
        callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_args,
    )
    speed = next(callback for callback in trainer.callbacks if isinstance(callback, FastStep))
    return datamodule, model, trainer, speed


def describe(cfg: DictConfig, trainer: L.Trainer, datamodule: Any, speed: Any) -> dict[str, Any]:
    """The settings a loop ran with, as the table shows them."""
    return {
        "precision": str(trainer.precision),
        "data": "on device" if datamodule.uses_device_batches() else f"{datamodule.num_workers} workers",
        "channels_last": speed.applied["channels_last"],
        "compile": speed.applied["compile_mode"] if speed.applied["compile"] else False,
    }


def lightning_loop(
    name: str, cfg: DictConfig, warmup: int, steps: int, repeats: int, device_of: Callable[[L.Trainer], torch.device]
) -> Timing:
    """Throughput of `trainer.fit` as the training config builds it (no validation, logger or checkpoints)."""
    batch_size = cfg.data.batch_size
    timer_cb = StepTimerCallback(None)
    datamodule, model, trainer, speed = build_run(
        cfg, [timer_cb], max_steps=warmup + steps * repeats, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0
    )
    timer = RepeatTimer(batch_size, warmup, steps, repeats, device_of(trainer))
    timer_cb.timer = timer
    trainer.fit(model, datamodule=datamodule)
    return Timing(
        name, batch_size, timer.images_per_s, timer.memory.result(), describe(cfg, trainer, datamodule, speed)
    )


def time_to_equilibrium(name: str, cfg: DictConfig, rule: DictConfig, max_minutes: float) -> Timing:
    """Train as configured until the latent-norm equilibrium (EquilibriumDetector, stop=True) or `max_minutes`.

    The wall-clock reported is from the start of fit (compilation included) to the end of the
    equilibrium step, the first step of the calm stretch that the rule found.
    """
    timer_cb = StepTimerCallback(None)
    detector = EquilibriumDetector(stop=True, **rule)
    minutes = int(max_minutes)
    max_time = f"00:{minutes // 60:02d}:{minutes % 60:02d}:{round((max_minutes - minutes) * 60):02d}"  # DD:HH:MM:SS
    datamodule, model, trainer, speed = build_run(cfg, [timer_cb, detector], max_time=max_time)
    trainer.fit(model, datamodule=datamodule)
    step = detector.equilibrium_step
    timing = Timing(name, cfg.data.batch_size, settings=describe(cfg, trainer, datamodule, speed))
    timing.equilibrium_step = step
    timing.equilibrium_seconds = timer_cb.step_times.get(step) if step is not None else None
    timing.steps_run = trainer.global_step
    timing.seconds_run = max(timer_cb.step_times.values(), default=0.0)
    return timing
