"""Quality metrics as pure functions on tensors (no models, no files): each has a known answer.

- `frechet_distance`: distance between two sets of feature vectors, each summarised by a
  Gaussian (mean, covariance). 0 for identical sets. With Inception features it is the FID;
  here the features come from the project's own evaluation classifier.
- `label_preservation`: accuracy on reconstructions over accuracy on the originals.
  1 for a perfect reconstruction.
- `logistic_regression_accuracy`, `knn_accuracy`: linear and nearest-neighbour probes,
  fit on one set of features and scored on another.
- `fit_gaussian`, `sample_gaussian`: the Gaussian fitted to training codes that samples are drawn from.
- `active_dimensions`: the share of latent dimensions a set of codes uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _float64_2d(features: torch.Tensor, name: str) -> torch.Tensor:
    if features.dim() != 2 or len(features) < 2:
        raise ValueError(f"{name} must have shape (N >= 2, D), got {tuple(features.shape)}")
    return features.detach().to(device="cpu", dtype=torch.float64)


def mean_and_covariance(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, in float64."""
    x = _float64_2d(features, "features")
    mean = x.mean(dim=0)
    centred = x - mean
    return mean, centred.T @ centred / (len(x) - 1)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    # Symmetric PSD square root by eigendecomposition; tiny negative eigenvalues are rounding.
    eigenvalues, eigenvectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return eigenvectors @ torch.diag(eigenvalues.clamp_min(0).sqrt()) @ eigenvectors.T


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N_a, D) and (N_b, D).

    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)). The trace of the matrix square
    root is computed as the sum of square roots of the eigenvalues of the symmetric PSD
    matrix S_a^(1/2) S_b S_a^(1/2), which has the same eigenvalues as S_a S_b: no complex
    parts to discard, unlike scipy.linalg.sqrtm on a non-symmetric product.
    """
    if features_a.shape[1:] != features_b.shape[1:]:
        raise ValueError(f"feature sizes differ: {tuple(features_a.shape)} vs {tuple(features_b.shape)}")
    mean_a, cov_a = mean_and_covariance(features_a)
    mean_b, cov_b = mean_and_covariance(features_b)
    sqrt_a = _psd_sqrt(cov_a)
    cross = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = torch.linalg.eigvalsh((cross + cross.T) / 2).clamp_min(0).sqrt().sum()
    distance = (mean_a - mean_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return max(float(distance), 0.0)  # rounding can leave -1e-12 for identical sets


def active_dimensions(codes: torch.Tensor, threshold: float = 0.01) -> float:
    """Share of the latent dimensions in use: those whose variance over the codes (N, D) is at least
    `threshold` times the largest dimension's variance. 1 when every dimension varies about as much as
    the most varied one; 1/D when the codes vary along a single dimension; 0 for identical codes."""
    variances = _float64_2d(codes, "codes").var(dim=0)
    largest = variances.max()
    if largest <= 0:
        return 0.0
    return float((variances >= threshold * largest).double().mean())


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of predicted class indices (N,) equal to labels (N,)."""
    if predictions.shape != labels.shape or predictions.numel() == 0:
        raise ValueError(f"predictions {tuple(predictions.shape)} and labels {tuple(labels.shape)} must match")
    return float((predictions.cpu() == labels.cpu()).double().mean())


def label_preservation(
    predictions_on_reconstructions: torch.Tensor, predictions_on_originals: torch.Tensor, labels: torch.Tensor
) -> float:
    """Classifier accuracy on reconstructions D(E(x)) divided by its accuracy on the originals x.

    1 when reconstructions are classified as well as the originals; about 0.1 / accuracy
    when they carry no class information (ten balanced classes).
    """
    on_originals = accuracy(predictions_on_originals, labels)
    if on_originals == 0:
        raise ValueError("the classifier gets every original wrong: label preservation is undefined")
    return accuracy(predictions_on_reconstructions, labels) / on_originals


def _standardise(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(dim=0), train.std(dim=0).clamp_min(1e-6)  # constant pixels: std 0
    return (train - mean) / std, (test - mean) / std


def logistic_regression_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    weight_decay: float = 1e-4,
    max_iter: int = 200,
) -> float:
    """Test accuracy of multinomial logistic regression fit on standardised training features.

    Full-batch L-BFGS on the cross-entropy plus `weight_decay` * ||W||^2 (a convex problem,
    so the answer does not depend on a seed). What the probe measures: how much of the
    class is linearly readable from the features.
    """
    train = train_features.detach().float().flatten(1).cpu()
    test = test_features.detach().float().flatten(1).cpu()
    train, test = _standardise(train, test)
    train_labels, test_labels = train_labels.cpu().long(), test_labels.cpu().long()
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    weight = torch.zeros(train.shape[1], num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(train @ weight + bias, train_labels) + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():  # callers may be under no_grad / inference mode
        optimizer.step(closure)
    with torch.no_grad():
        return accuracy((test @ weight + bias).argmax(dim=1), test_labels)


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 5,
    chunk_size: int = 1024,
) -> float:
    """Test accuracy of a k-nearest-neighbour vote (Euclidean distance on the raw features).

    What the probe measures: whether images of one class sit near each other in the
    feature space, with no fitting at all. Ties go to the class of the nearer neighbours.
    """
    if not 0 < k <= len(train_features):
        raise ValueError(f"k={k} must be in [1, number of training points={len(train_features)}]")
    train = train_features.detach().float().flatten(1).cpu()
    test = test_features.detach().float().flatten(1).cpu()
    train_labels = train_labels.cpu().long()
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    # Each neighbour votes 1, plus a tie-breaker that favours nearer ones (always < 1 in total).
    rank_bonus = torch.linspace(1e-3, 0, k)
    predictions = []
    for start in range(0, len(test), chunk_size):
        distances = torch.cdist(test[start : start + chunk_size], train)
        neighbours = distances.topk(k, dim=1, largest=False).indices
        votes = F.one_hot(train_labels[neighbours], num_classes).float() * (1 + rank_bonus)[None, :, None]
        predictions.append(votes.sum(dim=1).argmax(dim=1))
    return accuracy(torch.cat(predictions), test_labels)


def fit_gaussian(codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of (N, D) codes (float64): the distribution samples are drawn from."""
    return mean_and_covariance(codes)


def sample_gaussian(
    mean: torch.Tensor, covariance: torch.Tensor, num_samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`num_samples` draws (float32) from N(mean, covariance), reproducible with `generator`."""
    dim = len(mean)
    # A little jitter makes Cholesky work on a singular covariance (e.g. a collapsed dimension).
    jitter = 1e-6 * float(covariance.diagonal().mean().clamp_min(1e-12))
    factor = torch.linalg.cholesky(covariance + jitter * torch.eye(dim, dtype=covariance.dtype))
    noise = torch.randn(num_samples, dim, generator=generator, dtype=covariance.dtype)
    return (mean + noise @ factor.T).float()
