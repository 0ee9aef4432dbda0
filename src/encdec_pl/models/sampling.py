"""Drawing samples from a trained model: codes from a Gaussian fitted to the training codes, decoded.

EDE and the AE have no prior over codes, so every model is sampled the same way: the mean
and covariance of the codes of the training data (`fit_code_gaussian`), codes drawn from
that Gaussian, decoded. Codes are drawn fresh, never by perturbing the codes of training
rows, which could hand back training rows (the DCR share of evaluation/tabular.py checks).

For a tabular model, `sample_table` also repairs the decoder's output into valid rows
(encdec_pl.networks.table_encoding) and reports how valid the raw output was before repair.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch


@torch.no_grad()
def encode_all(model: Any, inputs: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """model.encode over `inputs` in batches, on the model's device; codes on the CPU in float32."""
    device = next(model.parameters()).device
    return torch.cat([model.encode(inputs[i : i + batch_size].to(device)).float().cpu()
                      for i in range(0, len(inputs), batch_size)])  # fmt: skip


def fit_code_gaussian(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance (float64, a little jitter for a positive-definite matrix) of codes (N, d)."""
    codes = codes.double()
    mean = codes.mean(dim=0)
    centred = codes - mean
    cov = centred.T @ centred / max(len(codes) - 1, 1)
    return mean, cov + 1e-6 * torch.eye(len(mean), dtype=cov.dtype)


def draw_codes(mean: torch.Tensor, cov: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """`n` codes from N(mean, cov), float32, from their own generator (the global RNG is untouched)."""
    generator = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(cov)
    noise = torch.randn(n, len(mean), generator=generator, dtype=torch.float64)
    return (mean + noise @ chol.T).float()


@torch.no_grad()
def decode_all(model: Any, codes: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model.decode(codes[i : i + batch_size].to(device)).float().cpu()
                      for i in range(0, len(codes), batch_size)])  # fmt: skip


@torch.no_grad()
def sample_table(model: Any, train_rows: torch.Tensor, n: int, seed: int = 0) -> tuple[pd.DataFrame, dict[str, float]]:
    """`n` synthetic rows (original column names and values) from a tabular model, and the raw output's validity.

    `train_rows`: the encoded training rows whose codes the Gaussian is fitted to. Raises
    NonFiniteOutputError when the decoder produces NaN or infinities.
    """
    model.eval()
    mean, cov = fit_code_gaussian(encode_all(model, train_rows))
    raw = decode_all(model, draw_codes(mean, cov, n, seed))
    validity = model.encoding.raw_validity(raw)
    return model.encoding.decode(raw), validity
