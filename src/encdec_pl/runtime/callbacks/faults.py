"""What a run does when something goes wrong in the middle of training.

`FaultHandler` is a Lightning callback (`callbacks.fault_handler`, part of callbacks=default):

- **Non-finite loss.** Every training step, the handler keeps references to the loss terms
  that `training_step` returns (no kernel, no host-device sync). They are read on the host every
  `trainer.log_every_n_steps` steps (at most every 100), before any checkpoint is written,
  before each validation and at the end of training. The first step with a NaN or infinite
  term stops the run with `NonFiniteLoss`, naming that step and the terms; since no
  checkpoint is written after a bad step, `checkpoints/last.ckpt` stays the last good state.
  The trade-off: a fault is noticed up to `log_every_n_steps - 1` steps late (those steps are
  wasted, never saved), in exchange for not stalling the GPU queue at every step.
- **SIGINT (Ctrl-C) and SIGTERM (a scheduler's preemption).** The first signal only sets a
  flag; the step in progress finishes, then `checkpoints/last.ckpt` is written (atomically).
  The run stops just after Lightning has sent that step's metrics to the loggers (at the start
  of the next step, or of a validation or the end of the epoch, whichever comes first), so the
  logged history has no gap; the loggers are flushed, the path and the resume command are
  logged, and the process exits with 128 + the signal number (130, 143). A signal during
  validation takes effect at the end of the next training step. A second Ctrl-C stops at once,
  without a new checkpoint (Lightning's own handling). With trainer.enable_checkpointing=false
  nothing is saved: the run only stops at the step's end.
- **Lower learning rate on resume.** `resume_lr_factor` multiplies the learning rate restored
  from the checkpoint (the optimizer state carries its own, so `model.lr` does not apply to
  a resumed run): the remedy the non-finite-loss message suggests.
- **simulate_nan_at_step** (tests only): the encoder's output becomes NaN at that step, the
  fault the non-finite-loss handling exists for.

Signal handlers are installed in `setup`, before Lightning forks any DataLoader worker, so
the workers inherit them and survive a Ctrl-C sent to the whole terminal process group
(with Python's default handler they would exit, and the run would die at the next batch).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch

from encdec_pl.errors import EncDecError, is_number, is_positive_int, require
from encdec_pl.runtime.callbacks.checkpoints import save_atomically
from encdec_pl.runtime.resume import resume_command

log = logging.getLogger(__name__)

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
MAX_CHECK_INTERVAL = 100  # steps; bounds the device memory held by unchecked steps


class NonFiniteLoss(EncDecError):
    """A loss term (or the weights) became NaN or infinite; the run stopped without saving the bad state."""

    run_status = "diverged"


class RunInterrupted(SystemExit):
    """A signal stopped the run after its checkpoint was written; exits with 128 + the signal number.

    A SystemExit rather than an error: in a sweep, Ctrl-C or a preemption stops every job,
    not only the one in progress.
    """

    run_status = "interrupted"

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)


def run_status(err: BaseException) -> str:
    """What metrics.json records for a run that ended with `err`."""
    if hasattr(err, "run_status"):
        return err.run_status
    # Lightning turns a KeyboardInterrupt into sys.exit(1); its SIGTERMException is a SystemExit too.
    return "interrupted" if isinstance(err, (KeyboardInterrupt, SystemExit)) else "failed"


class NonFiniteWatch:
    """Holds the loss terms of the steps not checked yet, on their device; finds the first non-finite one.

    Recording keeps references only (no kernel, no sync); `first_non_finite` reads every held
    value with one concatenation and one device-to-host copy.
    """

    def __init__(self) -> None:
        self.unchecked: list[tuple[int, dict[str, torch.Tensor]]] = []

    def record(self, step: int, terms: Mapping[str, Any]) -> None:
        tensors = {name: value for name, value in terms.items() if isinstance(value, torch.Tensor)}
        if tensors:
            self.unchecked.append((step, tensors))

    def first_non_finite(self) -> tuple[int, list[str]] | None:
        """(step, names of the non-finite terms) of the first bad step recorded, or None; forgets the steps."""
        if not self.unchecked:
            return None
        values = [value.detach().reshape(-1).float() for _, terms in self.unchecked for value in terms.values()]
        finite = torch.cat(values).isfinite().tolist()
        unchecked, self.unchecked = self.unchecked, []
        start = 0
        for step, terms in unchecked:
            bad = []
            for name, value in terms.items():
                if not all(finite[start : start + value.numel()]):
                    bad.append(name)
                start += value.numel()
            if bad:
                return step, bad
        return None


class FaultHandler(L.Callback):
    """Stop cleanly on a non-finite loss or a signal, keeping a checkpoint to resume from.

    Args:
        dirpath: where `last.ckpt` is written on a signal (the run's checkpoints folder).
        save_on_signal: on SIGINT/SIGTERM, write a checkpoint before exiting.
        resume_lr_factor: multiply the learning rate restored from a checkpoint by this (0, 1].
        simulate_nan_at_step: tests only: make the encoder's output NaN at this step.
    """

    def __init__(
        self,
        dirpath: str = "checkpoints",
        save_on_signal: bool = True,
        resume_lr_factor: float = 1.0,
        simulate_nan_at_step: int | None = None,
    ) -> None:
        require(isinstance(save_on_signal, bool), "save_on_signal", save_on_signal, "true or false")
        require(
            is_number(resume_lr_factor) and 0 < resume_lr_factor <= 1, "resume_lr_factor", resume_lr_factor, "in (0, 1]"
        )
        require(
            simulate_nan_at_step is None or is_positive_int(simulate_nan_at_step),
            "simulate_nan_at_step",
            simulate_nan_at_step,
            "a positive integer or null",
        )
        self.dirpath = Path(dirpath)
        self.save_on_signal = save_on_signal
        self.resume_lr_factor = resume_lr_factor
        self.simulate_nan_at_step = simulate_nan_at_step
        self.watch = NonFiniteWatch()
        self.received: signal.Signals | None = None  # the first signal received during this fit
        self.saved_on_signal: Path | None | bool = False  # False: not stopping; else the checkpoint (None: none)
        self.previous_handlers: dict[int, Any] = {}
        self.active = False  # handlers installed, fit in progress
        self.main_pid = os.getpid()
        self.start_step = 0
        self._nan_hook: Any = None

    # ----- signals ----------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or not self.save_on_signal or threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        self.main_pid, self.received, self.active, self.saved_on_signal = os.getpid(), None, True, False
        self.previous_handlers = {signum: signal.getsignal(signum) for signum in HANDLED_SIGNALS}
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _take_over_sigterm(self) -> None:
        # Lightning installs its own SIGTERM handler after `setup`; it would stop in the middle of
        # a validation, with exit status 0. This one stops at a step boundary, with 143.
        if self.active:
            signal.signal(signal.SIGTERM, self._on_signal)

    def _restore_handlers(self) -> None:
        if self.active:
            self.active = False
            for signum, handler in self.previous_handlers.items():
                if handler is not None:  # None: not set from Python; nothing to put back
                    signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self.main_pid:
            return  # a DataLoader worker, forked with this handler: the main process decides
        if not self.active:
            # Lightning's teardown after a failed fit may put this handler back: act as before the fit.
            _forward(signum, frame, self.previous_handlers.get(signum))
            return
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.received = signal.Signals(signum)
        # os.write, not print: a signal handler may interrupt a print to the same stream.
        os.write(
            2,
            f"\nReceived {self.received.name}: saving a checkpoint at the end of this training step, "
            "then stopping (Ctrl-C again stops at once, without it).\n".encode(),
        )

    def _stop_requested(self, trainer: L.Trainer) -> bool:
        if trainer.world_size == 1:
            return self.received is not None
        # Every rank must stop at the same step: agree at logging steps (a collective, like logging).
        if trainer.global_step % max(trainer.log_every_n_steps, 1) != 0:
            return False
        return trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)

    def _save_on_signal(self, trainer: L.Trainer) -> None:
        """Write the checkpoint of this step; the run stops once the step's metrics are logged (_stop_if_saved)."""
        self._raise_if_non_finite(trainer)  # never save a bad state
        path = None
        if trainer.checkpoint_callback is not None:  # None: trainer.enable_checkpointing=false
            path = self.dirpath / "last.ckpt"
            save_atomically(trainer, path)
        self.saved_on_signal = path

    def _stop_if_saved(self, trainer: L.Trainer) -> None:
        if self.saved_on_signal is False:
            return
        signum = self.received or signal.SIGTERM  # None: the signal reached another rank
        path = self.saved_on_signal
        for logger in trainer.loggers:  # the last step's metrics reach the files before the exit
            logger.save()
        self._restore_handlers()
        if trainer.is_global_zero:
            name, step = signum.name, trainer.global_step
            if path is None:
                log.warning("Stopped by %s at step %d; no checkpoint (trainer.enable_checkpointing=false)", name, step)
            else:
                log.warning(
                    "Stopped by %s at step %d; checkpoint: %s\n  resume with: %s",
                    name,
                    step,
                    path,
                    resume_command(path),
                )
        raise RunInterrupted(signum)

    # ----- training hooks ---------------------------------------------------------------------
    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._take_over_sigterm()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._take_over_sigterm()
        self.start_step = trainer.global_step
        if trainer.ckpt_path and self.resume_lr_factor != 1.0:
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    log.info(
                        "Resuming with learning rate %g (%g from the checkpoint times resume_lr_factor=%g)",
                        group["lr"] * self.resume_lr_factor,
                        group["lr"],
                        self.resume_lr_factor,
                    )
                    group["lr"] *= self.resume_lr_factor
                    if "initial_lr" in group:  # the base rate a schedule (lr_schedule=cosine) scales each step
                        group["initial_lr"] *= self.resume_lr_factor
        if self.save_on_signal:
            log.info("Ctrl-C (or SIGTERM) saves a checkpoint at the end of the current step and stops")

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._stop_if_saved(trainer)
        if self.received is not None and trainer.global_step == self.start_step and trainer.world_size == 1:
            log.warning("Stopped by %s before the first training step: nothing new to save", self.received.name)
            self._restore_handlers()
            raise RunInterrupted(self.received)
        if self.simulate_nan_at_step == trainer.global_step + 1:
            self._nan_hook = pl_module.encoder.register_forward_hook(lambda module, args, out: out * float("nan"))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._nan_hook is not None:
            self._nan_hook.remove()
            self._nan_hook = None
        # training_step's outputs: {"loss": ...} or, from BaseAutoencoder, every term (detached).
        self.watch.record(trainer.global_step, outputs if isinstance(outputs, Mapping) else {"loss": outputs})
        if trainer.global_step % min(max(trainer.log_every_n_steps, 1), MAX_CHECK_INTERVAL) == 0:
            self._raise_if_non_finite(trainer)
        if self.save_on_signal and self.saved_on_signal is False and self._stop_requested(trainer):
            self._save_on_signal(trainer)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._stop_if_saved(trainer)
            self._raise_if_non_finite(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stop_if_saved(trainer)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        # Raising here stops the file from being written. The weights are checked too: a step whose
        # loss was finite can still leave them non-finite (e.g. model.lr=inf), seen only at the next step.
        self._raise_if_non_finite(trainer)
        weights = checkpoint.get("state_dict", {})
        finite = torch.stack([torch.isfinite(t).all() for t in weights.values()]).tolist() if weights else []
        bad = [name for name, ok in zip(weights, finite, strict=True) if not ok]
        if bad:
            raise NonFiniteLoss(
                f"non-finite weights after step {trainer.global_step} ({', '.join(bad[:3])}"
                f"{f' and {len(bad) - 3} more' if len(bad) > 3 else ''}); {self._advice()}"
            )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._raise_if_non_finite(trainer)
        self._stop_if_saved(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_handlers()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore_handlers()

    # ----- non-finite loss --------------------------------------------------------------------
    def _raise_if_non_finite(self, trainer: L.Trainer) -> None:
        found = self.watch.first_non_finite()
        if trainer.world_size > 1:
            # A NaN on one process reaches the others' weights a step later: every rank stops together.
            if not trainer.strategy.reduce_boolean_decision(found is not None, all=False):
                return
            found = found or (trainer.global_step, ["loss (on another process)"])
        if found is None:
            return
        step, terms = found
        raise NonFiniteLoss(
            f"non-finite loss at step {step}: {', '.join(terms)} became NaN or infinite; {self._advice()}"
        )

    def _advice(self) -> str:
        last = self.dirpath / "last.ckpt"
        if not last.is_file():
            return "no checkpoint was written before it; start again with a lower model.lr"
        kept = torch.load(last, map_location="cpu", weights_only=True).get("global_step", "?")
        return (
            f"the last good checkpoint, {last} (step {kept}), was kept; resume from it with a lower learning "
            f"rate: {resume_command(last, 'callbacks.fault_handler.resume_lr_factor=0.5')}"
        )


def _forward(signum: int, frame: FrameType | None, handler: Any) -> None:
    """Do what `handler` (a previous signal disposition) would have done."""
    if callable(handler):
        handler(signum, frame)
    elif handler == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
