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
from torchvision.utils import make_grid

from encdec_pl.errors import ConfigError
from encdec_pl.evaluation.scoring import Scores, Split, judge, reference_scores, score_model
from encdec_pl.models.base import BaseAutoencoder, checkpoint_model_class
from encdec_pl.models.checkpoints import read_checkpoint
from encdec_pl.runtime.callbacks.reconstructions import reconstruction_grid
from encdec_pl.runtime.classifier import classifier_for
from encdec_pl.runtime.cli import run_cli, start_run, user_errors, write_summary
from encdec_pl.runtime.config import CONFIG_PACKAGE, construct
from encdec_pl.runtime.devices import pick_device
from encdec_pl.runtime.resume import checkpoint_to_score

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

log = logging.getLogger(__name__)


def checkpoint_dataset(checkpoint: dict[str, Any]) -> str | None:
    """The dataset a training checkpoint's data module was built for (Lightning saves its arguments)."""
    return (checkpoint.get("datamodule_hyper_parameters") or {}).get("dataset")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("ckpt_path is required: python -m encdec_pl.evaluate ckpt_path=<run>/checkpoints/last.ckpt")
    ckpt_path = checkpoint_to_score(str(cfg.ckpt_path), Path(cfg.paths.log_dir) / "train" / "runs")
    checkpoint = read_checkpoint(ckpt_path)
    if getattr(checkpoint_model_class(ckpt_path), "is_tabular", False):
        return evaluate_table(cfg, ckpt_path, checkpoint, start_run(cfg))
    trained_on = checkpoint_dataset(checkpoint)
    if trained_on is not None and trained_on != cfg.data.dataset:
        raise ConfigError(
            f"{ckpt_path} was trained on {trained_on} but data.dataset={cfg.data.dataset}: add data={trained_on}"
        )
    output_dir = start_run(cfg)  # after the checks: a rejected command writes nothing
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
    about = f"{type(model).__name__}, step {checkpoint.get('global_step')}, {cfg.data.dataset} test split"
    figures = save_figures(scores, test, output_dir, cfg.figures.num_images, cfg.figures.images_per_row, about)
    report(result, output_dir, figures)
    return result


def evaluate_table(cfg: DictConfig, ckpt_path: Path, checkpoint: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Score a tabular checkpoint on the official test split, or with table_split=val on the validation rows
    (encdec_pl.evaluation.tabular); write metrics.json and samples.csv (the synthetic rows scored). The data
    module is the checkpoint's own (split, encoding)."""
    from encdec_pl.data.adult import datamodule_from_checkpoint
    from encdec_pl.evaluation.tabular import score_tabular_model

    model = BaseAutoencoder.load_from_checkpoint(ckpt_path, map_location=pick_device(cfg.device))
    datamodule = datamodule_from_checkpoint(checkpoint, cfg.data.root, download=bool(cfg.data.get("download", False)))
    split = cfg.get("table_split", "test")
    rows = len(datamodule.val_table if split == "val" else datamodule.test_table)
    log.info("Scoring %s (step %s) on the Adult %s split (%d rows)", type(model).__name__,
             checkpoint.get("global_step"), split, rows)  # fmt: skip
    metrics, synthetic = score_tabular_model(model, datamodule, cfg.table_samples, cfg.seed, split=split)
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
        "settings": {"num_samples": len(synthetic), "seed": cfg.seed, "split": split},
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


def save_figures(
    scores: Scores, test: Split, output_dir: Path, num_images: int, per_row: int, about: str = ""
) -> list[Path]:
    """reconstructions.png, samples.png and codes_pca.png in `output_dir`, each titled; `about` names the model."""
    paths = [output_dir / "reconstructions.png", output_dir / "samples.png", output_dir / "codes_pca.png"]
    suffix = f" - {about}" if about else ""
    grid = reconstruction_grid(test.images[:num_images], scores.reconstructions[:num_images], per_row)
    _save_titled_image(
        grid,
        paths[0],
        f"Reconstructions{suffix}",
        "rows in pairs: test images x (upper row) above their reconstructions D(E(x)) (lower row)",
    )
    samples = make_grid(scores.samples[: 2 * num_images], nrow=per_row, padding=2, pad_value=0.5)
    _save_titled_image(
        samples, paths[1], f"Samples{suffix}", "D(z), z drawn from the Gaussian fitted to the training codes"
    )
    codes = scores.test_codes
    _, _, components = torch.pca_lowrank(codes, q=2)
    projected = (codes - codes.mean(dim=0)) @ components
    variance = projected.var(dim=0) / codes.var(dim=0).sum()
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(projected[:, 0], projected[:, 1], c=test.labels, cmap="tab10", s=2, alpha=0.6)
    fig.colorbar(points, ax=ax, label="label (digit or class)")
    ax.set_xlabel(f"principal component 1 ({100 * float(variance[0]):.0f}% of the code variance)")
    ax.set_ylabel(f"principal component 2 ({100 * float(variance[1]):.0f}% of the code variance)")
    ax.set_title("Test codes E(x), first two principal components" + (f"\n{about}" if about else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(paths[2], dpi=100)
    plt.close(fig)
    return paths


def _save_titled_image(grid: torch.Tensor, path: Path, title: str, caption: str) -> None:
    """A (3, H, W) image grid saved with a title above it and a caption below."""
    height, width = grid.shape[1:]
    scale = 4 / 100  # inches per 100 pixels, about the grid's own size
    fig = plt.figure(figsize=(max(width * scale, 4.5), height * scale + 0.9))
    ax = fig.add_axes((0, 0.45 / (height * scale + 0.9), 1, height * scale / (height * scale + 0.9)))
    ax.imshow(grid.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(title, fontsize=10, y=0.98)
    fig.text(0.5, 0.02, caption, ha="center", va="bottom", fontsize=8, wrap=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
