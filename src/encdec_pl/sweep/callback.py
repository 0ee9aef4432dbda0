"""Hydra callback of every run (conf/hydra/default.yaml): sweep checks, failure records, pointers.

- Before a sweep starts: its jobs must train on one device each (see `require_one_device`).
- After each job: a failed job records why in its folder (`error.txt`) for the sweep report;
  Hydra itself keeps only the exception, in memory, and the sweep goes on with the other jobs.
- At the start and the end of a sweep: where it writes and how to summarise it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from encdec_pl.errors import ConfigError
from encdec_pl.sweep.failures import record_failure

log = logging.getLogger(__name__)


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


def report_command(sweep_dir: str | Path) -> str:
    return f"python -m encdec_pl.report {sweep_dir}"


class SweepCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        require_one_device(config.trainer)
        log.info(
            "Sweep folder: %s (summary afterwards: %s)", config.hydra.sweep.dir, report_command(config.hydra.sweep.dir)
        )

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status == JobStatus.FAILED:
            # `return_value` would re-raise; the exception itself is what the record needs.
            path = record_failure(Path(config.hydra.runtime.output_dir), job_return._return_value)
            log.error("Job failed; why: %s", path)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        log.info(
            "Sweep finished: %s\n  summarise it with: %s",
            config.hydra.sweep.dir,
            report_command(config.hydra.sweep.dir),
        )
