"""The W&B dashboard of the latent-norm equilibrium, checked against a real short sweep's offline runs.

The sweep: two real training jobs of 12 steps on MNIST (CPU) with callbacks=quality, W&B offline;
one job's equilibrium rule is met at once (tolerance 10), the other's never (tolerance 1e-12).
What the runs logged is read back from their own run files (runtime.history), so a metric that is
renamed in the code, or a panel that names a key nobody logs, fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from encdec_pl.report import NOT_REACHED, write_report
from encdec_pl.runtime.dashboard import (
    EQUILIBRIUM_REACHED,
    EQUILIBRIUM_STEP,
    EQUILIBRIUM_VALUE,
    STEP,
    WandbOffline,
    build_workspace,
    panel_keys,
    require_online,
)
from encdec_pl.runtime.dashboard_preview import read_logged_runs, render_workspace
from encdec_pl.runtime.sweep.labels import run_name_from

from .conftest import REPO_ROOT, compose_config, run_cli

STEPS = 12
EQUILIBRIUM_KEYS = {EQUILIBRIUM_STEP, EQUILIBRIUM_VALUE}  # logged only by a run that reached it


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, data_root: Path, eval_classifier: Path) -> Path:
    sweep_dir = tmp_path_factory.mktemp("dashboard") / "eq_sweep"
    result = run_cli(
        "encdec_pl.train",
        "-m",
        "callbacks.equilibrium.tolerance=10,1e-12",
        "loss.fake_weight=2",
        "model.code_norm=none",  # codes of free size: the recipe's codes at RMS 1 hold the latent norm at 1
        "loss.margin=1.0",
        "hydra/launcher=basic",
        f"hydra.sweep.dir={sweep_dir}",
        "logger.wandb.mode=offline",
        "callbacks=quality",
        f"callbacks.quality.classifier_path={eval_classifier}",
        "callbacks.quality.every_n_steps=6",
        "callbacks.quality.num_images=200",
        "callbacks.quality.fit_size=300",
        "callbacks.quality.num_samples=200",
        "callbacks.equilibrium.window=2",
        "callbacks.equilibrium.patience=1",
        f"data.root={data_root}",
        f"trainer.max_steps={STEPS}",
        f"trainer.val_check_interval={STEPS // 2}",
        "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
        "trainer.accelerator=cpu",
        "data.batch_size=32",
        "data.num_workers=0",
        "extras.print_config=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep_dir


@pytest.mark.slow
def test_every_panel_reads_keys_the_sweep_logged_and_the_preview_draws_them(sweep: Path, tmp_path: Path) -> None:
    runs = read_logged_runs(sweep)
    assert len(runs) == 2 and {run.group for run in runs} == {sweep.name}
    workspace = build_workspace("entity", "encdec-pl", sweep=sweep.name)
    keys = panel_keys(workspace)
    assert {"train/latent_norm_avg", "train/pull", "train/push", "train/fake", "val/reconstructions"} <= keys.history
    assert EQUILIBRIUM_STEP in keys.summary and {"loss.fake_weight", "model.latent_dim"} <= keys.config

    logged = [{k for row in run.history for k in row} for run in runs]
    for run, names in zip(runs, logged, strict=True):
        assert keys.x_axes == {STEP} and STEP in names, run.name  # rows are placed by the trainer's step
        assert keys.history - EQUILIBRIUM_KEYS <= names, (run.name, sorted(keys.history - names))
        assert keys.summary - EQUILIBRIUM_KEYS <= set(run.summary), (run.name, sorted(keys.summary - set(run.summary)))
        for key in keys.config:  # the grouping and parallel-coordinates settings, in every run's config
            assert run.setting(key) is not None, (run.name, key)
    assert set().union(*logged) >= EQUILIBRIUM_KEYS  # the run that reached it logged step and value
    for run in runs:
        # Quality at its measurements only (0, every 6 steps, the end), not repeated at every logged step,
        # and image grids that are not black (wandb.Image casts a float tensor to bytes unscaled).
        assert run.series("quality/frechet/samples", STEP)[0] == [0, 6, 12], run.name
        for key in ("val/reconstructions", "quality/samples"):
            pixels = Image.open(run.last_image(key)).convert("L")
            assert pixels.getextrema()[1] > 200, (run.name, key)

    # The definition W&B would receive serialises, filtered to the sweep's group, runs grouped by fake_weight.
    view = workspace._to_model().model_dump(by_alias=True, exclude_none=True)
    runset = view["spec"]["section"]["runSets"][0]
    assert runset["grouping"] == [{"section": "config", "name": "loss.value.fake_weight"}]
    assert sweep.name in json.dumps(runset["filters"])

    drawn = render_workspace(workspace, runs, tmp_path)
    assert len(drawn) == len(workspace.sections)
    for path, empty in drawn.items():
        assert not empty, f"{path.name}: nothing drawn for {empty}"
        assert Image.open(path).size[0] > 1000


@pytest.mark.slow
def test_sweep_runs_share_a_group_carry_their_overrides_and_always_say_whether_they_reached_equilibrium(
    sweep: Path,
) -> None:
    runs = {run.setting("callbacks.equilibrium.tolerance"): run for run in read_logged_runs(sweep)}
    reached, never = runs[10], runs[1e-12]
    # Named by their overrides: the usual settings and group choices first, then the rest, no paths.
    assert reached.name.startswith("fw2-margin1-quality-bs32-tolerance=10-code_norm=none-")
    assert "-tolerance=1e-12-" in never.name
    assert "/" not in reached.name
    assert "loss.fake_weight=2" in reached.config["overrides"]
    assert not any(o.startswith("data.root=") for o in reached.config["overrides"])  # paths are not settings
    assert reached.summary[EQUILIBRIUM_REACHED] == 1 and reached.summary[EQUILIBRIUM_STEP] >= 0
    assert reached.summary[EQUILIBRIUM_VALUE] > 0
    assert never.summary[EQUILIBRIUM_REACHED] == 0 and EQUILIBRIUM_STEP not in never.summary

    report = write_report(sweep)
    markdown = report["markdown"].read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| job"))
    assert "equilibrium/step" in header and "equilibrium/value" in header
    never_row = next(line for line in markdown.splitlines() if "1e-12" in line and line.startswith("|"))
    assert never_row.count(NOT_REACHED) == 2


def test_the_detector_measures_every_run_without_stopping_it(tmp_path: Path) -> None:
    for callbacks in ("default", "equilibrium", "quality"):
        cfg = compose_config("train", [f"callbacks={callbacks}"], tmp_path)
        detector = cfg.callbacks.equilibrium
        assert detector._target_.endswith("EquilibriumDetector") and detector.stop is False, callbacks
    assert "equilibrium" not in (compose_config("train", ["callbacks=none"], tmp_path).callbacks or {})


def test_run_names_come_from_the_overrides() -> None:
    assert run_name_from(["loss.fake_weight=2.0", "model.latent_dim=32", "seed=0"]) == "fw2-z32-seed0"
    assert run_name_from(["trainer.max_steps=300", "model=ae", "tags=[x]", "loss.fake_weight=0.50"], {"model"}) == (
        "ae-fw0.5-max_steps=300"
    )
    assert run_name_from(["data.root=/data/x", "hydra.run.dir=out"]) == run_name_from([]) == "defaults"


def test_the_command_without_credentials_stops_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")} | {"HOME": str(tmp_path)}
    env.pop("NETRC", None)
    result = subprocess.run(
        [sys.executable, "-m", "encdec_pl.dashboard", "project=p", "entity=someone", f"hydra.run.dir={tmp_path}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr
    assert "wandb sync" in lines[0] and "wandb login" in lines[0]


def test_offline_modes_and_an_unreachable_server_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(WandbOffline, match="WANDB_MODE=offline"):
        require_online()
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there: refused at once
    with pytest.raises(WandbOffline, match="127.0.0.1:9 cannot be reached"):
        require_online(timeout=2)
