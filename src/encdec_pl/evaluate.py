"""Score a checkpoint: `python -m encdec_pl.evaluate ckpt_path=<run>/checkpoints/last.ckpt [data=...]`.

Loads any model of the project (EDE, AE, VAE), scores it on the test split with the
metrics of `encdec_pl.evaluation.metrics` in the feature space of the evaluation classifier
(`encdec_pl.classifier`, trained on first use and cached), and computes reference
scores (raw pixels, an untrained encoder, real against real) beside it. Writes into
its run folder (outputs/evaluate/runs/<date>_<time>/, or hydra.run.dir):
metrics.json, reconstructions.png, samples.png, codes_pca.png, config.yaml, evaluate.log.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import matplotlib
import rich
import rich.table
import torch
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import make_grid, save_image

from encdec_pl.errors import CheckpointError, ConfigError
from encdec_pl.evaluation.scoring import Scores, Split, judge, reference_scores, score_model
from encdec_pl.models.base import BaseAutoencoder, checkpoint_model_class
from encdec_pl.models.checkpoints import read_checkpoint
from encdec_pl.runtime.callbacks.reconstructions import reconstruction_grid
from encdec_pl.runtime.classifier import classifier_for
from encdec_pl.runtime.cli import run_cli, start_run, user_errors, write_summary
from encdec_pl.runtime.config import CONFIG_PACKAGE, _abspath, construct
from encdec_pl.runtime.devices import pick_device

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

log = logging.getLogger(__name__)


def checkpoint_dataset(checkpoint: dict[str, Any]) -> str | None:
    """The dataset a training checkpoint's data module was built for (Lightning saves its arguments)."""
    return (checkpoint.get("datamodule_hyper_parameters") or {}).get("dataset")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("ckpt_path is required: python -m encdec_pl.evaluate ckpt_path=<run>/checkpoints/last.ckpt")
    ckpt_path = Path(_abspath(str(cfg.ckpt_path)))
    if not ckpt_path.is_file():
        raise CheckpointError(f"ckpt_path={cfg.ckpt_path}: no checkpoint file at {ckpt_path}")
    output_dir = start_run(cfg)

    checkpoint = read_checkpoint(ckpt_path)
    if getattr(checkpoint_model_class(ckpt_path), "is_tabular", False):
        return evaluate_table(cfg, ckpt_path, checkpoint, output_dir)
    trained_on = checkpoint_dataset(checkpoint)
    if trained_on is not None and trained_on != cfg.data.dataset:
        raise ConfigError(
            f"{ckpt_path} was trained on {trained_on} but data.dataset={cfg.data.dataset}: add data={trained_on}"
        )
    device = pick_device(cfg.device)
    model = BaseAutoencoder.load_from_checkpoint(ckpt_path, map_location=device)
    L.seed_everything(cfg.seed, verbose=False)  # again: the fresh weights do not depend on what loading drew
    untrained = checkpoint_model_class(ckpt_path)(**model.hparams).to(device)  # same architecture, fresh weights

    datamodule = construct(cfg, "data")
    datamodule.prepare_data()
    datamodule.setup()
    classifier, classifier_info = classifier_for(cfg, datamodule)
    classifier.to(device)
    test = Split(*datamodule.test_set.as_tensors())
    fit = Split(*datamodule.train_set.as_tensors()).subset(cfg.probe.fit_size, cfg.seed)
    log.info(
        "Scoring %s (step %s) on the %s test split (%d images); probes fit on %d training images",
        type(model).__name__, checkpoint.get("global_step"), cfg.data.dataset, len(test.images), len(fit.images),
    )  # fmt: skip
    judged_test = judge(classifier, test.images)
    scores = score_model(model, classifier, test, fit, cfg.num_samples, cfg.probe.knn_k, cfg.seed, judged_test)
    reference = {}
    if cfg.references:
        val = Split(*datamodule.val_set.as_tensors())
        reference = reference_scores(untrained, classifier, test, fit, val, cfg.probe.knn_k, judged_test)

    result = {
        "command": "evaluate",
        "status": "completed",
        "global_step": checkpoint.get("global_step"),
        "metrics": scores.metrics,
        "checkpoint": str(ckpt_path),
        "model": type(model).__name__,
        "model_hparams": dict(model.hparams),
        "dataset": cfg.data.dataset,
        "classifier": {"path": str(cfg.classifier.path), **classifier_info},
        "settings": {
            "num_samples": cfg.num_samples,
            "fit_images": len(fit.images),
            **OmegaConf.to_container(cfg.probe),
        },
        "reference": reference,
    }
    write_summary(output_dir, **result)
    figures = save_figures(scores, test, output_dir, cfg.figures.num_images, cfg.figures.images_per_row)
    report(result, output_dir, figures)
    return result


