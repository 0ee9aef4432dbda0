"""The fast training step: bf16 autocast, channels-last, torch.compile, CUDA graphs; each a setting.

- Precision is Lightning's own switch, `trainer.precision`. Its default,
  `${precision_for:${trainer.accelerator}}`, is "bf16-mixed" where the device does
  bf16 arithmetic natively (recent GPUs; x86 CPUs with AVX-512 BF16 or AMX) and
  "32-true" elsewhere: emulated bf16 would be slower than fp32.
- channels-last and torch.compile are applied by the `FastStep` callback
  (callbacks.fast_step), to the model Lightning trains, before training starts.
  `compile_mode="reduce-overhead"` makes torch.compile replay the step as CUDA graphs,
  which removes the per-kernel launch cost that dominates these small networks at
  batch 128 on a GPU.

"auto" everywhere means "the fastest setting measured on that kind of device"
(docs/speed.md); each can be forced on or off for a comparison.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from encdec_pl.errors import first_line, require
from encdec_pl.runtime.devices import device_type_for

log = logging.getLogger(__name__)

# Measured choices for "auto", by device type and precision (docs/speed.md).
CHANNELS_LAST_BY_DEVICE = {"cuda": True, "cpu": True}
COMPILE_BY_DEVICE = {"cuda": True, "cpu": False}
COMPILE_MODE_BY_DEVICE = {"cuda": "reduce-overhead", "cpu": "default"}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX), read from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
    except OSError:  # not Linux: no way to tell cheaply, so assume not
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def native_bf16(device_type: str) -> bool:
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device_type == "cpu":
        return cpu_has_native_bf16()
    return False


def precision_for(accelerator: str) -> str:
    """trainer.precision's default: "bf16-mixed" where bf16 is native on the training device, else "32-true"."""
    return "bf16-mixed" if native_bf16(device_type_for(str(accelerator))) else "32-true"


def _choose(setting: bool | str, by_device: dict[str, Any], device_type: str, default: Any) -> Any:
    return by_device.get(device_type, default) if setting == "auto" else setting


class FastStep(L.Callback):
    """Make the training step fast: channels-last weights and activations, compiled loss computation.

    compile: True, False or "auto" (by device type, COMPILE_BY_DEVICE).
    compile_mode: a torch.compile mode or "auto" (COMPILE_MODE_BY_DEVICE: CUDA graphs on GPU).
    channels_last: True, False or "auto" (CHANNELS_LAST_BY_DEVICE).

    What is compiled is the model's `compute_losses` (networks and loss, forward and,
    through AOTAutograd, backward) for training only: validation and test run eagerly,
    so the compiler sees one kind of call (grad on, dropout on). The weights are not
    wrapped, so checkpoints keep their usual keys.
    """

    def __init__(self, compile: bool | str = "auto", compile_mode: str = "auto", channels_last: bool | str = "auto"):
        require(compile in (True, False, "auto"), "compile", compile, "true, false or auto")
        require(
            compile_mode == "auto" or compile_mode in COMPILE_MODES,
            "compile_mode",
            compile_mode,
            "auto or one of " + ", ".join(COMPILE_MODES),
        )
        require(channels_last in (True, False, "auto"), "channels_last", channels_last, "true, false or auto")
        self.compile, self.compile_mode, self.channels_last = compile, compile_mode, channels_last
        self.applied: dict[str, Any] = {}  # what setup() did, for logs, the benchmark and tests

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or getattr(pl_module, "_fast_step_applied", False):
            return  # a second fit of the same model: it is converted already
        device_type = trainer.strategy.root_device.type
        channels_last = _choose(self.channels_last, CHANNELS_LAST_BY_DEVICE, device_type, False)
        compile_ = _choose(self.compile, COMPILE_BY_DEVICE, device_type, False)
        mode = _choose(self.compile_mode, COMPILE_MODE_BY_DEVICE, device_type, "default")
        if channels_last:
            # Module.to keeps the memory format when Lightning moves the model to its device later.
            pl_module.to(memory_format=torch.channels_last)
        if compile_:
            pl_module.compute_losses = compile_for_training(pl_module.compute_losses, mode)
        pl_module._fast_step_applied = True
        self.applied = {"channels_last": channels_last, "compile": compile_, "compile_mode": mode if compile_ else None}
        log.info("Fast step on %s: %s", device_type, self.applied)


def compile_for_training(
    compute_losses: Callable[[torch.Tensor], dict[str, torch.Tensor]], mode: str, backend: str = "inductor"
) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """`compute_losses` compiled for training steps (grad enabled); eager when gradients are off."""
    compiled = [torch.compile(compute_losses, mode=mode, backend=backend)]  # emptied if compiling fails

    @functools.wraps(compute_losses)
    def losses(x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not torch.is_grad_enabled() or not compiled:
            return compute_losses(x)
        try:
            terms = compiled[0](x)
        except Exception as err:  # noqa: BLE001 - a compiler failure must not end the run: train eagerly
            compiled.clear()
            log.warning("torch.compile failed (%s); training continues eagerly", first_line(err)[:200])
            return compute_losses(x)
        # CUDA graphs (reduce-overhead) reuse their output memory at the next replay, but the
        # logged terms and the latent-norm window keep this step's values for later: clone
        # the scalars (five tiny copies) so nothing logged is overwritten.
        return {name: value.clone() for name, value in terms.items()}

    return losses
