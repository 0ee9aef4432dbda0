"""The tabular anchors and references: `python -m encdec_pl.bench.tabular [methods=[...]] [epochs=...]`.

CTGAN and TVAE (the `ctgan` package, an optional dependency: licensed BUSL-1.1) train on the
same training rows as `data=adult` (adult.data less the validation rows), with their own
encodings (mode-specific normalisation, one-hot), and sample as many rows as there are
training rows. Two references need no training: `holdout` (real rows as the synthetic set:
the training rows for every score, and for the DCR share the validation rows, which no model
saw) and `independent` (each column resampled on its own). Each is scored by
`encdec_pl.evaluation.tabular.score_synthetic`, as `evaluate` scores a tabular checkpoint,
and leaves one JSON record (command, machine, wall time, metrics) in `records_dir`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from encdec_pl.data.adult import CATEGORICAL, AdultDataModule
from encdec_pl.errors import ConfigError
from encdec_pl.evaluation.tabular import independent_columns, score_synthetic
from encdec_pl.runtime.cli import run_cli, start_run, user_errors
from encdec_pl.runtime.config import CONFIG_PACKAGE

log = logging.getLogger(__name__)

METHODS = ("holdout", "independent", "ctgan", "tvae")


def anchor(method: str, epochs: int, batch_size: int) -> Any:
    try:
        from ctgan import CTGAN, TVAE
    except ImportError as err:
        raise ConfigError(
            f"methods={method} needs the optional `ctgan` package (BUSL-1.1): pip install -e '.[anchors]'"
        ) from err
    if method == "ctgan":
        return CTGAN(epochs=epochs, batch_size=batch_size, cuda=torch.cuda.is_available(), verbose=False)
    return TVAE(epochs=epochs, batch_size=batch_size, cuda=torch.cuda.is_available(), verbose=False)


def bench(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"methods: {unknown[0]!r} is not one of {list(METHODS)}")
    records_dir = Path(cfg.records_dir)
    records_dir.mkdir(parents=True, exist_ok=True)
    dm = AdultDataModule(str(cfg.data_root), download=True)
    dm.prepare_data()
    dm.setup()
    train, test, val = dm.train_table, dm.test_table, dm.val_table
    spec = dm.encoding.spec
    results = {}
    for method in cfg.methods:
        suffix = f"_e{cfg.epochs}" if method in ("ctgan", "tvae") else ""
        path = records_dir / f"{method}{suffix}_s{cfg.seed}.json"
        if path.is_file():
            log.info("%s: record exists (%s), skipped", method, path)
            results[method] = json.loads(path.read_text())
            continue
        torch.manual_seed(cfg.seed)
        start = time.time()
        dcr_rows = None
        if method == "holdout":
            synthetic, dcr_rows = train, val
        elif method == "independent":
            synthetic = independent_columns(train, len(train), seed=cfg.seed)
        else:
            model = anchor(method, cfg.epochs, cfg.batch_size)
            model.fit(train, discrete_columns=list(CATEGORICAL))
            synthetic = model.sample(len(train))
        fit_seconds = time.time() - start
        log.info("%s: %d rows in %.0f s; scoring", method, len(synthetic), fit_seconds)
        metrics = score_synthetic(synthetic, train, test, spec, dcr_rows=dcr_rows, seed=cfg.seed)
        record = {
            "name": f"{method}{suffix}_s{cfg.seed}",
            "command": f"python -m encdec_pl.bench.tabular methods=[{method}] epochs={cfg.epochs} seed={cfg.seed}",
            "machine": f"{cfg.machine}; torch {torch.__version__.split('+')[0]}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "train_wall_s": round(fit_seconds, 1) if method in ("ctgan", "tvae") else 0.0,
            "epochs": cfg.epochs if method in ("ctgan", "tvae") else None,
            "model": method,
            "metrics": metrics,
        }
        path.write_text(json.dumps(record, indent=2) + "\n")
        log.info("%s: %s\n  record: %s", method, {k: round(v, 4) for k, v in metrics.items()}, path)
        results[method] = record
    return results


@hydra.main(version_base="1.3", config_path=CONFIG_PACKAGE, config_name="bench_tabular")
@user_errors
def main(cfg: DictConfig) -> None:
    start_run(cfg)
    bench(cfg)


if __name__ == "__main__":
    run_cli(main)
