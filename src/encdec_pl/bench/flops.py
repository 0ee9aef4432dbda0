"""FLOPs of one EDE training step, counted by torch, and the throughput a GPU's arithmetic would allow.

torch.utils.flop_counter counts the matrix work (convolutions, linear layers) of the
forward and backward pass; element-wise work, pooling and upsampling are not counted,
and they are what these small networks are mostly waiting on, so the bound is loose
on purpose: no step can be faster than it.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from encdec_pl.models import EncDec

# Dense bf16 tensor-core peak from NVIDIA's data sheets, in FLOP/s (no sparsity).
PEAK_BF16_FLOPS = {
    "H100 SXM": 989e12,
    "H100 PCIe": 756e12,
    "H200": 989e12,
    "A100": 312e12,
}


def training_step_flops(batch_size: int, **model_args: float) -> int:
    """FLOPs of forward + backward of one training step (EncDec.compute_losses) at `batch_size`, counted on CPU."""
    model = EncDec(**model_args)
    x = torch.rand(batch_size, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        model.compute_losses(x)["loss"].backward()
    return counter.get_total_flops()


def arithmetic_bound(flops_per_image: float, peak_flops: float) -> float:
    """Images per second if every FLOP ran at the peak rate: an upper bound on any real loop."""
    return peak_flops / flops_per_image
