"""Benchmark training: `python -m encdec_pl.bench [key=value ...]` (make bench; CI: --config-name bench_quick).

In one process, on one device, it times training steps (images/s after warm-up,
median of repeats) of (1) the published loop, (2) a conventional Lightning loop
(the training config with speed=off) and (3) the project's fast path (the training
config as it is), at each batch size; prints the ratios 3:1 and 3:2, the peak memory
and the device; then, unless disabled, the wall-clock time from start to the
latent-norm equilibrium of (2) and (3) at the same seed. Everything printed is also
written to bench.json in the run folder (outputs/bench/runs/<date>_<time>/).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from encdec_pl.bench.flops import PEAK_BF16_FLOPS, arithmetic_bound, training_step_flops
from encdec_pl.bench.loops import (
    Timing,
    device_name,
    lightning_loop,
    published_loop,
    time_to_equilibrium,
    train_config,
)
from encdec_pl.runtime.cli import run_cli, start_run, user_errors
from encdec_pl.runtime.config import CONFIG_PACKAGE
from encdec_pl.runtime.devices import pick_device

log = logging.getLogger(__name__)

CONVENTIONAL, FAST, PUBLISHED = "conventional Lightning", "fast path", "published loop"


def run_table(cfg: DictConfig, device: torch.device) -> list[Timing]:
    timings: list[Timing] = []
    data_root = train_config(cfg, 128, device).data.root
    device_of = lambda trainer: trainer.strategy.root_device  # noqa: E731
    for batch_size in cfg.batch_sizes:
        p = cfg.published
        log.info("batch %d: the published loop", batch_size)
        timings.append(published_loop(data_root, batch_size, p.warmup_steps, p.steps, p.repeats, device, seed=cfg.seed))
        for name, extra in ((CONVENTIONAL, ["speed=off"]), (FAST, [])):
            log.info("batch %d: %s", batch_size, name)
            train_cfg = train_config(cfg, batch_size, device, *extra)
            timings.append(lightning_loop(name, train_cfg, cfg.warmup_steps, cfg.steps, cfg.repeats, device_of))
    return timings


def ratios(timings: list[Timing]) -> dict[int, dict[str, float]]:
    by = {(t.name, t.batch_size): t.median for t in timings}
    out = {}
    for batch_size in sorted({t.batch_size for t in timings}):
        fast = by[(FAST, batch_size)]
        out[batch_size] = {
            "fast/published": fast / by[(PUBLISHED, batch_size)],
            "fast/conventional": fast / by[(CONVENTIONAL, batch_size)],
        }
    return out


def bounds(batch_sizes: list[int]) -> dict[int, dict[str, float]]:
    out = {}
    for batch_size in batch_sizes:
        flops = training_step_flops(batch_size)
        per_image = flops / batch_size
        out[batch_size] = {"gflop_per_step": flops / 1e9, "mflop_per_image": per_image / 1e6}
        out[batch_size].update(
            {f"bound_img_per_s {gpu}": arithmetic_bound(per_image, peak) for gpu, peak in PEAK_BF16_FLOPS.items()}
        )
    return out


def throughput_table(device: str, timings: list[Timing], quick: bool) -> Table:
    title = "quick CI mode, not a measurement" if quick else "median of repeats"
    table = Table(title=f"Training throughput ({title})")
    memory = "peak GPU MB" if device.startswith("cuda") else "peak RSS MB"
    for column in ("loop", "batch", "img/s", "min-max", memory, "precision", "data", "NHWC", "compile"):
        table.add_column(column, justify="right" if column in ("batch", "img/s", memory) else "left", no_wrap=True)
    for t in timings:
        spread = f"{min(t.images_per_s):.0f}-{max(t.images_per_s):.0f}" if t.images_per_s else "-"
        s = t.settings
        flags = [str(s["channels_last"]).lower(), str(s["compile"]).lower()]
        row = [f"{t.median:.0f}", spread, f"{t.peak_memory_mb:.0f}", s["precision"], s["data"], *flags]
        table.add_row(t.name, str(t.batch_size), *row)
    return table


def print_report(
    console: Console, device: str, timings: list[Timing], ratio: dict, bound: dict, eq: list[Timing], quick: bool
) -> None:
    if timings:  # batch_sizes=[] asks for the equilibrium part alone
        console.print(throughput_table(device, timings, quick))
    console.print(f"device: {device}")
    for batch_size, r in ratio.items():
        console.print(
            f"batch {batch_size}: fast path / published loop = {r['fast/published']:.2f}x, "
            f"fast path / conventional Lightning = {r['fast/conventional']:.2f}x"
        )
    for batch_size, b in bound.items():
        gpus = ", ".join(f"{k.split(' ', 1)[1]} {v:,.0f}" for k, v in b.items() if k.startswith("bound"))
        console.print(
            f"batch {batch_size}: {b['gflop_per_step']:.1f} GFLOP per training step"
            f" ({b['mflop_per_image']:.0f} MFLOP/image); bound in img/s at dense bf16 peak: {gpus}"
        )
    for t in eq:
        if t.equilibrium_step is None:
            console.print(f"equilibrium, {t.name}: not reached in {t.steps_run} steps ({t.seconds_run:.0f} s)")
        else:
            console.print(
                f"equilibrium, {t.name}: step {t.equilibrium_step} after {t.equilibrium_seconds:.0f} s wall-clock"
                f" (batch {t.batch_size}, seed {t.settings.get('seed', '')})"
            )


@hydra.main(version_base="1.3", config_path=CONFIG_PACKAGE, config_name="bench")
@user_errors
def main(cfg: DictConfig) -> None:
    output_dir = start_run(cfg)
    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    console = Console(width=max(Console().width, 130))  # the table is wide; logs and CI have no terminal
    timings = run_table(cfg, device)
    ratio = ratios(timings)
    bound = bounds(list(cfg.batch_sizes))
    eq: list[Timing] = []
    if cfg.equilibrium.enabled:
        batch_size = cfg.equilibrium.batch_size
        for name, extra in ((CONVENTIONAL, ["speed=off"]), (FAST, [])):
            log.info("time to equilibrium: %s", name)
            t = time_to_equilibrium(
                name, train_config(cfg, batch_size, device, *extra), cfg.equilibrium.rule, cfg.equilibrium.max_minutes
            )
            t.settings["seed"] = cfg.seed
            eq.append(t)
    name = device_name(device)
    print_report(console, name, timings, ratio, bound, eq, cfg.quick)
    out = output_dir / "bench.json"
    report: dict[str, Any] = {
        "device": name,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "timings": [asdict(t) | {"median": t.median} for t in timings],
        "ratios": ratio,
        "arithmetic_bound": bound,
        "equilibrium": [asdict(t) for t in eq],
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"written: {out}")


if __name__ == "__main__":
    run_cli(main)
