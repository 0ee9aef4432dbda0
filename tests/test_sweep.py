"""Sweeps end to end: real multiruns of short real trainings through the real launchers, then the report.

Every sweep here runs `python -m encdec_pl.train -m ...` in a subprocess with jobs of three
training steps on MNIST (CPU), and checks what the jobs left in their folders.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from PIL import Image

from encdec_pl.report import write_report
from encdec_pl.runtime.history import read_wandb_config, read_wandb_run
from encdec_pl.runtime.sweep.results import read_sweep

from .conftest import run_cli

pytestmark = pytest.mark.slow

STEPS = 3


@pytest.fixture
def tiny_job(data_root: Path) -> list[str]:
    """Overrides that make every sweep job a three-step real training run on CPU."""
    return [
        f"data.root={data_root}",
        f"trainer.max_steps={STEPS}",
        f"trainer.val_check_interval={STEPS}",
        "trainer.limit_val_batches=1",
        "trainer.log_every_n_steps=1",
        "trainer.accelerator=cpu",
        "data.batch_size=32",
        "data.num_workers=0",
        "extras.print_config=false",
    ]


def job_interval(job_dir: Path) -> tuple[datetime, datetime]:
    """When the job's training started and ended, from the timestamps of its train.log."""
    stamps = re.findall(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", (job_dir / "train.log").read_text(), re.M)
    times = [datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in stamps]
    return times[0], times[-1]


def max_concurrent(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in events:  # at equal times an end (-1) sorts before a start (+1)
        running += change
        peak = max(peak, running)
    return peak


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_local_sweep_runs_2x2_in_parallel_in_one_wandb_group_and_reports(tmp_path: Path, tiny_job: list[str]) -> None:
    sweep_dir = tmp_path / "fw_x_ld"
    result = run_cli(
        "encdec_pl.train",
        "-m",
        "loss.fake_weight=0,2",
        "model.latent_dim=8,16",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.launcher.ray.init.num_cpus=2",  # at most two jobs at once, one CPU thread each
        "logger.wandb.mode=offline",
        *tiny_job,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 of 4 jobs completed" in result.stdout
    grid = {(0, 8), (0, 16), (2, 8), (2, 16)}

    runs = {}
    for job in sorted(p for p in sweep_dir.iterdir() if p.name.isdigit()):
        summary = json.loads((job / "metrics.json").read_text())
        assert summary["status"] == "completed" and summary["global_step"] == STEPS
        # Each job's W&B run: its own id, its own settings, the sweep's group, its overrides as tags.
        run, config = read_wandb_run(job), read_wandb_config(job)
        setting = (config["loss"]["fake_weight"], config["model"]["latent_dim"])
        assert run["group"] == sweep_dir.name
        assert {f"loss.fake_weight={setting[0]}", f"model.latent_dim={setting[1]}"} <= set(run["tags"])
        assert not any(tag.startswith("data.root=") for tag in run["tags"])  # paths are not labels
        assert run["exit_code"] == 0  # finished, so the next job in that worker started a run of its own
        runs[run["id"]] = setting
    assert len(runs) == 4 and set(runs.values()) == grid

    # Two CPU slots: two jobs trained at a time, never more.
    intervals = [tuple(t.timestamp() for t in job_interval(sweep_dir / str(i))) for i in range(4)]
    assert max_concurrent(intervals) == 2

    report = run_cli("encdec_pl.report", str(sweep_dir))
    assert report.returncode == 0, report.stderr[-2000:]
    rows = read_csv_rows(sweep_dir / "report" / "summary.csv")
    assert len(rows) == 4 and all(row["status"] == "completed" for row in rows)
    assert {(int(r["loss.fake_weight"]), int(r["model.latent_dim"])) for r in rows} == grid
    assert all(float(row["val/loss"]) > 0 for row in rows)
    markdown = (sweep_dir / "report" / "summary.md").read_text()
    assert markdown.count("| completed |") == 4 and "`trainer.max_steps=3`" in markdown  # shared overrides listed once
    for png in ("heatmap.png", "latent_norm.png"):
        assert Image.open(sweep_dir / "report" / png).size[0] > 300
    assert str(sweep_dir / "report" / "heatmap.png") in report.stdout


@pytest.fixture
def ray_cluster() -> Iterator[str]:
    """A running Ray cluster (started here, stopped after the test); yields its address."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_ray_launcher_joins_a_running_cluster(tmp_path: Path, tiny_job: list[str], ray_cluster: str) -> None:
    sweep_dir = tmp_path / "on_ray"
    result = run_cli(
        "encdec_pl.train",
        "-m",
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={ray_cluster}",
        "loss.fake_weight=0,2",
        "model.latent_dim=8,16",
        f"hydra.sweep.dir={sweep_dir}",
        "logger=csv",
        *tiny_job,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Connecting to existing Ray cluster at address: {ray_cluster}" in result.stderr
    assert "Started a local Ray instance" not in result.stderr

    written = write_report(sweep_dir)
    rows = read_csv_rows(written["csv"])
    assert [(int(r["loss.fake_weight"]), int(r["model.latent_dim"])) for r in rows] == list(
        itertools.product([0, 2], [8, 16])
    )
    assert all(row["status"] == "completed" and int(row["global_step"]) == STEPS for row in rows)
    assert written["heatmap"].is_file() and written["latent_norm"].is_file()


def test_failed_jobs_are_reported_and_the_other_jobs_finish(tmp_path: Path, tiny_job: list[str]) -> None:
    killed = "{_target_:os._exit,_args_:[137]}"  # the job's process dies at once, as if SIGKILLed
    bad_config = "{_target_:encdec_pl.runtime.callbacks.EquilibriumDetector,window:0}"
    result = run_cli(
        "encdec_pl.train",
        "-m",
        f"+callbacks.fault=null,{killed},{bad_config}",
        "hydra.launcher.ray.init.num_cpus=2",
        "logger=csv",
        *tiny_job,
        cwd=tmp_path,  # and no hydra.sweep.dir: the default folder, below where the command started
    )
    (sweep_dir,) = (tmp_path / "outputs" / "train" / "multirun").iterdir()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", sweep_dir.name)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1].startswith("error: ")
    )  # Hydra re-raises the first failure, as one line
    assert "1 of 3 jobs completed, failed: #1 #2" in result.stdout

    jobs = read_sweep(sweep_dir)
    assert [job.status for job in jobs] == ["completed", "failed", "failed"]
    assert jobs[0].global_step == STEPS
    assert "process died" in jobs[1].error
    assert "window=0 is invalid: must be a positive integer" in jobs[2].error
    assert "Traceback" in (sweep_dir / "2" / "error.txt").read_text()  # the details stay in the job's folder

    rows = read_csv_rows(write_report(sweep_dir)["csv"])
    assert [row["status"] for row in rows] == ["completed", "failed", "failed"]
    assert rows[1]["callbacks.fault"] == killed and rows[0]["val/loss"] and not rows[1]["val/loss"]


def test_sweep_with_ddp_stops_before_starting_any_job(tmp_path: Path) -> None:
    result = run_cli("encdec_pl.train", "-m", "trainer=ddp", "loss.fake_weight=0,1", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: sweep jobs train on one device each, but trainer.devices=-1")
    assert not any(p.is_dir() for p in tmp_path.iterdir())  # no job folder: nothing started


def test_optuna_search_optimises_a_quality_metric_keeps_its_study_and_names_the_best_trial(
    tmp_path: Path, tiny_job: list[str], eval_classifier: Path
) -> None:
    sweep_dir, storage = tmp_path / "search", f"sqlite:///{tmp_path}/optuna.db"
    result = run_cli(
        "encdec_pl.train",
        "hparams_search=ede_optuna",
        "hydra/launcher=basic",  # trials one after another in this process: no Ray start-up for two trials
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=2",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweep.dir={sweep_dir}",
        "logger=csv",
        f"callbacks.quality.classifier_path={eval_classifier}",
        "callbacks.quality.num_images=200",
        "callbacks.quality.fit_size=300",
        "callbacks.quality.num_samples=200",
        *tiny_job,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = {job.name: job for job in read_sweep(sweep_dir)}
    assert set(trials) == {"0", "1"}
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    # every trial scored its final model (step 3, between the quality callback's every_n_steps)
    scores = {name: job.metrics["quality/frechet/samples"] for name, job in trials.items()}
    best_trial = trials[min(scores, key=scores.get)]
    assert best["best_value"] == pytest.approx(min(scores.values()))
    assert best["best_params"]["model.latent_dim"] == best_trial.setting("model.latent_dim")
    import optuna  # only here: importing it costs every test run a second

    study = optuna.load_study(study_name="ede_mnist", storage=storage)  # kept: a rerun continues it
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert "| step | quality/frechet/samples |" in write_report(sweep_dir)["markdown"].read_text()  # searched first


def run_probe(sweep_dir: Path, *overrides: str) -> list[dict]:
    result = run_cli("tests.apps.device_probe", "-m", f"hydra.sweep.dir={sweep_dir}", *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/probe.json"))]


def test_gpu_jobs_never_share_a_gpu_unless_packed(tmp_path: Path) -> None:
    # Ray schedules against the GPUs it is told about; this CPU machine declares 4. What is
    # tested is Ray's real scheduling with the launcher's placement: each job's record is what
    # its own process saw.
    records = run_probe(tmp_path / "exclusive", "seed=range(8)", *probe_cluster(gpus=4, cpus=8))
    assert len(records) == 8
    for record in records:
        assert len(record["gpu_ids"]) == 1 and record["cuda_visible_devices"] == str(record["gpu_ids"][0])
        assert record["omp_num_threads"] == "1"  # one CPU thread per job
    for a, b in itertools.combinations(records, 2):
        overlap = a["start"] < b["end"] and b["start"] < a["end"]
        assert not (overlap and a["gpu_ids"] == b["gpu_ids"]), (a, b)
    assert {r["gpu_ids"][0] for r in records} == {0, 1, 2, 3}
    assert len({r["pid"] for r in records}) == 8  # a fresh process per job: CUDA starts after the GPU is set

    # Packing two jobs per GPU: with one GPU, two jobs share it at once, never three.
    packed = run_probe(
        tmp_path / "packed",
        "seed=range(4)",
        "hydra.launcher.ray.remote.num_gpus=0.5",
        "+probe.peers=2",
        *probe_cluster(gpus=1, cpus=8),
    )
    assert all(r["gpu_ids"] == [0] and r["saw_peers"] for r in packed)  # each waited for a second job on GPU 0
    assert max_concurrent([(r["start"], r["end"]) for r in packed]) == 2


def probe_cluster(gpus: int, cpus: int) -> list[str]:
    # The sweep callback (an encdec_pl object, so torch and Lightning) is left out: it would cost each
    # fresh GPU-job process ~10 s of imports here, and placement does not depend on it.
    return [
        f"hydra.launcher.ray.init.num_gpus={gpus}",
        f"hydra.launcher.ray.init.num_cpus={cpus}",
        "logger=none",
        "~hydra.callbacks.sweep",
    ]


def test_slurm_sweep_submits_one_array_job_with_the_configured_resources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No SLURM here: a stand-in sbatch keeps the script submitit wrote and refuses it, as a full
    # cluster would. The script is what SLURM would have run.
    bin_dir, script_copy = tmp_path / "bin", tmp_path / "submitted.sh"
    bin_dir.mkdir()
    stand_ins = {
        "sbatch": f'cp "$1" {script_copy}\necho "sbatch: error: QOSMaxSubmitJobPerUserLimit" >&2\nexit 1',
        "srun": "exit 1",  # submitit only checks that it exists
    }
    for name, body in stand_ins.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IEXEC)
    sweep_dir = tmp_path / "slurm"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")  # run_cli passes it on
    result = run_cli(
        "encdec_pl.train",
        "-m",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=90",
        "hydra.launcher.setup=['source .venv/bin/activate']",
        "loss.fake_weight=0,1,2",
        f"hydra.sweep.dir={sweep_dir}",
    )
    lines = [line for line in result.stderr.splitlines() if line.startswith(("error", "Traceback"))]
    assert result.returncode != 0 and lines == [lines[0]] and "SLURM refused the sweep" in lines[0]
    assert "QOSMaxSubmitJobPerUserLimit" in lines[0]

    script = script_copy.read_text()
    for expected in (
        "#SBATCH --partition=gpu",
        "#SBATCH --time=90",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32GB",
        "#SBATCH --array=0-2%3",  # one array job, one task per sweep job
        "#SBATCH --signal=USR2@120",  # the requeue signal, two minutes before the limit
        f"#SBATCH --output={sweep_dir}/.submitit/%A_%a/%A_%a_0_log.out",
        "source .venv/bin/activate",
        f"{sys.executable} -u -m submitit.core._submit",
    ):
        assert expected in script, f"{expected!r} not in:\n{script}"
