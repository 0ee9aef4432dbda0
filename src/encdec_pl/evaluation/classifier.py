"""The evaluation classifier: a small CNN per dataset, trained once, cached, reused by `evaluate`.

It judges images, never codes: label preservation classifies reconstructions, and the
Frechet distances compare its 128-dimensional penultimate features of real and generated
images (the role Inception-v3 plays in FID, for 28x28 grey images and offline).
It is trained on the training split only (the validation split picks nothing, the test
split is never seen), so its test accuracy, stored with it and reported by `evaluate`,
says how far its judgement can be trusted. `python -m encdec_pl.classifier` trains it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import RichProgressBar
from torch import nn

from encdec_pl.data import MNISTDataModule
from encdec_pl.errors import CheckpointError, first_line, is_positive_int, require
from encdec_pl.evaluation.metrics import accuracy

log = logging.getLogger(__name__)

FEATURE_DIM = 128


class EvaluationClassifier(L.LightningModule):
    """Two conv blocks and a 128-unit feature layer: ~99% on MNIST, ~91% on Fashion-MNIST."""

    def __init__(self, num_classes: int = 10, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 14x14
            nn.Conv2d(32, 64, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 7x7
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, FEATURE_DIM),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(FEATURE_DIM, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) in [0, 1] -> penultimate features (B, 128), the Frechet distances' space."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> class logits (B, num_classes)."""
        return self.head(self.body(x))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        loss = F.cross_entropy(self(images), labels)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._log_accuracy(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._log_accuracy(batch, "test")

    def _log_accuracy(self, batch: Any, stage: str) -> None:
        images, labels = batch
        correct = (self(images).argmax(dim=1) == labels).float().mean()
        self.log(f"{stage}/accuracy", correct, prog_bar=True, batch_size=len(images))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])


def save_classifier(model: EvaluationClassifier, path: Path, info: dict[str, Any]) -> None:
    """Write weights, settings and `info` (dataset, test accuracy...) to `path`, atomically.

    A half-written file is never left under the final name, so an interrupted training
    cannot leave a broken cache behind. A JSON copy of `info` goes next to it for people.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    torch.save({"state_dict": model.state_dict(), "hparams": dict(model.hparams), "info": info}, partial)
    partial.replace(path)
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")


def require_classifier(path: Path, dataset: str, needed_by: str) -> None:
    """CheckpointError naming the command that makes the classifier, when there is none at `path`."""
    if not Path(path).is_file():
        raise CheckpointError(
            f"{needed_by} needs the evaluation classifier for {dataset} at {path}: "
            f"train it once with python -m encdec_pl.classifier data={dataset}"
        )


def load_classifier(path: Path, dataset: str) -> tuple[EvaluationClassifier, dict[str, Any]]:
    """The cached classifier for `dataset` in eval mode, and its info; CheckpointError if unusable."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = EvaluationClassifier(**saved["hparams"])
        model.load_state_dict(saved["state_dict"])
        info = saved["info"]
    except (RuntimeError, EOFError, KeyError, TypeError, ValueError, OSError) as err:
        raise CheckpointError(
            f"cannot read the evaluation classifier {path} ({first_line(err)}); delete it and run "
            f"python -m encdec_pl.classifier data={dataset} classifier.path={path}"
        ) from err
    if info.get("dataset") != dataset:
        raise CheckpointError(
            f"the evaluation classifier {path} was trained on {info.get('dataset')}, not {dataset}: "
            f"set classifier.path to a classifier for {dataset} or train one with python -m encdec_pl.classifier "
            f"data={dataset} classifier.path=<new file>"
        )
    # classifiers cached before the fingerprint existed get one too: every evaluate result names its ruler
    return model.eval(), {**info, "weights_sha256": weights_sha256(model)}


def train_classifier(
    datamodule: MNISTDataModule,
    path: Path,
    epochs: int = 3,
    lr: float = 1e-3,
    seed: int = 0,
    limit_train_batches: int | float | None = None,
    accelerator: str = "auto",
    output_dir: Path | None = None,
) -> dict[str, Any]:
    """Train the classifier on the training split, test it, save it to `path`; return its info.

    On the CPU it trains on one thread whatever the machine's core count or OMP_NUM_THREADS: the
    classifier is the ruler every Frechet distance is read with, and a sum split over 2 threads rounds
    differently from one over 1 (seed 0 on the project's CPU: test accuracy 0.9899 on 1 thread, 0.9904 on
    2), so a retrained ruler would change every FD. One thread makes it the same on any machine with the
    same torch and CPU kind; its `weights_sha256` (in the info, and in every `evaluate` result) says
    which ruler a number was read with."""
    require(is_positive_int(epochs), "epochs", epochs, "a positive integer")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_classifier(datamodule, path, epochs, lr, seed, limit_train_batches, accelerator, output_dir)
    finally:
        torch.set_num_threads(threads)


def weights_sha256(model: torch.nn.Module) -> str:
    """A fingerprint of the weights (the first 16 hex digits of their SHA-256): equal only for the same classifier."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _train_classifier(
    datamodule: MNISTDataModule,
    path: Path,
    epochs: int,
    lr: float,
    seed: int,
    limit_train_batches: int | float | None,
    accelerator: str,
    output_dir: Path | None,
) -> dict[str, Any]:
    L.seed_everything(seed, workers=True, verbose=False)
    model = EvaluationClassifier(lr=lr)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        limit_train_batches=limit_train_batches,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[RichProgressBar(leave=False)],
        default_root_dir=output_dir,
    )
    log.info("Training the evaluation classifier on %s for %d epochs -> %s", datamodule.dataset_name, epochs, path)
    trainer.fit(model, datamodule=datamodule)
    if trainer.interrupted:
        raise KeyboardInterrupt
    test_accuracy = test_accuracy_of(model.eval(), datamodule)
    info = {
        "dataset": datamodule.dataset_name,
        "test_accuracy": test_accuracy,
        "val_accuracy": float(trainer.callback_metrics["val/accuracy"]),
        "epochs": epochs,
        "steps": trainer.global_step,
        "seed": seed,
        "feature_dim": FEATURE_DIM,
        "training_threads": 1,
        "weights_sha256": weights_sha256(model),
    }
    save_classifier(model.cpu(), path, info)
    log.info("Evaluation classifier for %s: test accuracy %.4f; saved to %s", info["dataset"], test_accuracy, path)
    return info


@torch.no_grad()
def test_accuracy_of(model: EvaluationClassifier, datamodule: MNISTDataModule) -> float:
    datamodule.setup()
    assert datamodule.test_set is not None
    images, labels = datamodule.test_set.as_tensors()
    device = next(model.parameters()).device
    predictions = torch.cat([model(batch.to(device)).argmax(1).cpu() for batch in images.split(1000)])
    return accuracy(predictions, labels)
