"""Tabular encoder and decoder: MLPs over the encoded row, with per-type output heads.

The decoder's output lives where the encoder's input does (the encoded row of
`encdec_pl.networks.table_encoding.TableEncoding`): one number per numeric column (its quantile-normal value) and
one block of level weights per categorical column. How a categorical block is made is the
"discrete-output trap" of issue 11: the encoder doubles as EDE's discriminator, and a
softmax is told apart from a real one-hot at once. `discrete_output` chooses:

- `softmax` (the default: best in the measured ablation, docs/tabular.md): probabilities;
- `gumbel`: Gumbel-softmax at temperature `tau` while training (CTGAN's choice, 0.2), the
  softmax of logits / tau in eval mode;
- `straight_through`: the exact one-hot of the most likely level forward, the softmax's
  gradient backward;
- `repair`: probabilities for the pull term, and the repaired row (exact one-hots, valid
  numbers) for the fake term (the model applies `repaired`; the decoder gives softmax).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DISCRETE_OUTPUTS = ("softmax", "gumbel", "straight_through", "repair")


def mlp(sizes: list[int], dropout: float, norm: str = "none") -> nn.Sequential:
    """Linear layers of `sizes`, SiLU and dropout after each hidden one; `norm="batch"` puts batch norm before
    each SiLU (model.decoder_norm, as in the image decoder). With "none" no module is added, so the layer
    indices, and the state-dict keys of checkpoints made before the option existed, are unchanged."""
    if norm not in ("none", "batch"):
        raise ValueError(f'norm must be "none" or "batch", got {norm!r}')
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(n_out)] if norm == "batch" else []
            layers += [nn.SiLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class TabularEncoder(nn.Module):
    """Encoded rows (B, width) -> codes (B, latent_dim): an MLP, `depth` hidden layers, no activation on the code."""

    def __init__(self, width: int, latent_dim: int, hidden_dim: int = 256, depth: int = 2, dropout: float = 0.0):
        super().__init__()
        self.net = mlp([width, *[hidden_dim] * depth, latent_dim], dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TabularDecoder(nn.Module):
    """Codes (B, latent_dim) -> encoded rows (B, width): numbers as they are, categories per `discrete_output`."""

    def __init__(
        self,
        width: int,
        numeric_index: list[int],
        categorical_slices: list[slice],
        latent_dim: int,
        hidden_dim: int = 256,
        depth: int = 2,
        discrete_output: str = "softmax",
        tau: float = 0.2,
        norm: str = "none",
    ) -> None:
        super().__init__()
        if discrete_output not in DISCRETE_OUTPUTS:
            raise ValueError(f"discrete_output must be one of {DISCRETE_OUTPUTS}, got {discrete_output!r}")
        self.width, self.discrete_output, self.tau = width, discrete_output, tau
        self.register_buffer("numeric_index", torch.tensor(numeric_index, dtype=torch.long), persistent=False)
        self.categorical = [(s.start, s.stop) for s in categorical_slices]
        # cat([numbers, *blocks]) holds position p of the row at column_order[p]
        source = [*numeric_index, *(i for a, b in self.categorical for i in range(a, b))]
        order = torch.empty(width, dtype=torch.long)
        order[torch.tensor(source)] = torch.arange(width)
        self.register_buffer("column_order", order, persistent=False)
        self.net = mlp([latent_dim, *[hidden_dim] * depth, width], 0.0, norm)

    def raw(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(numbers (B, n_numeric), [logits (B, levels) per categorical column]): what AE/VAE losses score."""
        out = self.net(z)
        return out[:, self.numeric_index], [out[:, a:b] for a, b in self.categorical]

    def assemble(self, numbers: torch.Tensor, blocks: list[torch.Tensor]) -> torch.Tensor:
        """Numbers and categorical blocks back into one row in column order."""
        return torch.cat([numbers, *blocks], dim=1)[:, self.column_order]

    def categories(self, logits: torch.Tensor) -> torch.Tensor:
        mode = self.discrete_output
        if mode == "gumbel":
            if self.training:
                return F.gumbel_softmax(logits.float(), tau=self.tau, hard=False).to(logits.dtype)
            return torch.softmax(logits / self.tau, dim=1)
        soft = torch.softmax(logits, dim=1)
        if mode == "straight_through":
            hard = F.one_hot(soft.argmax(dim=1), soft.shape[1]).to(soft.dtype)
            return hard - soft.detach() + soft
        return soft  # softmax; repair (the model repairs the fake term's copy)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        numbers, logits = self.raw(z)
        return self.assemble(numbers, [self.categories(block) for block in logits])
