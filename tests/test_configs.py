"""The config tree composes for every option, builds real objects, and mirrors the code."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import lightning as L
import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig

from encdec_pl import EncDec
from encdec_pl.data import MNISTDataModule
from encdec_pl.runtime.config import build_callbacks, construct

from .conftest import REPO_ROOT, compose_config

CONF = REPO_ROOT / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_defaults_are_the_recipe(cfg_train: DictConfig, tmp_path: Path) -> None:
    # The first command a user runs trains the recipe (docs/recipe.md), the run experiment=ede_mnist_fast measured.
    recipe = compose_config("train", ["experiment=ede_mnist_fast"], tmp_path)
    for group in ("model", "loss"):
        assert cfg_train[group] == recipe[group], group
    for key in ("batch_size", "rotation", "dataset"):
        assert cfg_train.data[key] == recipe.data[key], key
    # the recipe's 3000 steps in whole epochs (7 x 430 = 3010 steps)
    assert cfg_train.trainer.max_epochs == 7 and cfg_train.trainer.max_steps == -1 and recipe.trainer.max_steps == 3000
    assert cfg_train.callbacks.lr_schedule == recipe.callbacks.lr_schedule
    assert cfg_train.model.optimizer == "adam" and cfg_train.model.decoder_norm == "batch"
    assert cfg_train.logger.keys() == {"csv"}  # the fixture swapped W&B out


def test_data_root_defaults_to_env_then_dot_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCDEC_DATA_DIR", "/somewhere/datasets")
    assert compose_config("train", [], tmp_path).data.root == "/somewhere/datasets"
    monkeypatch.delenv("ENCDEC_DATA_DIR")
    assert compose_config("train", [], tmp_path).data.root == str(REPO_ROOT / "data")
    # a relative ENCDEC_DATA_DIR counts from where the command started
    monkeypatch.setenv("ENCDEC_DATA_DIR", "../shared/datasets")
    assert compose_config("train", [], tmp_path).data.root == str(REPO_ROOT.parent / "shared" / "datasets")


@pytest.mark.parametrize(
    "group", ["model", "loss", "data", "trainer", "speed", "logger", "callbacks", "experiment", "debug"]
)
def test_every_option_of_every_group_composes(group: str, tmp_path: Path) -> None:
    assert options(group), f"conf/{group} is empty"
    for option in options(group):
        cfg = compose_config("train", [f"{group}={option}"], tmp_path)
        assert cfg.model and cfg.trainer


def test_trainer_config_lists_only_real_trainer_arguments(cfg_train: DictConfig) -> None:
    trainer_args = set(inspect.signature(L.Trainer.__init__).parameters)
    listed = set(cfg_train.trainer) - {"_target_"}
    assert listed <= trainer_args, f"not Trainer arguments: {listed - trainer_args}"
    # everything but the objects that come from other groups is settable as trainer.<argument>
    assert trainer_args - listed - {"self", "logger", "callbacks", "plugins", "model_registry"} == set()


def test_model_and_data_configs_name_constructor_arguments(cfg_train: DictConfig) -> None:
    model_args = set(inspect.signature(EncDec.__init__).parameters) - {"self"}
    assert (set(cfg_train.model) | set(cfg_train.loss)) - {"_target_"} == model_args
    data_args = set(inspect.signature(MNISTDataModule.__init__).parameters) - {"self"}
    assert set(cfg_train.data) - {"_target_"} == data_args


def test_composed_config_builds_real_objects(cfg_train: DictConfig) -> None:
    model = construct(cfg_train, "model", "loss")
    assert isinstance(model, EncDec) and model.hparams["fake_weight"] == 8.0  # the recipe's (conf/loss/ede.yaml)
    assert isinstance(construct(cfg_train, "data"), MNISTDataModule)
    callbacks = build_callbacks(cfg_train.callbacks)
    assert {type(c).__name__ for c in callbacks} >= {
        "BestCheckpoint",
        "LastCheckpoint",
        "ReconstructionGrid",
        "LatentNormPlot",
        "CosineDecay",
    }
    trainer = instantiate(cfg_train.trainer, callbacks=callbacks, logger=False)
    assert isinstance(trainer, L.Trainer) and trainer.max_epochs == 7


def test_overrides_reach_the_objects(tmp_path: Path) -> None:
    cfg = compose_config("train", ["loss.fake_weight=0.5", "model.latent_dim=8", "trainer.max_steps=7"], tmp_path)
    model = construct(cfg, "model", "loss")
    assert model.loss.fake_weight == 0.5 and model.encoder.head[-1].out_features == 8
    assert instantiate(cfg.trainer, logger=False).max_steps == 7


def test_adult_experiment_is_the_measured_run(tmp_path: Path) -> None:
    # experiment=ede_adult must train what docs/tabular.md measured: the record's own command, composed.
    record = json.loads((REPO_ROOT / "docs/results/tabular/rate_ede_fw2_e240_lr3e-4_s0.json").read_text())
    measured = [o for o in record["train_command"].split()[3:] if not o.startswith(("seed=", "logger=", "~"))]
    # train's defaults when the record ran, since changed (codes of free size at margin 1; now code_norm=rms, 0.3)
    measured = ["model.code_norm=none", "loss.margin=1.0", *measured]
    experiment, run = (compose_config("train", o, tmp_path) for o in (["experiment=ede_adult"], measured))
    for group in ("model", "loss", "data", "network"):
        assert experiment[group] == run[group], group
    assert experiment.trainer.max_epochs == run.trainer.max_epochs == record["epochs"] == 240
    assert experiment.model.lr == record["model_hparams"]["lr"] == 3e-4
    assert experiment.loss.margin == record["model_hparams"]["margin"] == 1.0
    assert experiment.model.code_norm == "none"  # the record predates the setting: its codes were of free size


def test_fashion_mnist_experiment_switches_dataset(tmp_path: Path) -> None:
    cfg = compose_config("train", ["experiment=ede_fashion_mnist"], tmp_path)
    assert cfg.data.dataset == "fashion_mnist" and "fashion_mnist" in cfg.tags


def test_debug_presets_run_on_cpu_without_wandb(tmp_path: Path) -> None:
    for preset in options("debug"):
        cfg = compose_config("train", [f"debug={preset}"], tmp_path)
        assert cfg.trainer.accelerator == "cpu" and "wandb" not in cfg.logger
