"""EDE's recipe and the baselines' best settings (docs/recipe.md): the experiment configs compose to
what they promise and train; the AE at its best settings learns digits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import compose_config, run_cli

PUBLISHED = {
    "model": {
        "latent_dim": 32,
        "width": 32,
        "dropout": 0.03125,
        "optimizer": "rmsprop",
        "lr": 1e-4,
        "decoder_norm": "none",
        "code_norm": "none",
    },
    "loss": {"margin": 1.0, "pull_weight": 1.0, "push_weight": 1.0, "fake_weight": 2.0},
    "data": {"batch_size": 128, "rotation": 10.0},
    "trainer": {"max_epochs": 20, "max_steps": -1, "max_time": None},
}


@pytest.mark.parametrize("experiment", ["ede_published", "ede_mnist", "ede_fashion_mnist"])
def test_published_experiments_set_every_published_setting(experiment: str, tmp_path: Path) -> None:
    # Whatever the defaults of `python -m encdec_pl.train` are, these reproduce the published run.
    cfg = compose_config("train", [f"experiment={experiment}"], tmp_path)
    for group, settings in PUBLISHED.items():
        for key, value in settings.items():
            assert cfg[group][key] == value, f"{experiment}: {group}.{key}"
    assert cfg.model._target_ == "encdec_pl.models.EncDec"
    assert "lr_schedule" not in cfg.callbacks  # the published rate is constant


@pytest.mark.parametrize(
    ("experiment", "dataset"), [("ede_mnist_fast", "mnist"), ("ede_fashion_mnist_fast", "fashion_mnist")]
)
def test_recipe_sets_its_own_budget_and_takes_overrides(experiment: str, dataset: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"experiment={experiment}"], tmp_path)
    assert cfg.data.dataset == dataset
    assert cfg.trainer.max_steps > 0  # the measured run's budget, not 20 epochs
    assert cfg.model.optimizer == "adam"
    assert cfg.model.decoder_norm == "batch"
    assert cfg.model.code_norm == "rms" and cfg.loss.margin == 0.3  # codes at RMS 1, margin for that scale
    assert cfg.loss.fake_weight == 8.0  # docs/recipe.md, "Fake weight": 2, 4, 8 drew ever better samples; 16 did not
    assert cfg.callbacks.lr_schedule._target_.endswith("CosineDecay")  # decays over the recipe's own max_steps
    overridden = compose_config("train", [f"experiment={experiment}", "loss.fake_weight=4"], tmp_path)
    assert overridden.loss.fake_weight == 4.0


def test_fashion_mnist_twin_is_the_recipe_at_its_measured_rate(tmp_path: Path) -> None:
    recipe = compose_config("train", ["experiment=ede_mnist_fast"], tmp_path)
    twin = compose_config("train", ["experiment=ede_fashion_mnist_fast"], tmp_path)
    # docs/recipe.md, "The Fashion-MNIST twin": at MNIST's 1e-3 two seeds of three collapsed, at 3.3e-4 none did
    assert twin.model.lr == pytest.approx(3.3e-4)
    # every other setting has one home, the MNIST recipe: a change there reaches the twin
    assert {k: v for k, v in twin.model.items() if k != "lr"} == {k: v for k, v in recipe.model.items() if k != "lr"}
    assert twin.loss == recipe.loss and twin.trainer == recipe.trainer
    assert twin.data.batch_size == recipe.data.batch_size and twin.data.rotation == recipe.data.rotation


@pytest.mark.parametrize(("experiment", "target"), [("ae_mnist_best", "Autoencoder"), ("vae_mnist_best", "VAE")])
def test_baseline_best_settings_select_their_model(experiment: str, target: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"experiment={experiment}"], tmp_path)
    assert cfg.model._target_ == f"encdec_pl.models.{target}"
    assert "fake_weight" not in cfg.loss  # the baseline's own loss group


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["ede_mnist_fast", "ae_mnist_best", "vae_mnist_best"])
def test_experiment_trains_a_few_steps(experiment: str, tmp_path: Path, data_root: Path) -> None:
    result = run_cli(
        "encdec_pl.train",
        f"experiment={experiment}",
        f"hydra.run.dir={tmp_path}",
        f"data.root={data_root}",
        "trainer.max_steps=5",
        "trainer.limit_val_batches=2",
        "trainer.accelerator=cpu",
        "logger=csv",
        "callbacks=none",
        "data.num_workers=0",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["status"] == "completed" and summary["global_step"] == 5


def short_run(tmp_path: Path, data_root: Path, classifier: Path, steps: int, *overrides: str) -> dict[str, float]:
    """Train `steps` steps (seed 0) and return the final model's quality metrics (callbacks=quality)."""
    result = run_cli(
        "encdec_pl.train",
        *overrides,
        f"hydra.run.dir={tmp_path}",
        f"data.root={data_root}",
        f"trainer.max_steps={steps}",
        "trainer.max_epochs=-1",
        "trainer.num_sanity_val_steps=0",
        "trainer.check_val_every_n_epoch=1000",
        "trainer.accelerator=cpu",
        "callbacks=quality",
        "callbacks.quality.every_n_steps=100000",
        f"callbacks.quality.classifier_path={classifier}",
        "logger=csv",
        "data.num_workers=0",
        "seed=0",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads((tmp_path / "metrics.json").read_text())["metrics"]


@pytest.mark.slow
def test_autoencoder_learns_past_a_constant_image(tmp_path: Path, data_root: Path, eval_classifier: Path) -> None:
    # The AE defect (docs/recipe.md): with pixel MSE the decoder's sigmoid saturated in the first steps
    # and the loss sat at ~0.11, a black image, for good. The AE at its best settings must learn digits.
    metrics = short_run(tmp_path, data_root, eval_classifier, AE_STEPS, "experiment=ae_mnist_best")
    print("AE:", {k: round(v, 4) for k, v in metrics.items() if k.startswith("quality/")})
    assert metrics["quality/mse"] < AE_MAX_MSE  # a black image: 0.11
    assert metrics["quality/label_preservation"] > 0.3  # chance: 0.1


# Measured: at 100 steps, seed 0, with the tests' classifier, quality/mse 0.041 and label preservation
# 0.84 (0.058 and 0.71 at step 50; 0.034 and 0.80 at 300, docs/recipe.md); a black image has mse 0.11
# and label preservation ~0.1. 100 steps, not 300: the same verdict for a third of the CI time.
AE_STEPS = 100
AE_MAX_MSE = 0.06


@pytest.mark.slow
def test_recipe_beats_the_published_settings_at_the_same_steps(
    tmp_path: Path, data_root: Path, eval_classifier: Path
) -> None:
    # The recipe's reason to exist (docs/recipe.md): at the same number of steps its reconstructions keep far
    # more labels than the published settings'. Seed 0, RECIPE_STEPS steps each, the tests' classifier.
    recipe = short_run(tmp_path / "recipe", data_root, eval_classifier, RECIPE_STEPS, "experiment=ede_mnist_fast")
    published = short_run(tmp_path / "published", data_root, eval_classifier, RECIPE_STEPS, "experiment=ede_published")
    gain = recipe["quality/label_preservation"] - published["quality/label_preservation"]
    print(f"label preservation after {RECIPE_STEPS} steps: recipe {recipe['quality/label_preservation']:.3f}, "
          f"published {published['quality/label_preservation']:.3f}")  # fmt: skip
    assert gain > RECIPE_MARGIN


# Measured with the tests' classifier after 100 steps: seed 0 recipe 0.282, published 0.112 (gap 0.17); seed 1
# 0.316 and 0.100 (gap 0.22); after 200 steps, seed 0, 0.385 and 0.113 (docs/recipe.md, "The regression test").
# The recipe with its codes at RMS 1 (2026-12-07): seed 0, 0.464 against 0.093 (gap 0.37). At fake weight 8
# (since 2026-12-08): seed 0, 0.380 against 0.112 (gap 0.27); seed 1, 0.336 against 0.100 (gap 0.24). The
# published settings stay at chance (0.1) this early, so the margin asks the recipe to be well above it.
# 100 steps, not 200: at 200 it was the longest test of the suite (715 s on one worker of the 2-core CPU).
RECIPE_STEPS = 100
RECIPE_MARGIN = 0.10
