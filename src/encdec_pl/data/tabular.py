"""Tables on the training device: encoded rows as a map-style dataset and resumable device batches.

The encoding itself (per-type encodings, their inverse, repair) is
`encdec_pl.networks.table_encoding`, re-exported here: it is the layout the tabular networks
read and emit, which models and data modules share.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from encdec_pl.networks.table_encoding import (
    NonFiniteOutputError,
    TableEncoding,
    check_finite,
    fit_spec,
    validity,
)

__all__ = ["NonFiniteOutputError", "TableBatches", "TableEncoding", "TableRows", "check_finite", "fit_spec", "validity"]


Batch = tuple[torch.Tensor, torch.Tensor]


class TableRows(torch.utils.data.Dataset):
    """Map-style view of a split: (encoded row, income label) on the CPU."""

    def __init__(self, rows: torch.Tensor, labels: torch.Tensor) -> None:
        self.rows, self.labels = rows, labels

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Batch:
        return self.rows[index].cpu(), self.labels[index].cpu()


class TableBatches:
    """Batches (rows (B, width), labels (B,)) sliced from tensors held on one device.

    With `shuffle`, each epoch is a fresh permutation from a generator seeded with (seed,
    epoch): reproducible, and resumable at any batch (Lightning saves `state_dict`).
    """

    def __init__(self, rows: torch.Tensor, labels: torch.Tensor, batch_size: int, device: torch.device | str = "cpu",
                 shuffle: bool = False, seed: int | None = None) -> None:  # fmt: skip
        self.device = torch.device(device)
        self.rows, self.labels = rows.to(self.device).contiguous(), labels.to(self.device)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.dataset = TableRows(self.rows, self.labels)
        self.seed = int(torch.randint(2**31, ())) if seed is None else seed
        self.epoch, self.position, self._resume = -1, 0, False

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        if not (self._resume and self.position < len(self)):
            self.epoch, self.position = self.epoch + 1, 0
        self._resume = False
        n = len(self.rows)
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed((self.seed << 24) + self.epoch))
            order = order.to(self.device)
        else:
            order = None
        while self.position < len(self):
            start = self.position * self.batch_size
            self.position += 1
            if order is None:
                yield self.rows[start : start + self.batch_size], self.labels[start : start + self.batch_size]
            else:
                index = order[start : start + self.batch_size]
                yield self.rows[index], self.labels[index]

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]
        self._resume = True
