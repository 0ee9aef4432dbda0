"""The contrastive terms of EDE and the latent-norm diagnostic (docs/method.md).

All three terms compare codes, never pixels. For codes `a`, `b` of shape
(batch, latent_dim) the distance is a root-mean-square over latent dims,
d = sqrt(mean((a - b)^2)); a similar pair costs 0.5 * d^2, a dissimilar pair
0.5 * max(margin - d, 0)^2; both are averaged over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Below this squared distance the sqrt is clamped. d/dx sqrt(x) is infinite at
# 0, so two identical codes in a dissimilar pair would give NaN gradients;
# clamping keeps the value equal to the formula for any d >= 1e-6.
_MIN_SQUARED_DISTANCE = 1e-12


def squared_rms_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample d^2 = mean over latent dims of (a - b)^2, shape (batch,)."""
    return (a - b).pow(2).mean(dim=1)


def similar_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """0.5 * d^2 averaged over the batch (computed without the sqrt: same value, no NaN at d=0)."""
    return 0.5 * squared_rms_distance(a, b).mean()


def dissimilar_loss(a: torch.Tensor, b: torch.Tensor, margin: float) -> torch.Tensor:
    """0.5 * max(margin - d, 0)^2 averaged over the batch."""
    d = squared_rms_distance(a, b).clamp_min(_MIN_SQUARED_DISTANCE).sqrt()
    return 0.5 * (margin - d).clamp_min(0).pow(2).mean()


def latent_norm(z: torch.Tensor, z_rec: torch.Tensor) -> torch.Tensor:
    """docs/method.md's diagnostic: 0.5 * (mean(E(x)^2) + mean(E(D(E(x)))^2)), in fp32 whatever the codes' dtype."""
    return 0.5 * (z.float().pow(2).mean() + z_rec.float().pow(2).mean())


def push_pairs(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The published push pairs: even against odd rows of the batch.

    An odd last row has no partner and is left out, so odd batch sizes work.
    """
    even_count = z.shape[0] - z.shape[0] % 2
    return z[0:even_count:2], z[1:even_count:2]


@dataclass(frozen=True)
class EDELoss:
    """The three EDE terms, weighted: total = push_w*push + pull_w*pull + fake_w*fake."""

    margin: float = 1.0
    pull_weight: float = 1.0
    push_weight: float = 1.0
    fake_weight: float = 2.0

    def __call__(self, z: torch.Tensor, z_rec: torch.Tensor, z_fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss terms from the three encodings of one batch.

        z      = E(x)
        z_rec  = E(D(E(x)))       graph reaches encoder and decoder
        z_fake = E(sg(D(E(x))))   the decoder output was detached: encoder only

        Under bf16 autocast the codes arrive in bf16; the terms are computed in fp32
        (a few hundred numbers: free), so the loss and its gradients keep fp32 precision.
        """
        z, z_rec, z_fake = z.float(), z_rec.float(), z_fake.float()
        terms = {
            "pull": similar_loss(z, z_rec),
            "push": dissimilar_loss(*push_pairs(z), self.margin),
            "fake": dissimilar_loss(z, z_fake, self.margin),
        }
        terms["loss"] = (
            self.pull_weight * terms["pull"] + self.push_weight * terms["push"] + self.fake_weight * terms["fake"]
        )
        return terms
