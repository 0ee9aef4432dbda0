"""score_model, the scoring shared by `evaluate` and the quality callback, on a model with known answers;
and the evaluation classifier it scores with, which must be the same wherever it is trained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from encdec_pl.data import MNISTDataModule
from encdec_pl.evaluation.classifier import EvaluationClassifier, load_classifier, train_classifier
from encdec_pl.evaluation.scoring import Split, judge, score_model
from encdec_pl.models import EncDec
from encdec_pl.models.base import BaseAutoencoder


class IdentityAutoencoder(BaseAutoencoder):
    """A real (if useless) model of the project whose code is the image itself: reconstructions are exact."""

    def __init__(self) -> None:
        super().__init__(latent_dim=784, width=1)
        self.save_hyperparameters()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.view(-1, 1, 28, 28)


def images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_a_perfect_reconstruction_scores_as_the_originals() -> None:
    torch.manual_seed(0)
    classifier = EvaluationClassifier().eval()
    test_images, fit_images = images(300, seed=1), images(400, seed=2)
    # labels = the classifier's own answers, so it is right on every original
    test = Split(test_images, judge(classifier, test_images).predictions)
    fit = Split(fit_images, judge(classifier, fit_images).predictions)
    scores = score_model(IdentityAutoencoder(), classifier, test, fit, num_samples=300)
    assert scores.metrics["label_preservation"] == 1.0 and scores.metrics["accuracy/originals"] == 1.0
    assert scores.metrics["frechet/reconstructions"] < 1e-6
    assert scores.metrics["mse"] == 0.0
    torch.testing.assert_close(scores.reconstructions, test_images)
    assert scores.samples.shape == (300, 1, 28, 28) and scores.test_codes.shape == (300, 784)


def test_scoring_leaves_the_global_rng_and_the_training_mode_alone() -> None:
    torch.manual_seed(0)
    model, classifier = EncDec(latent_dim=8, width=8).train(), EvaluationClassifier().eval()
    split = Split(images(64, seed=1), torch.arange(64) % 10)
    state = torch.random.get_rng_state()
    first = score_model(model, classifier, split, split, num_samples=64, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # training continues as if nothing happened
    assert model.training  # restored after scoring in eval mode
    again = score_model(model, classifier, split, split, num_samples=64, seed=3)
    assert first.metrics == again.metrics  # fixed subsets and seeded samples: comparable across steps


@pytest.mark.slow
def test_the_classifier_is_the_same_ruler_whatever_the_thread_count(data_root: Path, tmp_path: Path) -> None:
    """Every Frechet distance is read with the evaluation classifier: retraining it on a machine with
    another core count (or OMP_NUM_THREADS) must give the same weights, so it trains on one thread."""
    fingerprints, before = [], torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            datamodule = MNISTDataModule(root=str(data_root), batch_size=64, num_workers=0, download=False)
            path = tmp_path / f"{threads}.pt"
            info = train_classifier(datamodule, path, epochs=1, limit_train_batches=8, accelerator="cpu")
            assert torch.get_num_threads() == threads  # the caller's setting is restored
            assert load_classifier(path, "mnist")[1]["weights_sha256"] == info["weights_sha256"]
            fingerprints.append(info["weights_sha256"])
    finally:
        torch.set_num_threads(before)
    assert fingerprints[0] == fingerprints[1]
