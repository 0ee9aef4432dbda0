"""Bare training steps, interleaved: `python -m encdec_pl.bench.step [batch_size=128] [clock=cpu] [threads=1]`.

Times one EncDec training step (loss, backward, RMSprop) for every combination of
precision (fp32, bf16 autocast) and memory format (NCHW, channels-last), one step of
each variant per round, so that load from other processes hits all variants alike.
With `clock=cpu` it counts the process's CPU time instead of wall-clock: on a shared
machine that measures the work a step needs rather than how long it waited for a core.
It is how the CPU defaults of the fast step were chosen (docs/speed.md).
"""

from __future__ import annotations

import copy
import statistics
import time

import hydra
import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from encdec_pl.errors import ConfigError
from encdec_pl.models import EncDec
from encdec_pl.models.ede import PUBLISHED
from encdec_pl.runtime.cli import run_cli, start_run, user_errors
from encdec_pl.runtime.config import CONFIG_PACKAGE

VARIANTS = {  # name -> (bf16 autocast, channels-last)
    "fp32 NCHW": (False, False),
    "fp32 channels-last": (False, True),
    "bf16 NCHW": (True, False),
    "bf16 channels-last": (True, True),
}
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def interleaved_steps(batch_size: int, rounds: int, warmup: int, clock: str) -> dict[str, list[float]]:
    """Seconds per training step of each variant over `rounds` rounds (after `warmup` rounds), on CPU."""
    torch.manual_seed(0)
    base = EncDec(**PUBLISHED)  # the published model, whose step docs/speed.md times
    models = {}
    for name, (_, channels_last) in VARIANTS.items():
        model = copy.deepcopy(base)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        models[name] = (model, torch.optim.RMSprop(model.parameters(), lr=1e-4))
    x = torch.rand(batch_size, 1, 28, 28)
    now = CLOCKS[clock]
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_ in range(warmup + rounds):
        for name, (model, optimizer) in models.items():
            start = now()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=VARIANTS[name][0]):
                loss = model.compute_losses(x)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if round_ >= warmup:
                seconds[name].append(now() - start)
    return seconds


@hydra.main(version_base="1.3", config_path=CONFIG_PACKAGE, config_name="bench_step")
@user_errors
def main(cfg: DictConfig) -> None:
    start_run(cfg, seeded=False)
    if cfg.clock not in CLOCKS:
        raise ConfigError(f"clock={cfg.clock!r} is invalid: must be cpu or wall")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seconds = interleaved_steps(cfg.batch_size, cfg.rounds, cfg.warmup, cfg.clock)
    reference = statistics.median(seconds["fp32 NCHW"])
    table = Table(
        title=f"Training step on CPU, batch {cfg.batch_size}, {torch.get_num_threads()} thread(s), {cfg.clock} clock"
    )
    for column in ("variant", "ms/step (median)", "min", "img/s", "vs fp32 NCHW"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for name, values in seconds.items():
        median = statistics.median(values)
        ratio = f"{reference / median:.2f}x"
        table.add_row(
            name, f"{median * 1000:.0f}", f"{min(values) * 1000:.0f}", f"{cfg.batch_size / median:.0f}", ratio
        )
    Console(width=max(Console().width, 100)).print(table)


if __name__ == "__main__":
    run_cli(main)
