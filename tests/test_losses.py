"""The EDE loss terms: formula, gradient flow, and the latent-norm diagnostic (docs/method.md)."""

from __future__ import annotations

import math

import pytest
import torch

from encdec_pl import EncDec
from encdec_pl.losses import EDELoss, dissimilar_loss, latent_norm, push_pairs, similar_loss


def test_contrastive_terms_match_hand_computed_values() -> None:
    # Pair 1: a=(0,0), b=(3,4): mean sq 12.5, d=sqrt(12.5)=3.5355 (beyond the margin).
    # Pair 2: a=(0,0), b=(0.2,0.2): mean sq 0.04, d=0.2.
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    b = torch.tensor([[3.0, 4.0], [0.2, 0.2]])
    # similar: mean of 0.5*d^2 = (6.25 + 0.02) / 2
    assert similar_loss(a, b).item() == pytest.approx((6.25 + 0.02) / 2)
    # dissimilar, margin 1: mean of 0.5*max(1-d, 0)^2 = (0 + 0.5*0.8^2) / 2
    assert dissimilar_loss(a, b, margin=1.0).item() == pytest.approx((0.0 + 0.32) / 2)
    # margin 4 reaches pair 1 too: 0.5*(4 - 3.5355)^2 and 0.5*3.8^2
    expected = (0.5 * (4 - math.sqrt(12.5)) ** 2 + 0.5 * 3.8**2) / 2
    assert dissimilar_loss(a, b, margin=4.0).item() == pytest.approx(expected, rel=1e-6)


def test_distance_is_rms_over_latent_dims_not_l2() -> None:
    # Same per-dimension gap, more dimensions: an L2 distance would grow, the RMS does not.
    small, large = torch.zeros(1, 4), torch.zeros(1, 64)
    assert similar_loss(small, small + 0.5).item() == pytest.approx(similar_loss(large, large + 0.5).item())
    assert similar_loss(small, small + 0.5).item() == pytest.approx(0.5 * 0.25)


def test_identical_codes_give_finite_gradients() -> None:
    # d = 0 for a dissimilar pair: sqrt's derivative is infinite there, the loss must not NaN.
    a = torch.randn(8, 16, requires_grad=True)
    loss = dissimilar_loss(a, a.detach().clone(), margin=1.0)
    loss.backward()
    assert loss.item() == pytest.approx(0.5, abs=1e-5)  # d is clamped to 1e-6, not 0
    assert torch.isfinite(a.grad).all()


def test_push_pairs_are_even_against_odd_rows() -> None:
    z = torch.arange(7.0).unsqueeze(1)  # odd batch: the last row has no partner
    even, odd = push_pairs(z)
    assert even.squeeze(1).tolist() == [0.0, 2.0, 4.0]
    assert odd.squeeze(1).tolist() == [1.0, 3.0, 5.0]


def test_latent_norm_matches_definition() -> None:
    z = torch.full((4, 8), 2.0)
    z_rec = torch.full((4, 8), 1.0)
    # 0.5 * (mean(z^2) + mean(z_rec^2)) = 0.5 * (4 + 1)
    assert latent_norm(z, z_rec).item() == pytest.approx(2.5)
    z, z_rec = torch.randn(5, 3), torch.randn(5, 3)
    assert latent_norm(z, z_rec).item() == pytest.approx(0.5 * ((z**2).mean() + (z_rec**2).mean()).item())


def test_total_is_the_weighted_sum() -> None:
    z, z_rec, z_fake = torch.randn(6, 4), torch.randn(6, 4), torch.randn(6, 4)
    terms = EDELoss(margin=1.0, pull_weight=0.5, push_weight=3.0, fake_weight=2.0)(z, z_rec, z_fake)
    expected = 0.5 * terms["pull"] + 3.0 * terms["push"] + 2.0 * terms["fake"]
    assert terms["loss"].item() == pytest.approx(expected.item())


@pytest.fixture
def losses_of_a_batch() -> tuple[EncDec, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = EncDec()
    x = torch.rand(16, 1, 28, 28)
    return model, model.compute_losses(x)


def _grads(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> list[torch.Tensor | None]:
    return list(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True))


def test_fake_term_sends_no_gradient_to_the_decoder(losses_of_a_batch) -> None:
    model, terms = losses_of_a_batch
    decoder_grads = _grads(terms["fake"], list(model.decoder.parameters()))
    assert all(g is None or torch.count_nonzero(g) == 0 for g in decoder_grads)
    # ...but it does train the encoder (it is the discriminator).
    encoder_grads = _grads(terms["fake"], list(model.encoder.parameters()))
    assert any(g is not None and torch.count_nonzero(g) > 0 for g in encoder_grads)


def test_pull_term_trains_encoder_and_decoder(losses_of_a_batch) -> None:
    model, terms = losses_of_a_batch
    for network in (model.decoder, model.encoder):
        grads = _grads(terms["pull"], list(network.parameters()))
        assert all(g is not None for g in grads)
        assert sum(float(g.abs().sum()) for g in grads) > 0


def test_push_term_trains_only_the_encoder(losses_of_a_batch) -> None:
    model, terms = losses_of_a_batch
    assert all(g is None for g in _grads(terms["push"], list(model.decoder.parameters())))
    assert any(g is not None and g.abs().sum() > 0 for g in _grads(terms["push"], list(model.encoder.parameters())))
