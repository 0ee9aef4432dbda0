"""Hydra callback of every run (conf/hydra/default.yaml): failure records and pointers.

- After each job: a failed job records why in its folder (`error.txt`) for the sweep report;
  Hydra itself keeps only the exception, in memory, and the sweep goes on with the other jobs.
- At the start and the end of a sweep: where it writes and how to summarise it.

(Hydra turns an exception raised in a callback into a warning, so checks that must stop a
sweep live in the task function and the launchers: sweep/job.py.)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from encdec_pl.runtime.sweep.failures import record_failure

log = logging.getLogger(__name__)


def report_command(sweep_dir: str | Path) -> str:
    return f"python -m encdec_pl.report {sweep_dir}"


class SweepCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
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
