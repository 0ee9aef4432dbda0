"""The evaluation classifier as the `classifier` config group describes it: trained if missing, then loaded."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from encdec_pl.data import MNISTDataModule
from encdec_pl.errors import CheckpointError
from encdec_pl.evaluation.classifier import EvaluationClassifier, load_classifier, train_classifier

log = logging.getLogger(__name__)


def train_as_configured(cfg: DictConfig, datamodule: MNISTDataModule) -> dict[str, Any]:
    """`train_classifier` with the settings of the `classifier` config group."""
    settings = cfg.classifier
    return train_classifier(
        datamodule,
        Path(settings.path),
        epochs=settings.epochs,
        lr=settings.lr,
        seed=settings.seed,
        limit_train_batches=settings.limit_train_batches,
        accelerator=settings.accelerator,
        output_dir=Path(cfg.paths.output_dir),
    )


def classifier_for(cfg: DictConfig, datamodule: MNISTDataModule) -> tuple[EvaluationClassifier, dict[str, Any]]:
    """The cached classifier that `cfg.classifier.path` names; trained first if missing and allowed."""
    path = Path(cfg.classifier.path)
    dataset = datamodule.dataset_name
    if not path.is_file():
        if not cfg.classifier.train_if_missing:
            raise CheckpointError(
                f"no evaluation classifier for {dataset} at {path}: train it once with "
                f"python -m encdec_pl.classifier data={dataset} (or set classifier.train_if_missing=true)"
            )
        log.info("No evaluation classifier at %s: training one now (cached for later runs)", path)
        train_as_configured(cfg, datamodule)
    return load_classifier(path, dataset)
