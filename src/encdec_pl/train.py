"""Train a model: `python -m encdec_pl.train [group=option ...] [key=value ...]`.

Composes conf/train.yaml with the command-line overrides, builds the data, the
model, the loggers and the callbacks, and runs a Lightning Trainer. Everything a
run writes lands in its run folder (outputs/train/runs/<date>_<time>/, or
wherever hydra.run.dir points): checkpoints/, images/, wandb/ (or csv/,
tensorboard/), config.yaml (resolved), config_tree.log and train.log.
"""

from __future__ import annotations

import functools
import json
import logging
import shlex
from pathlib import Path

import hydra
import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from encdec_pl.models.checkpoints import check_checkpoint_fits, read_checkpoint
from encdec_pl.runtime.callbacks.faults import run_status
from encdec_pl.runtime.cli import prepare_run, record_run, run_cli, user_errors, write_summary
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
from encdec_pl.runtime.resume import (
    LAST,
    check_resume_settings,
    newer_runs_without_checkpoint,
    resolve_ckpt_path,
    resume_command,
    run_is_complete,
    wandb_command,
)
from encdec_pl.runtime.sweep.job import optimized_metric_value, require_one_device
from encdec_pl.runtime.sweep.labels import in_multirun
from hydra_plugins.encdec_pl_launchers.launchers import LAUNCHERS

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train as `cfg` says and return the final metrics (what Hydra sweepers read)."""
    # Everything is built and checked before anything is printed or written: a rejected command
    # prints one line, and its run folder (holding only Hydra's files) is removed by run_cli.
    check_run_settings(cfg)
    prepare_run(cfg)  # the seed (seed=null draws one), before the model's weights are drawn
    output_dir = Path(cfg.paths.output_dir)
    datamodule = construct(cfg, "data")
    # A table declares its encoding (model_inputs), from which the tabular models are built;
    # other data declare a data_spec (build_model).
    declared = datamodule.model_inputs() if hasattr(datamodule, "model_inputs") else None
    model = construct(cfg, "model", "loss", declared=declared) if declared else build_model(cfg, datamodule)
    callbacks = build_callbacks(cfg.get("callbacks"))
    if cfg.trainer.get("enable_checkpointing") is False:
        callbacks = without_checkpoints(callbacks)
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path, output_dir, Path(cfg.paths.runs_dir))
    checkpoint = read_checkpoint(ckpt_path) if ckpt_path else {}
    if ckpt_path:
        groups = ("model", "loss", "network") if declared else ("model", "loss")
        setting_name = functools.partial(config_key, cfg, groups=groups)
        check_checkpoint_fits(ckpt_path, checkpoint, model, setting_name)
        by_last = cfg.ckpt_path == LAST and ckpt_path.parent.parent != output_dir
        newer = newer_runs_without_checkpoint(Path(cfg.paths.runs_dir), ckpt_path, output_dir) if by_last else []
        check_resume_settings(ckpt_path, checkpoint, dict(model.hparams), setting_name, by_last, newer)
        complete = run_is_complete(checkpoint, cfg.trainer.get("max_steps"), cfg.trainer.get("max_epochs"))
        if complete:
            log.info(
                "The run in %s is complete: %s. Nothing to train (no new run folder); to train it further, "
                "raise trainer.max_steps or trainer.max_epochs",
                ckpt_path,
                complete,
            )
            return finished_metrics(ckpt_path)
    datamodule.prepare_data()  # missing or damaged files stop the run here, before anything starts
    loggers = build_loggers(cfg.get("logger"), wandb_run_id=checkpoint.get("wandb_run_id"))  # W&B starts lazily
    trainer = build_trainer(cfg, callbacks, logger=loggers or False)
    record_run(cfg)  # config.yaml and the config tree, now that the command is known to be valid
    log_config(loggers, cfg)

    log.info("Training %s; run folder: %s", type(model).__name__, output_dir)
    status = "failed"
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        status = "interrupted" if trainer.interrupted else "completed"
        if ckpt_path and status == "completed" and trainer.global_step == int(checkpoint.get("global_step", -1)):
            # Lightning 2.6's fit loop, resumed from a checkpoint written at an epoch's end, counts that
            # epoch twice when trainer.max_steps is also set, so a raised max_epochs can end at once.
            log.warning(
                "The resumed run trained no step (still step %d). With trainer.max_steps set, raising "
                "trainer.max_epochs alone does not lengthen a run that stopped at an epoch's end: add "
                "trainer.max_steps=-1, or raise trainer.max_steps instead",
                trainer.global_step,
            )
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


def finished_metrics(ckpt_path: Path) -> dict[str, float]:
    """The final metrics of the run that wrote `ckpt_path` (its metrics.json), for a sweeper; {} if unknown."""
    summary = ckpt_path.parent.parent / "metrics.json"
    try:
        return {k: float(v) for k, v in json.loads(summary.read_text()).get("metrics", {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def without_checkpoints(callbacks: list[L.Callback]) -> list[L.Callback]:
    """The callbacks without the checkpoint writers: trainer.enable_checkpointing=false turns them all off."""
    kept = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]
    if len(kept) < len(callbacks):
        log.info("trainer.enable_checkpointing=false: this run writes no checkpoints (not even on Ctrl-C)")
    return kept


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
            lines.append(f"  upload it with:  {shlex.join([*wandb_command(), 'sync', str(run_dir)])}")
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
