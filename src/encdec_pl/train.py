"""Train a model: `python -m encdec_pl.train [group=option ...] [key=value ...]`.

Composes conf/train.yaml with the command-line overrides, builds the data, the
model, the loggers and the callbacks, and runs a Lightning Trainer. Everything a
run writes lands in its run folder (outputs/train/runs/<date>_<time>/, or
wherever hydra.run.dir points): checkpoints/, images/, wandb/ (or csv/,
tensorboard/), config.yaml (resolved), config_tree.log and train.log.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from encdec_pl.models.checkpoints import check_checkpoint_fits, read_checkpoint
from encdec_pl.runtime.callbacks.faults import run_status
from encdec_pl.runtime.cli import run_cli, user_errors
from encdec_pl.runtime.config import (
    CONFIG_PACKAGE,
    build_callbacks,
    check_run_settings,
    config_key,
    construct,
    instantiate_setting,
    print_config_tree,
    register_launchers,
    register_resolvers,
)
from encdec_pl.runtime.loggers import build_loggers, finish_wandb, log_config, wandb_run_dir
from encdec_pl.runtime.resume import resolve_ckpt_path, resume_command
from encdec_pl.runtime.sweep.job import optimized_metric_value, require_one_device
from encdec_pl.runtime.sweep.labels import in_multirun

log = logging.getLogger(__name__)
register_resolvers()
register_launchers()

# Two messages that every run would print and nobody can act on: Lightning's advert for its
# cloud logger at each Trainer start, and a deprecation inside Lightning's own use of torch's pytree.
_lightning_info = logging.getLogger("lightning.pytorch.utilities.rank_zero")
_lightning_info.addFilter(lambda record: "litlogger" not in record.getMessage())
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def train(cfg: DictConfig) -> dict[str, float]:
    """Train as `cfg` says and return the final metrics (what Hydra sweepers read)."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if cfg.extras.ignore_warnings:
        warnings.filterwarnings("ignore")

    check_run_settings(cfg)
    # seed=0 is a seed like any other; seed=null draws one, recorded in config.yaml.
    seed = L.seed_everything(cfg.seed, workers=True, verbose=False)
    with open_dict(cfg):
        cfg.seed = seed
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
    if cfg.extras.print_config:
        print_config_tree(cfg, save_to=output_dir / "config_tree.log")

    datamodule = construct(cfg, "data")
    model = construct(cfg, "model", "loss")
    callbacks = build_callbacks(cfg.get("callbacks")) + ([construct(cfg, "speed")] if cfg.get("speed") else [])
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path, output_dir, Path(cfg.paths.runs_dir))
    checkpoint = read_checkpoint(ckpt_path) if ckpt_path else {}
    if ckpt_path:
        check_checkpoint_fits(ckpt_path, checkpoint, model, lambda name: config_key(cfg, name, ("model", "loss")))
    resumed_run_id = checkpoint.get("wandb_run_id")
    loggers = build_loggers(cfg.get("logger"), wandb_run_id=resumed_run_id)  # W&B starts lazily, below
    datamodule.prepare_data()  # missing or damaged files stop the run here, before anything starts
    trainer: L.Trainer = instantiate_setting(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
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
        write_run_summary(output_dir / "metrics.json", status, trainer.global_step, metrics)
        if trainer.global_step > 0:
            report_outputs(trainer, output_dir)
        finish_wandb()
    return metrics


def write_run_summary(path: Path, status: str, step: int, metrics: dict[str, float]) -> None:
    """metrics.json: how the run ended and its last logged metrics, for sweep reports and scripts."""
    path.write_text(json.dumps({"status": status, "global_step": step, "metrics": metrics}, indent=2) + "\n")


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
    run_cli(main)
