"""The fast step: bf16 losses agree with fp32, its switches compose and apply, no host syncs per step."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from omegaconf import DictConfig
from torch.utils._python_dispatch import TorchDispatchMode

from encdec_pl import EncDec
from encdec_pl.data import MNISTDataModule
from encdec_pl.errors import ConfigError
from encdec_pl.runtime.callbacks.speed import FastStep, compile_for_training, cpu_has_native_bf16, precision_for
from encdec_pl.runtime.config import construct

from .conftest import compose_config


def training_step(
    model: EncDec, x: torch.Tensor, precision: str, device: str
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One RMSprop step as Lightning runs it (its own autocast context); the loss terms and the gradient."""
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    context = MixedPrecision(precision, device).forward_context() if precision == "bf16-mixed" else torch.enable_grad()
    with context:
        terms = model.compute_losses(x)
    optimizer.zero_grad()
    terms["loss"].backward()
    gradient = torch.cat([p.grad.flatten() for p in model.parameters()])
    optimizer.step()
    return {k: v.detach() for k, v in terms.items()}, gradient


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_fast_step_and_fp32_step_agree_within_bf16_tolerance(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    torch.manual_seed(0)
    fp32 = EncDec(dropout=0.0).to(device)  # no dropout: both steps see the same network
    fast = copy.deepcopy(fp32).to(memory_format=torch.channels_last)
    x = torch.rand(128, 1, 28, 28, device=device)
    terms_fp32, grad_fp32 = training_step(fp32, x, "32-true", device)
    terms_fast, grad_fast = training_step(fast, x, "bf16-mixed", device)
    for name in ("loss", "pull", "push", "fake", "latent_norm"):
        # bf16 keeps 8 significant bits (rounding 2^-9 = 0.2% per operation); measured: <= 0.4% apart
        assert float(terms_fast[name]) == pytest.approx(float(terms_fp32[name]), rel=0.01, abs=1e-4), name
    # the gradients point the same way (measured: cosine 0.998 on this CPU)
    assert torch.nn.functional.cosine_similarity(grad_fast, grad_fp32, dim=0) > 0.99


def test_compiled_losses_match_eager_and_are_safe_to_keep() -> None:
    torch.manual_seed(0)
    model = EncDec(dropout=0.0)
    x = torch.rand(16, 1, 28, 28)
    losses = compile_for_training(model.compute_losses, mode="default", backend="eager")
    compiled, eager = losses(x), model.compute_losses(x)
    assert compiled.keys() == eager.keys()
    for name in eager:
        assert torch.allclose(compiled[name], eager[name])
    compiled["loss"].backward()  # gradients flow through the clones
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():  # validation: eager
        assert torch.allclose(losses(x)["loss"], eager["loss"])


def test_a_compiler_failure_falls_back_to_eager(caplog: pytest.LogCaptureFixture) -> None:
    def failing_backend(graph_module, example_inputs):  # noqa: ANN001 - a compiler that cannot compile
        raise RuntimeError("no kernels for this device")

    torch.manual_seed(0)
    model = EncDec(dropout=0.0)
    x = torch.rand(8, 1, 28, 28)
    losses = compile_for_training(model.compute_losses, mode="default", backend=failing_backend)
    with caplog.at_level("WARNING"):
        terms = losses(x)
    assert torch.allclose(terms["loss"], model.compute_losses(x)["loss"])
    assert "torch.compile failed" in caplog.text and "training continues eagerly" in caplog.text


@pytest.mark.gpu
def test_cuda_graph_step_matches_eager_over_several_steps() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    torch.manual_seed(0)
    eager = EncDec(dropout=0.0).cuda()
    fast = copy.deepcopy(eager).to(memory_format=torch.channels_last)
    fast.compute_losses = compile_for_training(fast.compute_losses, mode="reduce-overhead")
    kept = []  # CUDA graphs reuse their output memory: tensors kept from earlier steps must keep their values
    for _ in range(4):
        x = torch.rand(128, 1, 28, 28, device="cuda")
        terms_eager, _ = training_step(eager, x, "32-true", "cuda")
        terms_fast, _ = training_step(fast, x, "bf16-mixed", "cuda")
        kept.append((terms_fast["latent_norm"], float(terms_fast["latent_norm"])))
        assert float(terms_fast["loss"]) == pytest.approx(float(terms_eager["loss"]), rel=0.02, abs=1e-4)
    assert [float(tensor) for tensor, _ in kept] == [value for _, value in kept]


def test_cpu_bf16_detection_reads_the_cpu_flags() -> None:
    assert cpu_has_native_bf16("flags\t\t: fpu sse2 avx512f avx512_bf16 avx512vl\n")
    assert cpu_has_native_bf16("flags\t\t: fpu amx_bf16 amx_tile\n")
    assert not cpu_has_native_bf16("flags\t\t: fpu sse2 avx2 avx512f\n")  # AVX-512 alone: bf16 only emulated
    assert precision_for("cpu") == ("bf16-mixed" if cpu_has_native_bf16() else "32-true")
    if not torch.cuda.is_available():
        assert precision_for("gpu") == "32-true"  # nothing to ask; Lightning then reports the missing GPU
        assert precision_for("auto") == precision_for("cpu")


def test_speed_settings_compose_and_speed_off_is_the_conventional_loop(tmp_path: Path, data_root: Path) -> None:
    fast = compose_config("train", [f"data.root={data_root}"], tmp_path)
    assert fast.trainer.precision == precision_for("auto")
    assert fast.data.device_resident == "auto"
    step = construct(fast, "speed")
    assert isinstance(step, FastStep) and (step.compile, step.compile_mode, step.channels_last) == ("auto",) * 3
    off = compose_config("train", [f"data.root={data_root}", "speed=off"], tmp_path)
    assert off.trainer.precision == "32-true" and off.data.device_resident is False
    assert (off.speed.compile, off.speed.channels_last) == (False, False)
    assert construct(off, "data").uses_device_batches() is False


def test_bad_speed_setting_names_the_key(tmp_path: Path) -> None:
    cfg = compose_config("train", ["speed.compile=maybe"], tmp_path)
    with pytest.raises(ConfigError, match=r"speed\.compile='maybe' is invalid: must be true, false or auto"):
        construct(cfg, "speed")


class CountHostSyncs(TorchDispatchMode):
    """Counts .item()-like reads of tensor values (aten::_local_scalar_dense): each is a host sync on a GPU.

    Reads of `host_tensors` are not counted: Adam's step counters, which torch keeps on the CPU (unless
    fused or capturable) and reads for the bias correction. On a GPU they are no wait for the device;
    on this CPU-only test every tensor is on the CPU, so they are told apart by identity."""

    def __init__(self, host_tensors: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.count = 0
        self.host_tensors = host_tensors

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        if func is torch.ops.aten._local_scalar_dense.default and id(args[0]) not in self.host_tensors:
            self.count += 1
        return func(*args, **(kwargs or {}))


class SyncCounter(L.Callback):
    """Watches every training step that is not a logging step, from batch start to batch end."""

    def __init__(self) -> None:
        self.mode: CountHostSyncs | None = None
        self.counts: list[int] = []

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        if (trainer.global_step + 1) % trainer.log_every_n_steps != 0 and trainer.global_step > 0:
            states = [state for optimizer in trainer.optimizers for state in optimizer.state.values()]
            steps = [state["step"] for state in states if "step" in state]
            assert all(step.device.type == "cpu" for step in steps)  # host-side counters, as on a GPU
            self.mode = CountHostSyncs(frozenset(map(id, steps)))
            self.mode.__enter__()

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if self.mode is not None:
            self.mode.__exit__(None, None, None)
            self.counts.append(self.mode.count)
            self.mode = None


@pytest.mark.slow
def test_fast_path_training_steps_read_no_values_back(cfg_train: DictConfig, data_root: Path) -> None:
    """The hot path (data, step, latent-norm window, logging) never waits for the device between log steps."""
    L.seed_everything(0, verbose=False)
    datamodule = MNISTDataModule(root=str(data_root), batch_size=32, device_resident=True, download=False)
    counter = SyncCounter()
    trainer = L.Trainer(
        accelerator="cpu", max_steps=8, log_every_n_steps=50, callbacks=[FastStep(), counter], logger=False,
        enable_checkpointing=False, enable_progress_bar=True, enable_model_summary=False, limit_val_batches=0,
        num_sanity_val_steps=0, precision=precision_for("cpu"),
    )  # fmt: skip
    trainer.fit(EncDec(width=8), datamodule=datamodule)
    assert len(counter.counts) == 7 and counter.counts == [0] * 7
