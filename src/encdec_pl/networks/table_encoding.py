"""The layout of a table row for the tabular networks: per-type encodings, their inverse, and repair.

A table is encoded into one float vector per row, the concatenation of its columns' blocks:

- a numeric column becomes one number: the quantile transform to a standard normal
  (TabDDPM's and TabSyn's encoding for skewed numbers). The transform is piecewise linear
  between knots (the distinct values among `n_quantiles` quantiles of the training column)
  and their mid-rank empirical CDF, then the normal quantile function. Point masses (the
  zeros of capital-gain) map to one value; being strictly increasing, the map inverts
  exactly, so integers come back as themselves;
- a categorical column becomes a one-hot block over its levels.

Everything a `TableEncoding` needs is in `spec` (JSON-able: knots, levels, ranges), which
models keep as a hyperparameter: a checkpoint decodes its samples without the data files.

`repair` turns any decoder output into valid values: the most likely level of each
categorical block, numbers clipped to the range observed in training and rounded where the
column is integer. It refuses NaN and infinities (NonFiniteOutputError) instead of making
rows out of them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from encdec_pl.errors import EncDecError

_SQRT2 = math.sqrt(2.0)


class NonFiniteOutputError(EncDecError):
    """The decoder produced NaN or infinite values: there is nothing to repair."""


def fit_spec(table: pd.DataFrame, categorical: dict[str, list[str]], n_quantiles: int = 1000) -> dict[str, Any]:
    """The encoding of `table`'s columns, fitted on it (the training split): a JSON-able dict."""
    columns = []
    for name in table.columns:
        if name in categorical:
            columns.append({"name": name, "kind": "categorical", "levels": list(categorical[name])})
            continue
        values = table[name].to_numpy(dtype=np.float64)
        knots = np.unique(np.quantile(values, np.linspace(0, 1, n_quantiles)))
        ordered = np.sort(values)
        below = np.searchsorted(ordered, knots, side="left") / len(values)
        upto = np.searchsorted(ordered, knots, side="right") / len(values)
        integer = bool(np.all(values == np.round(values)))
        columns.append({
            "name": name, "kind": "numeric", "integer": integer,
            "min": float(values.min()), "max": float(values.max()),
            "knots": knots.tolist(), "cdf": ((below + upto) / 2).tolist(),
        })  # fmt: skip
    return {"columns": columns}


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """np.interp for increasing `xp`: linear between knots, clamped to the ends."""
    x = x.clamp(xp[0], xp[-1])
    i = torch.searchsorted(xp, x.contiguous()).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    return f0 + (x - x0) / (x1 - x0) * (f1 - f0)


