"""The callback that keeps `checkpoints/last.ckpt` current."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from encdec_pl.runtime.resume import LAST


class LastCheckpoint(ModelCheckpoint):
    """`checkpoints/last.ckpt`: the state after every validation and at the end of training.

    A ModelCheckpoint without a monitor that keeps one file, overwritten each time. Lightning
    2.6's `save_last` on the monitored checkpoint writes last.ckpt only when the monitored value
    improved, so it lagged whenever val/loss did not improve (EDE's total loss need not fall as
    the latent norm settles); and a run that ends between validations (max_steps reached) would
    otherwise keep an older state. Non-finite states are never written: FaultHandler refuses them.
    """

    def __init__(self, dirpath: str | Path, filename: str = LAST) -> None:
        super().__init__(dirpath=dirpath, filename=filename, monitor=None, save_top_k=1, enable_version_counter=False)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer):  # skips when this step is saved already
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))
