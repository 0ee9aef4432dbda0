"""The callback that watches the latent norm for its equilibrium (rule in encdec_pl.evaluation.equilibrium)."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L

from encdec_pl.evaluation.equilibrium import EquilibriumRule, EquilibriumTracker

log = logging.getLogger(__name__)


class EquilibriumDetector(L.Callback):
    """Watch the windowed latent norm during training; log the equilibrium step, optionally stop there.

    Reads `monitor` from the logged metrics at every logging step. When the rule is met it
    logs `equilibrium/step` (the first step of the calm stretch), `equilibrium/value` (`monitor`
    when the rule was met) and `equilibrium/reached`=1, and with `stop=True` ends training.
    At the first logging step of every fit it logs `equilibrium/reached` (0, or 1 with the step and
    value again after resuming a run that had reached it), so the last logged values - a W&B run's
    summary, metrics.json - always say whether the equilibrium was reached; a run that never
    reached it has `equilibrium/reached`=0 and no `equilibrium/step`.

    A model whose codes are scaled to a fixed size (EncDec's code_norm=rms) has a latent norm of 1 at every
    step, so there is no equilibrium to find: the detector says so once and logs nothing.
    """

    def __init__(
        self,
        monitor: str = "train/latent_norm_avg",
        window: int = 20,
        tolerance: float = 0.02,
        patience: int = 10,
        min_step: int = 0,
        stop: bool = False,
    ) -> None:
        self.monitor, self.stop = monitor, stop
        self.tracker = EquilibriumTracker(EquilibriumRule(window, tolerance, patience, min_step))
        self.equilibrium_value: float | None = None
        self._announced = False  # equilibrium/reached logged in this fit
        self._fixed_norm = False  # the model's latent norm is 1 by construction

    @property
    def equilibrium_step(self) -> int | None:
        return self.tracker.equilibrium_step

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._announced = False
        self._fixed_norm = pl_module.hparams.get("code_norm", "none") != "none"
        if self._fixed_norm and trainer.is_global_zero:
            log.info(
                f"Equilibrium detector off: model.code_norm={pl_module.hparams['code_norm']} holds the latent norm "
                "at 1 (every code at RMS 1), so it has no equilibrium to reach"
            )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self._fixed_norm:
            return
        if trainer.global_step % trainer.log_every_n_steps != 0 or self.monitor not in trainer.callback_metrics:
            return
        if not self._announced:
            self._announced = True
            self._log(pl_module)
        if self.tracker.equilibrium_step is not None:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if self.tracker.update(trainer.global_step, value):
            self.equilibrium_value = value
            self._log(pl_module)
            L.pytorch.utilities.rank_zero_info(
                f"Latent norm at equilibrium since step {self.tracker.equilibrium_step} ({self.monitor}={value:.4f})"
                + ("; stopping" if self.stop else "")
            )
            if self.stop:
                trainer.should_stop = True

    def _log(self, pl_module: L.LightningModule) -> None:
        step, value = self.tracker.equilibrium_step, self.equilibrium_value
        metrics = {"equilibrium/reached": float(step is not None)}
        if step is not None and value is not None:
            metrics |= {"equilibrium/step": float(step), "equilibrium/value": value}
        pl_module.log_dict(metrics, on_step=True, on_epoch=False)

    def state_dict(self) -> dict[str, Any]:
        return {
            "samples": list(self.tracker.samples),
            "calm_since": self.tracker.calm_since,
            "calm_count": self.tracker.calm_count,
            "equilibrium_step": self.tracker.equilibrium_step,
            "equilibrium_value": self.equilibrium_value,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.tracker.samples.extend(tuple(s) for s in state_dict["samples"])
        self.tracker.calm_since = state_dict["calm_since"]
        self.tracker.calm_count = state_dict["calm_count"]
        self.tracker.equilibrium_step = state_dict["equilibrium_step"]
        self.equilibrium_value = state_dict.get("equilibrium_value")  # absent in checkpoints before it was kept
