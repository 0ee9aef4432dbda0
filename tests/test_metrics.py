"""Each quality metric on inputs with known answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from encdec_pl.data import MNISTDataModule
from encdec_pl.evaluation.metrics import (
    accuracy,
    active_dimensions,
    fit_gaussian,
    frechet_distance,
    knn_accuracy,
    label_preservation,
    logistic_regression_accuracy,
    sample_gaussian,
)
from encdec_pl.evaluation.scoring import Split


def gaussian(n: int, dim: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def test_active_dimensions_counts_the_dimensions_the_codes_vary_along() -> None:
    torch.manual_seed(0)
    codes = torch.randn(500, 8)
    assert active_dimensions(codes) == 1.0  # every dimension varies as much as the others
    codes[:, 2:] *= 1e-3  # variance 1e-6 of the largest: collapsed
    assert active_dimensions(codes) == pytest.approx(2 / 8)
    assert active_dimensions(torch.ones(10, 4)) == 0.0
    with pytest.raises(ValueError, match="codes"):
        active_dimensions(torch.randn(1, 4))


def test_frechet_distance_of_identical_sets_is_zero() -> None:
    features = gaussian(2000, 16, seed=0) @ gaussian(16, 16, seed=1)  # correlated features
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)
    # the order of the samples does not matter either
    assert frechet_distance(features, features.flip(0)) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_a_shifted_set_is_the_squared_shift() -> None:
    features = gaussian(1000, 8, seed=0)
    shift = torch.arange(8.0) / 4  # same covariance, mean moved by `shift`
    assert frechet_distance(features, features + shift) == pytest.approx(float(shift.pow(2).sum()), rel=1e-6)


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians() -> None:
    # For diagonal covariances: sum over dims of (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2.
    a, b = gaussian(200_000, 3, seed=0), gaussian(200_000, 3, seed=1) * torch.tensor([1.0, 2.0, 3.0]) + 1.0
    expected = 3 * 1.0 + (1 - 1) ** 2 + (1 - 2) ** 2 + (1 - 3) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)  # symmetric


def test_frechet_distance_rejects_mismatched_features() -> None:
    with pytest.raises(ValueError, match="feature sizes differ"):
        frechet_distance(torch.zeros(10, 3), torch.zeros(10, 4))


def test_label_preservation_of_a_perfect_reconstruction_is_one() -> None:
    labels = torch.arange(100) % 10
    predictions = labels.clone()
    predictions[:7] = (predictions[:7] + 1) % 10  # the classifier errs on 7 originals
    # a perfect reconstruction is classified exactly like its original, mistakes included
    assert label_preservation(predictions, predictions, labels) == 1.0
    assert accuracy(predictions, labels) == pytest.approx(0.93)


def test_label_preservation_of_uninformative_reconstructions_is_chance_over_accuracy() -> None:
    labels = torch.arange(1000) % 10
    constant = torch.zeros(1000, dtype=torch.long)  # every reconstruction looks like a 0
    assert label_preservation(constant, labels, labels) == pytest.approx(0.1)


def test_probes_on_raw_mnist_pixels_far_above_chance(data_root: Path) -> None:
    datamodule = MNISTDataModule(root=str(data_root), num_workers=0)
    datamodule.setup()
    fit = Split(*datamodule.train_set.as_tensors()).subset(2000, seed=0)
    test = Split(*datamodule.test_set.as_tensors()).subset(1000, seed=0)
    pixels_fit, pixels_test = fit.images.flatten(1), test.images.flatten(1)
    # chance is 0.1; published numbers on full MNIST are ~0.92 (logreg) and ~0.97 (kNN)
    assert logistic_regression_accuracy(pixels_fit, fit.labels, pixels_test, test.labels) > 0.8
    assert knn_accuracy(pixels_fit, fit.labels, pixels_test, test.labels, k=5) > 0.85


def test_probes_on_features_unrelated_to_labels_stay_at_chance() -> None:
    # Guards against a probe that peeks at the test labels: nothing to learn, ~0.1.
    features, labels = gaussian(3000, 20, seed=0), torch.randint(0, 10, (3000,), generator=torch.Generator())
    assert logistic_regression_accuracy(features[:2000], labels[:2000], features[2000:], labels[2000:]) < 0.17
    assert knn_accuracy(features[:2000], labels[:2000], features[2000:], labels[2000:]) < 0.17


def test_knn_with_one_neighbour_on_its_own_training_set_is_exact() -> None:
    features, labels = gaussian(500, 5, seed=0), torch.arange(500) % 7
    assert knn_accuracy(features, labels, features, labels, k=1) == 1.0
    with pytest.raises(ValueError, match="k=0"):
        knn_accuracy(features, labels, features, labels, k=0)


def test_linearly_separable_classes_are_separated_by_the_logistic_probe() -> None:
    labels = torch.arange(1000) % 4
    features = torch.nn.functional.one_hot(labels, 4).float() * 3 + gaussian(1000, 4, seed=0) * 0.3
    assert logistic_regression_accuracy(features[:500], labels[:500], features[500:], labels[500:]) == 1.0


def test_samples_follow_the_fitted_gaussian_and_are_reproducible() -> None:
    mixing = torch.tensor([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0], [0.0, 0.0, 0.1]])
    codes = gaussian(50_000, 3, seed=0) @ mixing.T + torch.tensor([1.0, -2.0, 5.0])
    mean, covariance = fit_gaussian(codes)
    samples = sample_gaussian(mean, covariance, 50_000, torch.Generator().manual_seed(1))
    assert samples.dtype == torch.float32 and samples.shape == (50_000, 3)
    sample_mean, sample_cov = fit_gaussian(samples)
    torch.testing.assert_close(sample_mean, mean, atol=0.03, rtol=0)
    torch.testing.assert_close(sample_cov, covariance, atol=0.05, rtol=0.03)
    again = sample_gaussian(mean, covariance, 50_000, torch.Generator().manual_seed(1))
    assert torch.equal(samples, again)
    # a collapsed (zero-variance) dimension still samples
    flat = codes.clone()
    flat[:, 2] = 0.5
    assert torch.isfinite(sample_gaussian(*fit_gaussian(flat), 10)).all()
