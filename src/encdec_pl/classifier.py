"""The evaluation classifier: a small CNN per dataset, trained once, cached, reused by `evaluate`.

    python -m encdec_pl.classifier                      # MNIST -> <paths.cache_dir>/classifiers/mnist.pt
    python -m encdec_pl.classifier data=fashion_mnist   # Fashion-MNIST
    python -m encdec_pl.classifier classifier.path=/somewhere/mnist.pt

It judges images, never codes: label preservation classifies reconstructions, and the
Frechet distances compare its 128-dimensional penultimate features of real and generated
images (the role Inception-v3 plays in FID, for 28x28 grey images and offline).
It is trained on the training split only (the validation split picks nothing, the test
split is never seen), so its test accuracy, stored with it and reported by `evaluate`,
says how far its judgement can be trusted.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig

from encdec_pl.runtime.classifier import train_as_configured
from encdec_pl.runtime.cli import run_cli, start_run, user_errors, write_summary
from encdec_pl.runtime.config import CONFIG_PACKAGE, construct

log = logging.getLogger(__name__)


@hydra.main(version_base="1.3", config_path=CONFIG_PACKAGE, config_name="train_classifier")
@user_errors
def main(cfg: DictConfig) -> dict[str, Any]:
    output_dir = start_run(cfg, seeded=False)  # the classifier has its own classifier.seed
    datamodule = construct(cfg, "data")
    datamodule.prepare_data()
    info = train_as_configured(cfg, datamodule)
    metrics = {name: info[name] for name in ("test_accuracy", "val_accuracy")}
    details = {k: v for k, v in info.items() if k not in metrics and k != "steps"}
    write_summary(
        output_dir, "classifier", "completed", info["steps"], metrics, path=str(cfg.classifier.path), **details
    )
    log.info("Run folder: %s", output_dir)
    return info


if __name__ == "__main__":
    run_cli(main)
