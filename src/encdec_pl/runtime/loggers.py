"""Loggers from the `logger` config group, and W&B's online/offline choice.

W&B needs no account here: with no credentials the run is written offline into
the run folder and can be uploaded later with `wandb sync <folder>`.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from encdec_pl.errors import ConfigError
from encdec_pl.runtime.config import instantiate_setting
from encdec_pl.runtime.sweep.labels import job_overrides

WANDB_MODES = ("auto", "online", "offline", "disabled")


def has_wandb_credentials() -> bool:
    """True when W&B could log in without asking: WANDB_API_KEY, or a netrc entry for its host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = os.environ.get("NETRC", str(Path.home() / ".netrc"))
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, PermissionError):
        return False


def resolve_wandb_mode(mode: str) -> str:
    """`auto` becomes WANDB_MODE if set, else online with credentials and offline without."""
    if mode != "auto":
        return mode
    return os.environ.get("WANDB_MODE") or ("online" if has_wandb_credentials() else "offline")


def build_loggers(logger_cfg: DictConfig | None, wandb_run_id: str | None = None) -> list[Logger]:
    """Instantiate every logger of the `logger` group.

    `wandb_run_id` (read from the checkpoint being resumed) continues that W&B run,
    unless the config names an id of its own.
    """
    loggers: list[Logger] = []
    for name, conf in (logger_cfg or {}).items():
        overrides: dict[str, Any] = {}
        if OmegaConf.is_dict(conf) and str(conf.get("_target_", "")).endswith("WandbLogger"):
            if conf.get("mode", "auto") not in WANDB_MODES:
                raise ConfigError(f"logger.wandb.mode={conf.mode!r} is invalid: must be one of {list(WANDB_MODES)}")
            overrides["mode"] = resolve_wandb_mode(conf.get("mode", "auto"))
            if conf.get("id") is None and wandb_run_id:
                overrides["id"] = wandb_run_id
            Path(conf.save_dir).mkdir(parents=True, exist_ok=True)  # wandb falls back to /tmp otherwise
        loggers.append(instantiate_setting(conf, f"logger.{name}", **overrides))
    return loggers


def log_config(loggers: list[Logger], cfg: DictConfig) -> None:
    """Send the whole resolved run config (not only the model's arguments) to every logger.

    Nested as composed (W&B shows `loss.fake_weight`, and groups and filters runs by it), plus
    `overrides`: the run's command-line overrides that describe the experiment (`key=value`, as typed).
    """
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    config["overrides"] = job_overrides()
    for logger in loggers:
        logger.log_hyperparams(config)


def wandb_run_dir(loggers: list[Logger]) -> tuple[Path, str] | None:
    """(folder of the W&B run, its mode) when a W&B logger took part, else None."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            run = logger.experiment
            return Path(run.dir).parent, run.settings.mode
    return None


def finish_wandb() -> None:
    """Close the W&B run so its files are complete and the next run in this process starts clean."""
    import wandb

    if wandb.run is not None:
        wandb.finish()
