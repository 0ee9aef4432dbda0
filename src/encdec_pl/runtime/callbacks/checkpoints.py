"""The callback that keeps `checkpoints/last.ckpt` current, and writing a checkpoint atomically."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from encdec_pl.errors import is_number, require
from encdec_pl.runtime.resume import LAST


def save_atomically(trainer: L.Trainer, path: str | Path, weights_only: bool = False) -> None:
    """trainer.save_checkpoint(path), written to `<path>.partial` first and then renamed over `path`.

    A kill (kill -9, an OOM kill, a node failure) during the write leaves the previous file whole:
    os.replace is atomic on POSIX filesystems, so `path` is always either the old or the new checkpoint.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    trainer.save_checkpoint(partial, weights_only)
    if trainer.is_global_zero:
        os.replace(partial, path)


def write_running_summary(path: Path, step: int, metrics: dict[str, Any]) -> None:
    """metrics.json of a run still training (status `running`), in runtime.cli.write_summary's schema.

    Written atomically, so that a reader (or a kill -9) never leaves half a file.
    """
    summary = {"command": "train", "status": "running", "global_step": step, "metrics": metrics}
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(partial, path)


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint (same arguments), quiet when the run ended before its first validation.

    Lightning warns "could not find the monitored key val/loss ... HINT: Did you call log(...)" at
    the end of any run shorter than one validation interval: nothing is wrong then, there is
    simply no validation score to keep a best checkpoint for (last.ckpt still holds the state).
    After a validation, a missing monitored key (a typo'd `monitor`) still gets Lightning's warning.
    """

    def _save_topk_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, Any]) -> None:
        validated = any(str(key).startswith("val/") for key in monitor_candidates)
        if self.monitor is not None and self.monitor not in monitor_candidates and not validated:
            return
        super()._save_topk_checkpoint(trainer, monitor_candidates)


class LastCheckpoint(ModelCheckpoint):
    """`checkpoints/last.ckpt`: the state after every validation, every `every_minutes` of training, and at the end.

    A ModelCheckpoint without a monitor that keeps one file, overwritten each time, atomically
    (`save_atomically`). Lightning 2.6's `save_last` on the monitored checkpoint writes last.ckpt
    only when the monitored value improved, so it lagged whenever val/loss did not improve (EDE's
    total loss need not fall as the latent norm settles); and a run that ends between validations
    (max_steps reached) would otherwise keep an older state. The time interval bounds what a
    kill -9 loses when validations are far apart (430 steps by default); each such save also
    writes metrics.json (status `running`). Non-finite states are never written: FaultHandler
    refuses them.

    Args:
        dirpath: the run's checkpoints folder.
        filename: `last`, the name ckpt_path=last looks for.
        every_minutes: also save after the training step that ends this many minutes (wall clock,
            training and validation) after the previous save; null: only at validations and the end.
        summary_path: where the running metrics.json goes (null: not written).
    """

    def __init__(
        self,
        dirpath: str | Path,
        filename: str = LAST,
        every_minutes: float | None = 2.0,
        summary_path: str | Path | None = None,
    ) -> None:
        require(
            every_minutes is None or (is_number(every_minutes) and every_minutes > 0),
            "every_minutes",
            every_minutes,
            "> 0, or null",
        )
        super().__init__(dirpath=dirpath, filename=filename, monitor=None, save_top_k=1, enable_version_counter=False)
        self.every_seconds = None if every_minutes is None else 60.0 * every_minutes
        self.summary_path = Path(summary_path) if summary_path else None
        self._last_save_time = time.monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_save_time = time.monotonic()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        due = self.every_seconds is not None and time.monotonic() - self._last_save_time >= self.every_seconds
        if due and not self._should_skip_saving_checkpoint(trainer):
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))
            if self.summary_path is not None and trainer.is_global_zero:
                metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
                write_running_summary(self.summary_path, trainer.global_step, metrics)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer):  # skips when this step is saved already
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        # ModelCheckpoint's bookkeeping (the step saved, the loggers told), around an atomic write.
        partial = filepath + ".partial"
        super()._save_checkpoint(trainer, partial)
        if trainer.is_global_zero:
            os.replace(partial, filepath)
        self._last_checkpoint_saved = filepath
        self._last_save_time = time.monotonic()
