"""Does the fast path train as well? `python -m encdec_pl.bench.quality [seeds=[0,1]] [max_steps=...]`.

Trains the fp32 path (speed=off) and the fast path (the default config) for the same
number of steps at each seed, with `python -m encdec_pl.train` in a subprocess as a
user would, then compares per path (mean and spread over seeds): the validation loss
terms and latent norm at the last step (from each run's metrics.json), and the pixel
MSE between validation images and their reconstructions D(E(x)) from the last
checkpoint. The fast path holds quality when its means differ from the fp32 path's
by no more than the run-to-run spread between seeds.
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from encdec_pl.data import MNISTDataModule
from encdec_pl.errors import EncDecError
from encdec_pl.models import EncDec
from encdec_pl.runtime.cli import run_cli, start_run, user_errors
from encdec_pl.runtime.config import CONFIG_PACKAGE

log = logging.getLogger(__name__)

METRICS = ("val/loss", "val/pull", "val/push", "val/fake", "val/latent_norm", "pixel_mse")


def train_run(run_dir: Path, seed: int, max_steps: int, overrides: list[str]) -> dict[str, float]:
    """One training run in a subprocess (skipped when run_dir holds a completed one); its final val metrics."""
    summary = run_dir / "metrics.json"
    if not (summary.is_file() and json.loads(summary.read_text())["status"] == "completed"):
        command = [
            sys.executable, "-m", "encdec_pl.train", f"hydra.run.dir={run_dir}", f"seed={seed}",
            f"trainer.max_steps={max_steps}", f"trainer.val_check_interval={max_steps}", *overrides,
        ]  # fmt: skip
        log.info("training: %s", " ".join(command[2:]))
        result = subprocess.run(command, capture_output=True, text=True)
        (run_dir / "quality_cli_output.txt").write_text(result.stdout + result.stderr)
        if result.returncode != 0:
            raise EncDecError(f"training run failed: see {run_dir / 'quality_cli_output.txt'}")
    return json.loads(summary.read_text())["metrics"]


@torch.no_grad()
def pixel_mse(checkpoint: Path, data_root: str) -> float:
    """Mean squared pixel error of D(E(x)) over the validation split, in eval mode, fp32, on CPU."""
    model = EncDec.load_from_checkpoint(checkpoint, map_location="cpu")
    datamodule = MNISTDataModule(root=data_root, batch_size=500, device_resident=True, download=False)
    datamodule.setup()
    errors = [(model.reconstruct(x) - x).pow(2).mean(dim=(1, 2, 3)) for x, _ in datamodule.val_dataloader()]
    return float(torch.cat(errors).mean())


def summarise(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


@hydra.main(version_base="1.3", config_path=CONFIG_PACKAGE, config_name="bench_quality")
@user_errors
def main(cfg: DictConfig) -> None:
    out = start_run(cfg, seeded=False)  # each run has its seed (seeds)
    results: dict[str, dict[str, list[float]]] = {}
    for path, extra in cfg.paths_compared.items():
        for seed in cfg.seeds:
            run_dir = out / f"{path}_seed{seed}"
            run_dir.mkdir(parents=True, exist_ok=True)
            metrics = train_run(run_dir, seed, cfg.max_steps, [*cfg.train_overrides, *extra])
            metrics["pixel_mse"] = pixel_mse(run_dir / "checkpoints" / "last.ckpt", cfg.data_root)
            for name in METRICS:
                results.setdefault(path, {}).setdefault(name, []).append(metrics[name])
    table = Table(title=f"Quality after {cfg.max_steps} steps, seeds {list(cfg.seeds)}: mean ± std over seeds")
    table.add_column("metric")
    for path in results:
        table.add_column(path, justify="right")
    table.add_column("|difference| / spread", justify="right")
    verdicts = {}
    for name in METRICS:
        cells, means, stds = [], [], []
        for path in results:
            mean, std = summarise(results[path][name])
            cells.append(f"{mean:.4f} ± {std:.4f}")
            means.append(mean)
            stds.append(std)
        spread = max(stds)
        verdicts[name] = abs(means[0] - means[-1]) / spread if spread > 0 else float("inf")
        table.add_row(name, *cells, f"{verdicts[name]:.2f}")
    console = Console(width=max(Console().width, 110))
    console.print(table)
    console.print("a ratio <= 1: the paths differ by less than the seeds do (within run-to-run noise)")
    (out / "quality.json").write_text(json.dumps({"results": results, "ratios": verdicts}, indent=2) + "\n")
    console.print(f"written: {out / 'quality.json'}")


if __name__ == "__main__":
    run_cli(main)
