"""`python -m encdec_pl.classifier` and `python -m encdec_pl.evaluate` end to end, in subprocesses,
on real MNIST: the EDE checkpoint of the shared TRAIN_STEPS-step run (conftest), and a short VAE run with the
quality callback. The classifier is trained once per session on a small budget into a tmp cache.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from encdec_pl.evaluation.classifier import load_classifier

from .conftest import CLASSIFIER_BATCHES, TRAIN_STEPS, run_cli, uses_trained_run

pytestmark = [pytest.mark.slow, uses_trained_run]  # one worker: the classifier and the run are made once


def test_classifier_is_cached_with_its_test_accuracy(eval_classifier: Path) -> None:
    model, info = load_classifier(eval_classifier, "mnist")
    assert info["dataset"] == "mnist" and info["steps"] == CLASSIFIER_BATCHES
    assert 0.85 < info["test_accuracy"] <= 1.0
    assert json.loads(eval_classifier.with_suffix(".json").read_text()) == info  # the human-readable copy
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10) and model.features(torch.rand(2, 1, 28, 28)).shape[1] == 128


def evaluate_cli(ckpt: Path, classifier: Path, out: Path, data_root: Path, *extra: str, size: int = 2000):  # noqa: ANN201
    return run_cli(
        "encdec_pl.evaluate",
        f"ckpt_path={ckpt}",
        f"classifier.path={classifier}",
        f"data.root={data_root}",
        f"hydra.run.dir={out}",
        f"probe.fit_size={size}",  # training images for probes and the sampling Gaussian (all 55000 by default)
        f"num_samples={size}",
        "device=cpu",
        "extras.print_config=false",
        *extra,
    )


def test_evaluate_scores_the_trained_run_and_writes_json_and_pngs(
    trained_run: Path, eval_classifier: Path, data_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "evaluation"
    result = evaluate_cli(trained_run, eval_classifier, out, data_root)  # a run folder: its checkpoints/last.ckpt
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "metrics.json").read_text())
    assert report["model"] == "EncDec" and report["dataset"] == "mnist" and report["global_step"] == TRAIN_STEPS
    metrics, reference = report["metrics"], report["reference"]
    # The originals are the whole test split, so the classifier's accuracy on them is its test accuracy.
    assert metrics["accuracy/originals"] == pytest.approx(report["classifier"]["test_accuracy"])
    assert 0 < metrics["label_preservation"] <= 1.1
    assert metrics["label_preservation"] == pytest.approx(
        metrics["accuracy/reconstructions"] / metrics["accuracy/originals"]
    )
    # Real images against real images is the floor a perfect model would reach.
    assert reference["frechet/real"] < metrics["frechet/reconstructions"]
    assert reference["frechet/real"] < metrics["frechet/samples"]
    assert reference["probe/logreg/pixels"] > 0.8 and reference["probe/knn/pixels"] > 0.85
    for key in ("probe/logreg/codes", "probe/knn/codes", "probe/logreg/untrained_encoder"):
        assert 0.1 < metrics.get(key, reference.get(key)) <= 1
    assert 0 < metrics["mse"] < 0.3 and metrics["latent_norm"] > 0
    assert report["settings"]["fit_images"] == 2000
    # An 8x8 grid of 30-pixel cells (4 rows of originals over 4 of reconstructions; 64 samples), drawn
    # larger, with a title above and a caption below: taller than wide.
    for name in ("reconstructions.png", "samples.png"):
        width, height = Image.open(out / name).size
        assert width >= 8 * 30 + 2 and height > width, (name, width, height)
    assert (out / "codes_pca.png").stat().st_size > 10_000
    assert f"Run folder: {out}" in result.stdout + result.stderr


def test_evaluate_errors_are_one_line(
    trained_run: Path, eval_classifier: Path, data_root: Path, tmp_path: Path
) -> None:
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    cases = [
        (run_cli("encdec_pl.evaluate", f"data.root={data_root}", f"hydra.run.dir={tmp_path}/a"),
         "ckpt_path is required"),
        (evaluate_cli(ckpt, eval_classifier, tmp_path / "b", data_root, "data=fashion_mnist"),
         "was trained on mnist but data.dataset=fashion_mnist: add data=mnist"),
        (evaluate_cli(ckpt, tmp_path / "none.pt", tmp_path / "c", data_root, "classifier.train_if_missing=false"),
         "train it once with python -m encdec_pl.classifier data=mnist"),
    ]  # fmt: skip
    for result, message in cases:
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr[-2000:]


def test_vae_trains_with_the_quality_callback_and_is_scored_with_a_classifier_trained_on_demand(
    eval_classifier: Path, data_root: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "vae"
    result = run_cli(
        "encdec_pl.train",
        "model=vae",
        "callbacks=quality",
        f"callbacks.quality.classifier_path={eval_classifier}",
        "callbacks.quality.every_n_steps=10",
        "callbacks.quality.num_images=300",
        "callbacks.quality.fit_size=500",
        "callbacks.quality.num_samples=300",
        "trainer.max_steps=20",
        "trainer.limit_val_batches=2",
        "trainer.accelerator=cpu",
        "logger=csv",
        f"data.root={data_root}",
        "data.num_workers=0",
        f"hydra.run.dir={run_dir}",
        "extras.print_config=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(next((run_dir / "csv").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    quality_steps = [int(r["step"]) for r in rows if r.get("quality/frechet/samples")]
    assert quality_steps[0] == 0 and len(quality_steps) == 3  # before training, then every 10 steps
    assert any(r.get("train/kl") for r in rows) and any(r.get("train/latent_norm") for r in rows)
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert {"quality/label_preservation", "quality/probe/knn/codes", "train/kl"} <= summary["metrics"].keys()
    assert (run_dir / "images" / "quality.png").is_file()

    # The same `evaluate` scores the baseline; no classifier at the new path, so it is trained first.
    fresh = tmp_path / "cache" / "mnist.pt"
    out = tmp_path / "evaluation"
    result = evaluate_cli(
        run_dir / "checkpoints" / "last.ckpt", fresh, out, data_root,
        "classifier.epochs=1", "classifier.limit_train_batches=10", "references=false", size=500,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "metrics.json").read_text())
    assert report["model"] == "VAE" and report["reference"] == {}
    assert fresh.is_file() and report["classifier"]["steps"] == 10
    assert report["classifier"]["test_accuracy"] == load_classifier(fresh, "mnist")[1]["test_accuracy"]