class TableEncoding:
    """Encode rows (DataFrame) into float tensors and back, column by column, as `spec` says."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.columns: list[dict[str, Any]] = spec["columns"]
        self.names = [c["name"] for c in self.columns]
        self.slices: list[slice] = []
        start = 0
        for column in self.columns:
            width = len(column["levels"]) if column["kind"] == "categorical" else 1
            self.slices.append(slice(start, start + width))
            start += width
        self.width = start
        self._knots = {c["name"]: torch.tensor(c["knots"], dtype=torch.float64) for c in self.numeric}
        self._cdf = {c["name"]: torch.tensor(c["cdf"], dtype=torch.float64) for c in self.numeric}

    @property
    def numeric(self) -> list[dict[str, Any]]:
        return [c for c in self.columns if c["kind"] == "numeric"]

    @property
    def categorical(self) -> list[dict[str, Any]]:
        return [c for c in self.columns if c["kind"] == "categorical"]

    def blocks(self) -> list[tuple[dict[str, Any], slice]]:
        return list(zip(self.columns, self.slices, strict=True))

    def numeric_index(self) -> list[int]:
        """Positions of the numeric columns' numbers in the encoded vector."""
        return [s.start for c, s in self.blocks() if c["kind"] == "numeric"]

    def categorical_slices(self) -> list[slice]:
        return [s for c, s in self.blocks() if c["kind"] == "categorical"]

    # ----- numbers --------------------------------------------------------------------------
    def to_normal(self, name: str, values: torch.Tensor) -> torch.Tensor:
        knots, cdf = self._knots[name].to(values.device), self._cdf[name].to(values.device)
        u = _interp(values.double(), knots, cdf)
        return _SQRT2 * torch.special.erfinv(2 * u - 1)

    def from_normal(self, name: str, z: torch.Tensor) -> torch.Tensor:
        """The inverse of `to_normal`; values beyond the knots are clamped to the observed range."""
        knots, cdf = self._knots[name].to(z.device), self._cdf[name].to(z.device)
        u = 0.5 * (1 + torch.erf(z.double() / _SQRT2))
        return _interp(u, cdf, knots)

    def normal_range(self, name: str) -> tuple[float, float]:
        """The encoded values of the column's smallest and largest observed value."""
        cdf = self._cdf[name]
        lo, hi = _SQRT2 * torch.special.erfinv(2 * cdf[[0, -1]] - 1)
        return float(lo), float(hi)

    # ----- rows <-> tensors -----------------------------------------------------------------
    def encode(self, table: pd.DataFrame) -> torch.Tensor:
        """Rows -> (N, width) float32; raises ValueError naming a column with unknown levels."""
        out = torch.zeros(len(table), self.width, dtype=torch.float64)
        for column, where in self.blocks():
            name = column["name"]
            if column["kind"] == "numeric":
                values = torch.as_tensor(table[name].to_numpy(dtype=np.float64))
                out[:, where.start] = self.to_normal(name, values)
            else:
                codes = pd.Categorical(table[name], categories=column["levels"]).codes
                if (codes < 0).any():
                    bad = sorted(set(table[name][codes < 0]))[:3]
                    raise ValueError(f"column {name} holds values outside its levels: {bad}")
                out[torch.arange(len(table)), where.start + torch.tensor(np.array(codes), dtype=torch.long)] = 1.0
        return out.float()

    def decode(self, x: torch.Tensor) -> pd.DataFrame:
        """(N, width) encoded rows (any decoder output) -> repaired rows with the original names and values."""
        x = check_finite(x)
        data: dict[str, Any] = {}
        for column, where in self.blocks():
            block = x[:, where].detach().cpu()
            if column["kind"] == "numeric":
                values = self.from_normal(column["name"], block[:, 0])
                values = values.clamp(column["min"], column["max"])
                data[column["name"]] = values.round().to(torch.int64).numpy() if column["integer"] else values.numpy()
            else:
                levels = np.asarray(column["levels"], dtype=object)
                data[column["name"]] = levels[block.argmax(dim=1).numpy()]
        return pd.DataFrame(data, columns=self.names)

    def repair(self, x: torch.Tensor) -> torch.Tensor:
        """Any decoder output -> the encoding of the nearest valid row, same shape, device and dtype.

        One-hot of the most likely level per categorical block; numbers clipped to the observed
        range and, for integer columns, moved to the encoding of the nearest integer.
        """
        x = check_finite(x)
        out = torch.zeros_like(x)
        for column, where in self.blocks():
            block = x[:, where]
            if column["kind"] == "numeric":
                name = column["name"]
                values = self.from_normal(name, block[:, 0]).clamp(column["min"], column["max"])
                if column["integer"]:
                    values = values.round()
                out[:, where.start] = self.to_normal(name, values).to(x.dtype)
            else:
                out[:, where] = torch.nn.functional.one_hot(block.argmax(dim=1), block.shape[1]).to(x.dtype)
        return out

    def raw_validity(self, x: torch.Tensor, tol: float = 1e-4, integer_tol: float = 1e-5) -> dict[str, float]:
        """Shares of raw decoder outputs that are already valid, before repair.

        categorical: blocks that are exact one-hots (within `tol`); numeric_in_range: numbers
        within the encoded observed range; integer: integer columns whose value is an integer's
        encoding (within `integer_tol`, relative); rows: rows valid in every column.
        """
        x = check_finite(x).double()
        row_ok = torch.ones(len(x), dtype=torch.bool, device=x.device)
        one_hot, in_range, integral = [], [], []
        for column, where in self.blocks():
            block = x[:, where]
            if column["kind"] == "categorical":
                ok = ((block - block.round()).abs() <= tol).all(1) & (block.round() >= 0).all(1)
                ok &= (block.sum(1) - 1).abs() <= tol
                one_hot.append(ok)
            else:
                lo, hi = self.normal_range(column["name"])
                ok = (block[:, 0] >= lo - tol) & (block[:, 0] <= hi + tol)
                in_range.append(ok)
                if column["integer"]:
                    # compared where the value lives: an integer's encoding, as float32 holds it
                    # (decoded, float32's rounding is worth up to ~0.3 in fnlwgt's sparse tails)
                    z = block[:, 0]
                    whole_z = self.to_normal(column["name"], self.from_normal(column["name"], z).round())
                    whole = (z - whole_z).abs() <= integer_tol * z.abs().clamp_min(1)
                    integral.append(whole)
                    ok = ok & whole
            row_ok &= ok

        def share(flags: list[torch.Tensor]) -> float:
            return float(torch.stack(flags).float().mean()) if flags else 1.0

        return {"categorical": share(one_hot), "numeric_in_range": share(in_range), "integer": share(integral),
                "rows": float(row_ok.float().mean())}  # fmt: skip


def check_finite(x: torch.Tensor) -> torch.Tensor:
    """`x`, or NonFiniteOutputError saying how many rows hold NaN or infinities."""
    bad = ~torch.isfinite(x).all(dim=1)
    if bool(bad.any()):
        raise NonFiniteOutputError(
            f"the decoder produced NaN or infinite values in {int(bad.sum())} of {len(x)} rows: the model has "
            "diverged; sample from an earlier checkpoint (or retrain with a lower lr)"
        )
    return x


def validity(table: pd.DataFrame, spec: dict[str, Any]) -> float:
    """Share of rows whose every value is valid: a level of its column, or a number in the observed
    range (and an integer where the column is integer)."""
    ok = np.ones(len(table), dtype=bool)
    for column in spec["columns"]:
        values = table[column["name"]]
        if column["kind"] == "categorical":
            ok &= values.isin(column["levels"]).to_numpy()
        else:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
            good = np.isfinite(numbers) & (numbers >= column["min"]) & (numbers <= column["max"])
            if column["integer"]:
                good &= numbers == np.round(numbers)
            ok &= good
    return float(ok.mean()) if len(ok) else 1.0
