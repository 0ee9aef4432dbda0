"""Rules of a sweep job, applied by the task function (train.main) and by the launchers before launching."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from encdec_pl.errors import ConfigError


def require_one_device(trainer_cfg: DictConfig) -> None:
    """Sweep jobs train on one device each; several devices per run are for single runs (trainer=ddp).

    Lightning's DDP starts its extra processes by re-running the command line; in a multirun that
    command is the whole sweep (Lightning issue #11300, unfixed in Lightning 2.6), and on a Ray
    worker it is not even the training command. One device per job avoids DDP altogether.
    """
    devices, nodes = trainer_cfg.get("devices", 1), trainer_cfg.get("num_nodes", 1)
    one_device = devices in (1, "1") or (isinstance(devices, (list, tuple)) and len(devices) == 1)
    if not one_device or nodes != 1:
        raise ConfigError(
            f"sweep jobs train on one device each, but trainer.devices={devices} trainer.num_nodes={nodes}: "
            "drop trainer=ddp (or set trainer.devices=1) for -m; the launcher gives every job its own GPU. "
            "Multi-GPU training is for single runs: python -m encdec_pl.train trainer=ddp"
        )


def check_sweep(cfg: DictConfig) -> None:
    """What a launcher checks before starting any job, so a sweep fails once, not once per job.

    One device per job, and the evaluation classifier when the jobs score quality
    (callbacks=quality, as hparams_search=ede_optuna sets): without it every trial would fail.
    """
    require_one_device(cfg.trainer)
    quality = (cfg.get("callbacks") or {}).get("quality")
    if quality is not None:
        from encdec_pl.evaluation.classifier import require_classifier  # torch and Lightning: only when needed

        require_classifier(Path(quality.classifier_path), cfg.data.dataset, "every job (callbacks=quality)")


def optimized_metric_value(metrics: dict[str, float], name: str | None) -> float | None:
    """metrics[name] for a hyperparameter search (Optuna minimises or maximises it); None when no
    metric is chosen (`optimized_metric: null`, grid sweeps and single runs)."""
    if name is None:
        return None
    if name not in metrics:
        logged = ", ".join(sorted(metrics)) or "nothing"
        raise ConfigError(f"optimized_metric={name!r} was not logged by this run (it logged: {logged})")
    return metrics[name]
