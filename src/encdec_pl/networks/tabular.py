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

`arch` (network.arch) chooses the networks' body: `mlp` (the default, `TabularEncoder` and
`TabularDecoder`) or `transformer`, a small transformer over one token per column
(`ColumnTokenEncoder`, `ColumnTokenDecoder`). Both decoders share `RowDecoder`: they differ only
in `raw` (numbers and logits), so `discrete_output`, the per-type losses and repair see the same
outputs whichever body made them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DISCRETE_OUTPUTS = ("softmax", "gumbel", "straight_through", "repair")
ARCHS = ("mlp", "transformer")


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


class RowDecoder(nn.Module):
    """What every tabular decoder shares: per-type outputs assembled into the encoded row's layout.

    A subclass defines `raw` (numbers and per-column logits); the categorical blocks are made from
    the logits as `discrete_output` says, and the pieces are put back in column order.
    """

    def __init__(
        self,
        width: int,
        numeric_index: list[int],
        categorical_slices: list[slice],
        discrete_output: str = "softmax",
        tau: float = 0.2,
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

    def raw(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(numbers (B, n_numeric), [logits (B, levels) per categorical column]): what AE/VAE losses score."""
        raise NotImplementedError

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


class TabularDecoder(RowDecoder):
    """Codes (B, latent_dim) -> encoded rows (B, width): an MLP whose output is laid out like the row."""

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
        super().__init__(width, numeric_index, categorical_slices, discrete_output, tau)
        self.net = mlp([latent_dim, *[hidden_dim] * depth, width], 0.0, norm)

    def raw(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out = self.net(z)
        return out[:, self.numeric_index], [out[:, a:b] for a, b in self.categorical]


# ----- the column-token transformer (network.arch=transformer) --------------------------------


def _uniform(*shape: int) -> nn.Parameter:
    """A parameter drawn like nn.Linear's weights with fan-in shape[-1]: uniform in +-1/sqrt(fan-in)."""
    bound = shape[-1] ** -0.5
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


class _Layout(nn.Module):
    """Where each column lives in the encoded row, as index buffers: numbers first, then categorical levels."""

    def __init__(self, numeric_index: list[int], categorical_slices: list[slice]) -> None:
        super().__init__()
        blocks = [(s.start, s.stop) for s in categorical_slices]
        self.n_numeric, self.n_categorical = len(numeric_index), len(blocks)
        self.n_columns = self.n_numeric + self.n_categorical
        self.levels = [b - a for a, b in blocks]
        self.register_buffer("numeric_index", torch.tensor(numeric_index, dtype=torch.long), persistent=False)
        level_index = [i for a, b in blocks for i in range(a, b)]
        self.register_buffer("level_index", torch.tensor(level_index, dtype=torch.long), persistent=False)
        # level_column[l]: the categorical column (0..n_categorical-1) that level l belongs to
        level_column = [c for c, n in enumerate(self.levels) for _ in range(n)]
        self.register_buffer("level_column", torch.tensor(level_column, dtype=torch.long), persistent=False)
        member = torch.zeros(self.n_categorical, len(level_index))
        member[torch.tensor(level_column), torch.arange(len(level_index))] = 1.0
        self.register_buffer("member", member, persistent=False)


def _transformer(d_model: int, layers: int, heads: int, dropout: float) -> nn.TransformerEncoder:
    # pre-norm (stable without a warm-up); feed-forward 2 x d_model, FT-Transformer's order of size
    layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout, activation="gelu", batch_first=True,
                                       norm_first=True)  # fmt: skip
    return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)


class ColumnTokenEncoder(nn.Module):
    """Encoded rows (B, width) -> codes (B, latent_dim): one token per column, a transformer, the CLS token.

    A numeric column's token is its quantile-normal value times a learned vector; a categorical
    column's is its block times a learned embedding matrix (levels x d_model), so a probability
    vector (a decoder's softmax) gives the mixture of its levels' embeddings, as EDE needs when it
    re-encodes decoder outputs. Each column adds its own learned embedding (the numbers' bias).
    """

    def __init__(self, numeric_index: list[int], categorical_slices: list[slice], latent_dim: int, d_model: int,
                 layers: int, heads: int, dropout: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.layout = _Layout(numeric_index, categorical_slices)
        n_levels = len(self.layout.level_index)
        self.numeric_weight = _uniform(self.layout.n_numeric, d_model)
        self.level_embedding = _uniform(n_levels, d_model)
        self.column_embedding = _uniform(self.layout.n_columns, d_model)
        self.cls = _uniform(1, 1, d_model)
        self.transformer = _transformer(d_model, layers, heads, dropout)
        self.head = nn.Linear(d_model, latent_dim)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_columns, d_model): the row's columns as tokens, numbers first."""
        layout = self.layout
        numbers = x[:, layout.numeric_index, None] * self.numeric_weight  # (B, n_numeric, d)
        levels = x[:, layout.level_index]  # (B, n_levels): one-hots or probabilities
        categories = (levels[:, None, :] * layout.member) @ self.level_embedding  # (B, n_categorical, d)
        return torch.cat([numbers, categories], dim=1) + self.column_embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens(x)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        return self.head(self.transformer(tokens)[:, 0])


class ColumnTokenDecoder(RowDecoder):
    """Codes (B, latent_dim) -> encoded rows (B, width): one token per column, a transformer, per-column heads.

    The code is projected to n_columns tokens (the projection's bias is each column's embedding);
    after the transformer a numeric column's token gives its number (a dot product with a learned
    vector plus a bias), a categorical column's token its logits (against a learned vector per
    level): what TabularDecoder's output layer gives, so the RowDecoder part is shared unchanged.
    """

    def __init__(self, width: int, numeric_index: list[int], categorical_slices: list[slice], latent_dim: int,
                 d_model: int, layers: int, heads: int, discrete_output: str = "softmax",
                 tau: float = 0.2) -> None:  # fmt: skip
        super().__init__(width, numeric_index, categorical_slices, discrete_output, tau)
        self.layout = _Layout(numeric_index, categorical_slices)
        n_levels = len(self.layout.level_index)
        self.d_model = d_model
        self.project = nn.Linear(latent_dim, self.layout.n_columns * d_model)
        self.transformer = _transformer(d_model, layers, heads, 0.0)  # no dropout: the MLP decoder has none either
        self.numeric_head = _uniform(self.layout.n_numeric, d_model)
        self.numeric_bias = nn.Parameter(torch.zeros(self.layout.n_numeric))
        self.level_head = _uniform(n_levels, d_model)
        self.level_bias = nn.Parameter(torch.zeros(n_levels))

    def raw(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        layout = self.layout
        tokens = self.transformer(self.project(z).view(len(z), layout.n_columns, self.d_model))
        numbers = (tokens[:, : layout.n_numeric] * self.numeric_head).sum(dim=2) + self.numeric_bias
        per_level = tokens[:, layout.n_numeric :][:, layout.level_column]  # (B, n_levels, d): its column's token
        logits = (per_level * self.level_head).sum(dim=2) + self.level_bias
        return numbers, list(logits.split(layout.levels, dim=1))
