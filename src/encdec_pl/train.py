"""Train a model: `python -m encdec_pl.train [group=option ...] [key=value ...]`.

Composes conf/train.yaml with the command-line overrides, builds the data, the
model, the loggers and the callbacks, and runs a Lightning Trainer. Everything a
run writes lands in its run folder (outputs/train/runs/<date>_<time>/, or
wherever hydra.run.dir points): checkpoints/, images/, wandb/ (or csv/,
tensorboard/), config.yaml (resolved), config_tree.log and train.log.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig

from encdec_pl.models.checkpoints import check_checkpoint_fits, read_checkpoint
from encdec_pl.runtime.callbacks.faults import run_status
from encdec_pl.runtime.cli import run_cli, start_run, user_errors, write_summary
from encdec_pl.runtime.config import (
    CONFIG_PACKAGE,
    build_callbacks,
    build_model,
    build_trainer,
    check_run_settings,
    config_key,
    construct,
)
from encdec_pl.runtime.loggers import build_loggers, finish_wandb, log_config, wandb_run_dir
from encdec_pl.runtime.resume import resolve_ckpt_path, resume_command
from encdec_pl.runtime.sweep.job import optimized_metric_value, require_one_device
from encdec_pl.runtime.sweep.labels import in_multirun
from hydra_plugins.encdec_pl_launchers.launchers import LAUNCHERS

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train as `cfg` says and return the final metrics (what Hydra sweepers read)."""
    check_run_settings(cfg)
    output_dir = start_run(cfg)
    datamodule = construct(cfg, "data")
    # A table declares its encoding (model_inputs), from which the tabular models are built;
    # other data declare a data_spec (build_model).
    declared = datamodule.model_inputs() if hasattr(datamodule, "model_inputs") else None
    model = construct(cfg, "model", "loss", declared=declared) if declared else build_model(cfg, datamodule)
    callbacks = build_callbacks(cfg.get("callbacks"))
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path, output_dir, Path(cfg.paths.runs_dir))
    checkpoint = read_checkpoint(ckpt_path) if ckpt_path else {}
    if ckpt_path:
        groups = ("model", "loss", "network") if declared else ("model", "loss")
        check_checkpoint_fits(ckpt_path, checkpoint, model, lambda name: config_key(cfg, name, groups))
    resumed_run_id = checkpoint.get("wandb_run_id")
    loggers = build_loggers(cfg.get("logger"), wandb_run_id=resumed_run_id)  # W&B starts lazily, below
    datamodule.prepare_data()  # missing or damaged files stop the run here, before anything starts
    trainer = build_trainer(cfg, callbacks, logger=loggers or False)
    log_config(loggers, cfg)

    log.info("Training %s; run folder: %s", type(model).__name__, output_dir)
    status = "failed"
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        status = "interrupted" if trainer.interrupted else "completed"
    except BaseException as err:
        status = run_status(err)  # interrupted (Ctrl-C, SIGTERM), diverged (non-finite loss) or failed
        raise
    finally:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        write_summary(output_dir, "train", status, trainer.global_step, metrics)
        if trainer.global_step > 0:
            report_outputs(trainer, output_dir)
        finish_wandb()
    return metrics


def report_outputs(trainer: L.Trainer, output_dir: Path) -> None:
    """Tell the user where everything went, and how to resume or upload."""
    lines = [f"Run folder: {output_dir}"]
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None:
        last = Path(checkpoint.dirpath or "") / "last.ckpt"
        if last.is_file():
            lines.append(f"  last checkpoint: {last}")
            lines.append(f"  resume with:     {resume_command(last)}")
        if checkpoint.best_model_path and checkpoint.best_model_score is not None:
            score = f"{checkpoint.monitor}={float(checkpoint.best_model_score):.4f}"
            lines.append(f"  best checkpoint: {checkpoint.best_model_path} ({score})")
    images = sorted((output_dir / "images").rglob("*.png")) if (output_dir / "images").is_dir() else []
    if images:
        lines.append(f"  images:          {output_dir / 'images'} ({len(images)} PNG files)")
    lines.append(f"  log and config:  {output_dir / 'train.log'}, {output_dir / 'config.yaml'}")
    wandb_run = wandb_run_dir(trainer.loggers)
    if wandb_run is not None:
        run_dir, mode = wandb_run
        lines.append(f"  W&B run ({mode}): {run_dir}")
        if mode == "offline":
            lines.append(f"  upload it with:  wandb sync {run_dir}")
    log.info("\n".join(lines))


@hydra.main(version_base="1.3", config_path=CONFIG_PACKAGE, config_name="train")
@user_errors
def main(cfg: DictConfig) -> float | None:
    """Train; return `optimized_metric`'s final value, which a hyperparameter search optimises."""
    if in_multirun():
        require_one_device(cfg.trainer)
    return optimized_metric_value(train(cfg), cfg.get("optimized_metric"))


if __name__ == "__main__":
    run_cli(main, launchers=LAUNCHERS)