def evaluate_table(cfg: DictConfig, ckpt_path: Path, checkpoint: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Score a tabular checkpoint on the official test split (encdec_pl.evaluation.tabular); write metrics.json
    and samples.csv (the synthetic rows scored). The data module is the checkpoint's own (split, encoding)."""
    from encdec_pl.data.adult import datamodule_from_checkpoint
    from encdec_pl.evaluation.tabular import score_tabular_model

    model = BaseAutoencoder.load_from_checkpoint(ckpt_path, map_location=pick_device(cfg.device))
    datamodule = datamodule_from_checkpoint(checkpoint, cfg.data.root, download=bool(cfg.data.get("download", False)))
    log.info("Scoring %s (step %s) on the Adult test split (%d rows)",
             type(model).__name__, checkpoint.get("global_step"), len(datamodule.test_table))  # fmt: skip
    metrics, synthetic = score_tabular_model(model, datamodule, cfg.table_samples, cfg.seed)
    synthetic.to_csv(output_dir / "samples.csv", index=False)
    result = {
        "command": "evaluate",
        "status": "completed",
        "global_step": checkpoint.get("global_step"),
        "metrics": metrics,
        "checkpoint": str(ckpt_path),
        "model": type(model).__name__,
        "model_hparams": {k: v for k, v in model.hparams.items() if k != "table"},
        "dataset": "adult",
        "settings": {"num_samples": len(synthetic), "seed": cfg.seed},
        "reference": {},
    }
    write_summary(output_dir, **result)
    table = rich.table.Table(title=f"{result['model']} on adult (step {result['global_step']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}")
    rich.print(table)
    log.info("Run folder: %s\n  metrics: %s\n  samples: %s", output_dir, output_dir / "metrics.json",
             output_dir / "samples.csv")  # fmt: skip
    return result


def save_figures(scores: Scores, test: Split, output_dir: Path, num_images: int, per_row: int) -> list[Path]:
    """reconstructions.png, samples.png and codes_pca.png in `output_dir`."""
    paths = [output_dir / "reconstructions.png", output_dir / "samples.png", output_dir / "codes_pca.png"]
    save_image(reconstruction_grid(test.images[:num_images], scores.reconstructions[:num_images], per_row), paths[0])
    save_image(make_grid(scores.samples[: 2 * num_images], nrow=per_row, padding=2, pad_value=0.5), paths[1])
    codes = scores.test_codes
    _, _, components = torch.pca_lowrank(codes, q=2)
    projected = (codes - codes.mean(dim=0)) @ components
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(projected[:, 0], projected[:, 1], c=test.labels, cmap="tab10", s=2, alpha=0.6)
    fig.colorbar(points, ax=ax, label="label")
    ax.set_title("test codes E(x), first two principal components")
    fig.tight_layout()
    fig.savefig(paths[2], dpi=100)
    plt.close(fig)
    return paths


def report(result: dict[str, Any], output_dir: Path, figures: list[Path]) -> None:
    table = rich.table.Table(title=f"{result['model']} on {result['dataset']} (step {result['global_step']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in {**result["metrics"], **{f"reference: {k}": v for k, v in result["reference"].items()}}.items():
        table.add_row(key, f"{value:.4f}")
    table.add_row("classifier test accuracy", f"{result['classifier']['test_accuracy']:.4f}")
    rich.print(table)
    log.info(
        "Run folder: %s\n  metrics: %s\n  figures: %s",
        output_dir, output_dir / "metrics.json", ", ".join(p.name for p in figures),
    )  # fmt: skip


@hydra.main(version_base="1.3", config_path=CONFIG_PACKAGE, config_name="evaluate")
@user_errors
def main(cfg: DictConfig) -> dict[str, Any]:
    return evaluate(cfg)


if __name__ == "__main__":
    run_cli(main)
