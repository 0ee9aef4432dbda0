"""Draw samples from a checkpoint: `python -m encdec_pl.sample ckpt_path=<checkpoint> num_samples=N`.

Codes come from a Gaussian fitted to the codes of the training data (encdec_pl.models.sampling),
decoded. A tabular model's rows are repaired into valid values and written as samples.csv
with the original column names, beside validity.json (how valid the raw decoder output was
before repair, and after); an image model's samples go to samples.png (a grid) and
samples.pt (the tensor). Everything lands in the run folder (outputs/sample/runs/<date>_<time>/,
or hydra.run.dir).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import make_grid, save_image

from encdec_pl.errors import CheckpointError, ConfigError, is_positive_int
from encdec_pl.evaluation.scoring import Split
from encdec_pl.models.base import BaseAutoencoder, checkpoint_model_class
from encdec_pl.models.checkpoints import read_checkpoint
from encdec_pl.models.sampling import decode_all, draw_codes, encode_all, fit_code_gaussian, sample_table
from encdec_pl.runtime.cli import run_cli, start_run, user_errors, write_summary
from encdec_pl.runtime.config import CONFIG_PACKAGE, _abspath, construct
from encdec_pl.runtime.devices import pick_device

log = logging.getLogger(__name__)


def sample(cfg: DictConfig) -> dict[str, Any]:
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("ckpt_path is required: python -m encdec_pl.sample ckpt_path=<run>/checkpoints/last.ckpt")
    if not (isinstance(cfg.num_samples, int) and cfg.num_samples > 0):
        raise ConfigError(f"num_samples={cfg.num_samples!r} is invalid: must be a positive integer")
    if not (cfg.fit_size is None or is_positive_int(cfg.fit_size)):
        raise ConfigError(f"fit_size={cfg.fit_size!r} is invalid: must be a positive integer, or null for all images")
    ckpt_path = Path(_abspath(str(cfg.ckpt_path)))
    if not ckpt_path.is_file():
        raise CheckpointError(f"ckpt_path={cfg.ckpt_path}: no checkpoint file at {ckpt_path}")
    output_dir = start_run(cfg)
    checkpoint = read_checkpoint(ckpt_path)
    tabular = getattr(checkpoint_model_class(ckpt_path), "is_tabular", False)
    model = BaseAutoencoder.load_from_checkpoint(ckpt_path, map_location=pick_device(cfg.device))
    if tabular:
        from encdec_pl.data.adult import datamodule_from_checkpoint
        from encdec_pl.data.tabular import validity

        datamodule = datamodule_from_checkpoint(checkpoint, cfg.data.root, bool(cfg.data.get("download", False)))
        rows, raw_validity = sample_table(model, datamodule.train_set.rows, cfg.num_samples, cfg.seed)
        files = {"samples": output_dir / "samples.csv", "validity": output_dir / "validity.json"}
        rows.to_csv(files["samples"], index=False)
        summary = {"raw": raw_validity, "repaired": {"rows": validity(rows, model.encoding.spec)}}
        files["validity"].write_text(json.dumps(summary, indent=2) + "\n")
        log.info("%d rows from %s; valid rows before repair %.4f, after %.4f",
                 len(rows), type(model).__name__, raw_validity["rows"], summary["repaired"]["rows"])  # fmt: skip
    else:
        trained_on = (checkpoint.get("datamodule_hyper_parameters") or {}).get("dataset")
        if trained_on is not None and trained_on != cfg.data.dataset:
            raise ConfigError(
                f"{ckpt_path} was trained on {trained_on} but data.dataset={cfg.data.dataset}: add data={trained_on}"
            )
        datamodule = construct(cfg, "data")
        datamodule.prepare_data()
        datamodule.setup()
        fit = Split(*datamodule.train_set.as_tensors()).subset(cfg.fit_size, cfg.seed)  # as evaluate picks them
        mean, cov = fit_code_gaussian(encode_all(model, fit.images))
        samples = decode_all(model, draw_codes(mean, cov, cfg.num_samples, cfg.seed))
        files = {"samples": output_dir / "samples.pt", "grid": output_dir / "samples.png"}
        torch.save(samples, files["samples"])
        save_image(make_grid(samples[:256], nrow=cfg.images_per_row, padding=2, pad_value=0.5), files["grid"])
        log.info("%d images from %s (Gaussian fitted to %d training codes)", len(samples), type(model).__name__,
                 len(fit.images))  # fmt: skip
    metrics = {f"validity_raw/{k}": v for k, v in raw_validity.items()} if tabular else {"fitted_on": len(fit.images)}
    if tabular:
        metrics["validity_repaired/rows"] = summary["repaired"]["rows"]
    write_summary(output_dir, "sample", "completed", checkpoint.get("global_step"), metrics,
                  checkpoint=str(ckpt_path), model=type(model).__name__, num_samples=cfg.num_samples,
                  files={name: str(path) for name, path in files.items()})  # fmt: skip
    log.info("Run folder: %s\n%s", output_dir, "\n".join(f"  {name}: {path}" for name, path in files.items()))
    return {name: str(path) for name, path in files.items()}


@hydra.main(version_base="1.3", config_path=CONFIG_PACKAGE, config_name="sample")
@user_errors
def main(cfg: DictConfig) -> dict[str, Any]:
    return sample(cfg)


if __name__ == "__main__":
    run_cli(main)
