"""The sweep report on sweep folders laid out by hand as Hydra and the jobs lay them out.

The folders hold what real jobs leave behind in each outcome: a finished run, a run that
failed and said why, and a job killed before it wrote anything. test_sweep.py runs the report
on real sweeps.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from encdec_pl.report import heatmap_grid, main, split_overrides, sweep_metric, write_report
from encdec_pl.runtime.sweep.results import NO_RESULT, read_sweep


def make_job(
    sweep: Path,
    name: str,
    overrides: list[str],
    summary: dict[str, Any] | None = None,
    error: str | None = None,
    config: dict[str, Any] | None = None,
) -> Path:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    defaults = {"loss": {"fake_weight": 2.0}, "model": {"latent_dim": 32}, "optimized_metric": None}
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config or defaults))
    if summary is not None:
        (job / "metrics.json").write_text(json.dumps(summary))
    if error is not None:
        (job / "error.txt").write_text(f"{error}\n\nTraceback (most recent call last):\n  ...\n")
    return job


def completed(val_loss: float) -> dict[str, Any]:
    return {"status": "completed", "global_step": 300, "metrics": {"val/loss": val_loss, "train/loss": 0.9}}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "multirun"
    common = ["trainer.max_steps=300", "data.root=/data"]
    make_job(sweep, "0", ["loss.fake_weight=0", "model.latent_dim=8", *common], completed(0.40))
    make_job(sweep, "1", ["loss.fake_weight=2", "model.latent_dim=8", *common], completed(0.30))
    failed = {"status": "failed", "global_step": 120, "metrics": {"train/loss": float("nan")}}
    make_job(sweep, "2", ["loss.fake_weight=0", "model.latent_dim=16", *common], failed, "non-finite loss at step 120")
    make_job(sweep, "10", ["loss.fake_weight=2", "model.latent_dim=16", *common])  # killed: nothing written
    (sweep / "multirun.yaml").write_text("{}\n")
    (sweep / ".submitit" / "77_0" / ".hydra").mkdir(parents=True)  # launcher files are not jobs
    return sweep


def test_jobs_are_read_in_job_order_with_their_outcome(sweep: Path) -> None:
    jobs = read_sweep(sweep)
    assert [job.name for job in jobs] == ["0", "1", "2", "10"]  # 10 after 2, not after 1
    assert [job.status for job in jobs] == ["completed", "completed", "failed", "failed"]
    assert jobs[2].error == "non-finite loss at step 120" and jobs[2].global_step == 120
    assert jobs[3].error == NO_RESULT and jobs[3].metrics == {}
    assert jobs[0].overrides["model.latent_dim"] == "8" and jobs[0].setting("model.latent_dim") == 8
    assert jobs[0].setting("model.width") is None and jobs[0].setting("optimized_metric") is None


def test_table_has_every_job_and_says_why_the_failed_ones_failed(sweep: Path) -> None:
    written = write_report(sweep)
    with written["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["job"], r["status"], r["loss.fake_weight"], r["model.latent_dim"]) for r in rows] == [
        ("0", "completed", "0", "8"),
        ("1", "completed", "2", "8"),
        ("2", "failed", "0", "16"),
        ("10", "failed", "2", "16"),
    ]
    assert rows[0]["val/loss"] == "0.4" and rows[3]["val/loss"] == "" and rows[3]["error"] == NO_RESULT
    assert rows[0]["data.root"] == "/data"  # the CSV keeps every override

    markdown = written["markdown"].read_text()
    assert "Overrides shared by every job: `trainer.max_steps=300` `data.root=/data`" in markdown
    assert "| job | status | loss.fake_weight | model.latent_dim | step | val/loss | train/loss |" in markdown
    assert "| 2 | failed | 0 | 16 | 120 |  | nan |" in markdown
    assert "- job 2: non-finite loss at step 120" in markdown and f"- job 10: {NO_RESULT}" in markdown
    assert written["heatmap"].stat().st_size > 0 and written["latent_norm"].stat().st_size > 0


def test_heatmap_places_each_job_by_its_settings_and_averages_shared_cells(sweep: Path) -> None:
    make_job(sweep, "11", ["loss.fake_weight=2", "model.latent_dim=8", "seed=1"], completed(0.50))
    xs, ys, cells, failed = heatmap_grid(read_sweep(sweep), "val/loss", "loss.fake_weight", "model.latent_dim")
    assert xs == [0, 2] and ys == [8, 16]
    assert cells[(0, 8)] == [0.40] and sorted(cells[(2, 8)]) == [0.30, 0.50]
    assert failed == {(0, 16), (2, 16)}
    # A key the sweep did not override comes from each job's config.
    xs, ys, cells, _ = heatmap_grid(read_sweep(sweep), "val/loss", "loss.fake_weight", "loss.margin")
    assert ys == [None] and not math.isnan(cells[(0, None)][0])


def test_varying_overrides_become_columns_and_a_single_job_shows_all(sweep: Path) -> None:
    jobs = read_sweep(sweep)
    varying, shared = split_overrides(jobs)
    assert varying == ["loss.fake_weight", "model.latent_dim"]
    assert shared == {"trainer.max_steps": "300", "data.root": "/data"}
    assert split_overrides(jobs[:1]) == (["loss.fake_weight", "model.latent_dim", "trainer.max_steps", "data.root"], {})


def test_the_default_metric_is_the_one_the_sweep_optimised(tmp_path: Path, sweep: Path) -> None:
    assert sweep_metric(read_sweep(sweep)) == "val/loss"
    search = tmp_path / "search"
    config = {"loss": {"fake_weight": 1.5}, "model": {"latent_dim": 8}, "optimized_metric": "train/loss"}
    make_job(search, "0", ["loss.fake_weight=1.5"], completed(0.4), config=config)
    assert sweep_metric(read_sweep(search)) == "train/loss"


def test_a_sweep_without_the_metric_still_gets_its_table(tmp_path: Path) -> None:
    short = tmp_path / "short"  # stopped before the first validation: no val/loss anywhere
    make_job(
        short, "0", ["loss.fake_weight=0"], {"status": "completed", "global_step": 2, "metrics": {"train/loss": 1.0}}
    )
    written = write_report(short)
    assert "heatmap" not in written and written["csv"].is_file() and written["latent_norm"].is_file()
    assert "No heatmap: no job logged val/loss" in written["markdown"].read_text()


def test_bad_input_is_one_line(tmp_path: Path, sweep: Path, capsys: pytest.CaptureFixture) -> None:
    for argv, expected in (
        ([str(tmp_path / "nothing")], "no sweep folder at"),
        ([str(sweep / "0" / ".hydra")], "holds no sweep jobs"),
        ([str(sweep / "0")], f"{sweep / '0'} is the folder of a single run, not of a sweep"),
        ([str(sweep), "--metric", "val/los"], "--metric val/los: no job logged it (did you mean val/loss?); logged: "),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err


def test_latent_norm_curves_name_the_jobs_they_leave_out_and_use_the_runs_step_axis(
    sweep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (sweep / "0" / "csv").mkdir()
    # Lightning logs the metrics of the first optimizer step under step 0; the run's own plot calls it step 1.
    (sweep / "0" / "csv" / "metrics.csv").write_text("step,train/latent_norm_avg\n0,2.0\n9,1.5\n")
    import encdec_pl.report as report

    drawn: list[tuple] = []
    original_plot = report.plt.Axes.plot

    def record(ax, *args, **kwargs):
        drawn.append((list(args[0]) if args else [], kwargs.get("label")))
        return original_plot(ax, *args, **kwargs)

    monkeypatch.setattr(report.plt.Axes, "plot", record)
    written = write_report(sweep)
    curves = [(steps, label) for steps, label in drawn if steps]
    assert curves == [([1, 10], "0: fake_weight=0 latent_dim=8")]
    assert any(
        label and label.startswith("no latent norm logged: 1 (completed), 2 (failed), 10 (") for _, label in drawn
    )
    assert (
        "latent_norm.png: no latent norm logged by job 1 (completed), 2 (failed), 10 ("
        in written["markdown"].read_text()
    )
