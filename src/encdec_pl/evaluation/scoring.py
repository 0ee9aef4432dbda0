"""Scoring an autoencoder-like model with the metrics of `encdec_pl.evaluation.metrics`.

Shared by `python -m encdec_pl.evaluate` (the test split, every image) and the
`QualityMonitor` callback (a fixed subset, every N training steps), so that the
numbers logged during training and the numbers in the results table are the same
quantities. Everything runs in eval mode under no_grad, in batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from encdec_pl.evaluation.classifier import EvaluationClassifier
from encdec_pl.evaluation.metrics import (
    active_dimensions,
    fit_gaussian,
    frechet_distance,
    knn_accuracy,
    label_preservation,
    logistic_regression_accuracy,
    sample_gaussian,
)
from encdec_pl.losses import latent_norm
from encdec_pl.models.base import BaseAutoencoder

BATCH_SIZE = 500


@dataclass
class Split:
    """Images (N, 1, 28, 28) in [0, 1] and their labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def subset(self, size: int | None, seed: int = 0) -> Split:
        """`size` images drawn without replacement (the same ones for the same seed); all if None."""
        if size is None or size >= len(self.images):
            return self
        index = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(seed))[:size]
        return Split(self.images[index], self.labels[index])


@torch.no_grad()
def _batched(
    function: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, device: torch.device
) -> torch.Tensor:
    return torch.cat([function(batch.to(device)).float().cpu() for batch in inputs.split(BATCH_SIZE)])


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


@dataclass
class Judged:
    """The classifier's predictions (N,) and penultimate features (N, 128) for a set of images."""

    predictions: torch.Tensor
    features: torch.Tensor


@torch.no_grad()
def judge(classifier: EvaluationClassifier, images: torch.Tensor) -> Judged:
    features = _batched(classifier.features, images, _device(classifier))
    logits = classifier.head(features.to(_device(classifier))).cpu()
    return Judged(logits.argmax(dim=1), features)


def probes(train_features: torch.Tensor, train: Split, test_features: torch.Tensor, test: Split, k: int) -> dict:
    """Logistic-regression and kNN accuracy of features fit on `train`, scored on `test`."""
    return {
        "logreg": logistic_regression_accuracy(train_features, train.labels, test_features, test.labels),
        "knn": knn_accuracy(train_features, train.labels, test_features, test.labels, k=k),
    }


@dataclass
class Scores:
    metrics: dict[str, float]
    reconstructions: torch.Tensor  # D(E(x)) of the test images
    samples: torch.Tensor  # D(z), z from the Gaussian fitted to training codes
    test_codes: torch.Tensor  # E(x) of the test images


@torch.no_grad()
def score_model(
    model: BaseAutoencoder,
    classifier: EvaluationClassifier,
    test: Split,
    fit: Split,
    num_samples: int,
    knn_k: int = 5,
    seed: int = 0,
    judged_test: Judged | None = None,
) -> Scores:
    """The model's quality metrics on `test`; probes and the sampling Gaussian are fit on `fit`.

    `judged_test` (the classifier's view of the test images) may be passed in when the
    same test images are scored repeatedly, as the quality callback does.
    """
    was_training = model.training
    model.eval()
    device = _device(model)
    try:
        test_codes = _batched(model.encode, test.images, device)
        fit_codes = _batched(model.encode, fit.images, device)
        reconstructions = _batched(model.decode, test_codes, device)
        reencoded = _batched(model.encode, reconstructions, device)
        mean, covariance = fit_gaussian(fit_codes)
        z = sample_gaussian(mean, covariance, num_samples, torch.Generator().manual_seed(seed))
        samples = _batched(model.decode, z, device)
    finally:
        model.train(was_training)
    judged_test = judged_test or judge(classifier, test.images)
    judged_reconstructions = judge(classifier, reconstructions)
    judged_samples = judge(classifier, samples)
    code_probes = probes(fit_codes, fit, test_codes, test, knn_k)
    metrics = {
        "label_preservation": label_preservation(
            judged_reconstructions.predictions, judged_test.predictions, test.labels
        ),
        "accuracy/originals": float((judged_test.predictions == test.labels).double().mean()),
        "accuracy/reconstructions": float((judged_reconstructions.predictions == test.labels).double().mean()),
        "probe/logreg/codes": code_probes["logreg"],
        "probe/knn/codes": code_probes["knn"],
        "frechet/reconstructions": frechet_distance(judged_test.features, judged_reconstructions.features),
        "frechet/samples": frechet_distance(judged_test.features, judged_samples.features),
        "mse": float((reconstructions - test.images).pow(2).mean()),
        # docs/method.md's latent norm on the test images (no dropout), and the part of it that is
        # spread rather than offset: the per-dimension variance of the codes, averaged over dimensions.
        "latent_norm": float(latent_norm(test_codes, reencoded)),
        "code_variance": float(test_codes.var(dim=0).mean()),
        "active_dims": active_dimensions(test_codes),
    }
    return Scores(metrics, reconstructions, samples, test_codes)


@torch.no_grad()
def reference_scores(
    untrained: BaseAutoencoder,
    classifier: EvaluationClassifier,
    test: Split,
    fit: Split,
    other_real: Split,
    knn_k: int = 5,
    judged_test: Judged | None = None,
) -> dict[str, float]:
    """What the metrics give without a trained model, so that the model's numbers mean something.

    - probes on raw pixels and on the codes of an untrained encoder of the same architecture;
    - the Frechet distance between the test images and `other_real`, real images the
      classifier was not trained on: the value a perfect generator would get.
    """
    untrained.eval()
    device = _device(untrained)
    pixels = probes(fit.images.flatten(1), fit, test.images.flatten(1), test, knn_k)
    untrained_codes = probes(
        _batched(untrained.encode, fit.images, device),
        fit,
        _batched(untrained.encode, test.images, device),
        test,
        knn_k,
    )
    judged_test = judged_test or judge(classifier, test.images)
    return {
        "probe/logreg/pixels": pixels["logreg"],
        "probe/knn/pixels": pixels["knn"],
        "probe/logreg/untrained_encoder": untrained_codes["logreg"],
        "probe/knn/untrained_encoder": untrained_codes["knn"],
        "frechet/real": frechet_distance(judged_test.features, judge(classifier, other_real.images).features),
    }
