"""Nothing lost, nothing silent (issue 13): each case provoked for real through the CLI, in a subprocess.

A kill -9 mid-run keeps the interval checkpoint; `ckpt_path=last` refuses a run with other settings
and continues the right one in its own W&B run; Ctrl-C keeps the last step's metrics; a run folder with
non-ASCII characters resumes with the printed command, executed as printed; re-running it on the
finished run says so; rejected commands leave no run folder and print no config tree.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from encdec_pl.runtime.history import read_csv_history, read_wandb_history, series

from .conftest import DATA_ROOT, REPO_ROOT, run_cli

pytestmark = pytest.mark.slow

# Short CPU runs: small batches, no workers, few validation batches, every step logged.
FAST = [
    "trainer.accelerator=cpu",
    "data.batch_size=16",
    "data.num_workers=0",
    "trainer.limit_val_batches=1",
    "trainer.num_sanity_val_steps=0",
    "trainer.log_every_n_steps=1",
    "extras.print_config=false",
    "callbacks.reconstructions.num_images=8",
]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "ENCDEC_DATA_DIR": str(DATA_ROOT)}
    env.pop("WANDB_API_KEY", None)
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _start(cwd: Path, *overrides: str) -> subprocess.Popen:
    """The training CLI in its own process group, as a terminal starts it."""
    return subprocess.Popen(
        [sys.executable, "-m", "encdec_pl.train", *overrides],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for(process: subprocess.Popen, condition, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            return
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"{what} never happened: {process.communicate()[1][-3000:]}")


def _runs(runs: Path) -> set[Path]:
    return {p for p in runs.iterdir() if p.is_dir()} if runs.is_dir() else set()


def _wandb_id(run: Path) -> str:
    return next((run / "wandb").glob("offline-run-*")).name.rsplit("-", 1)[1]


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    return lines[0]


def test_kill_9_keeps_a_checkpoint_and_ckpt_path_last_never_continues_a_run_with_other_settings(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "train" / "runs"
    common = [f"paths.log_dir={tmp_path}", "logger.wandb.mode=offline", *FAST]

    # An older, finished run with fake_weight=2.
    older = run_cli("encdec_pl.train", *common, "loss.fake_weight=2", "trainer.max_steps=2")
    assert older.returncode == 0, older.stderr[-3000:]
    [older_run] = _runs(runs)

    # A fake_weight=4 run killed with SIGKILL long before its first validation: the interval
    # checkpoint (every_minutes, here a fraction of a second) and metrics.json survive it.
    process = _start(
        REPO_ROOT,
        *common,
        "loss.fake_weight=4",
        "trainer.max_steps=100000",
        "callbacks.last_checkpoint.every_minutes=0.01",
    )
    found: list[Path] = []

    def killed_run_saved_twice() -> bool:
        for run in _runs(runs) - {older_run}:
            summary = run / "metrics.json"
            if summary.is_file() and json.loads(summary.read_text())["global_step"] >= 3:
                found.append(run)
                return True
        return False

    _wait_for(process, killed_run_saved_twice, "an interval checkpoint")
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    killed_run = found[0]
    saved = _checkpoint(killed_run / "checkpoints" / "last.ckpt")  # whole: written then renamed
    summary = json.loads((killed_run / "metrics.json").read_text())
    assert summary["status"] == "running" and saved["global_step"] >= summary["global_step"] - 1 >= 2
    assert saved["hyper_parameters"]["fake_weight"] == 4

    # ckpt_path=last with other settings than the latest run's: refused, naming both and how to pick one.
    refused = run_cli("encdec_pl.train", *common, "loss.fake_weight=8", "ckpt_path=last", "trainer.max_steps=50")
    assert refused.returncode == 1
    error = _one_error_line(refused)
    assert f"ckpt_path=last found the latest run, {killed_run}," in error
    assert "was trained with loss.fake_weight=4, not loss.fake_weight=8 as asked" in error
    assert f"To continue it: loss.fake_weight=4 ckpt_path={killed_run}/checkpoints/last.ckpt" in error
    assert _runs(runs) == {older_run, killed_run}  # the rejected command left no run folder

    # The same settings continue the killed run: its settings, its W&B run, from its step.
    step = saved["global_step"]
    resumed = run_cli(
        "encdec_pl.train", *common, "loss.fake_weight=4", "ckpt_path=last", f"trainer.max_steps={step + 2}"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"ckpt_path=last: resuming the latest run, {killed_run}/checkpoints/last.ckpt" in resumed.stdout
    [new_run] = _runs(runs) - {older_run, killed_run}
    after = _checkpoint(new_run / "checkpoints" / "last.ckpt")
    assert after["global_step"] == step + 2 and after["hyper_parameters"]["fake_weight"] == 4
    assert _wandb_id(new_run) == _wandb_id(killed_run) != _wandb_id(older_run)


def test_ctrl_c_keeps_the_last_step_and_the_printed_resume_command_works_from_a_non_ascii_folder(
    tmp_path: Path,
) -> None:
    # The user's checkout sits in a folder with non-ASCII characters: run folders inherit them.
    home = tmp_path / "données_été"
    home.mkdir()
    runs = home / "outputs" / "train" / "runs"
    # Interval saves (a fraction of a second apart) rewrite metrics.json with the step reached: the
    # signal goes out once a step is done. Sent as soon as training starts, it could come before the
    # first step, which stops with nothing to save (a different case).
    process = _start(
        home,
        "logger=many",
        "logger.wandb.mode=offline",
        "trainer.max_steps=25",
        "callbacks.last_checkpoint.every_minutes=0.002",
        *FAST,
    )

    def a_step_is_done() -> bool:
        summaries = [run / "metrics.json" for run in _runs(runs)]
        return any(s.is_file() and json.loads(s.read_text())["global_step"] >= 1 for s in summaries)

    _wait_for(process, a_step_is_done, "a training step")
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert "Traceback" not in stdout + stderr
    [first] = _runs(runs)
    stopped_at = _checkpoint(first / "checkpoints" / "last.ckpt")["global_step"]
    assert 1 <= stopped_at < 25
    assert f"Stopped by SIGINT at step {stopped_at}; checkpoint: " in stdout + stderr  # the signal's save
    # The last step's metrics reached the CSV log before the exit (logged steps count from 0).
    steps, _ = series(read_csv_history(first / "csv"), "train/loss", "step")
    assert max(steps) == stopped_at - 1

    # The printed command, pasted as printed into a shell in the same folder: the interpreter as the
    # shell finds it (not a bare `python` when the venv is not activated), the path quoted for Hydra.
    commands = {line.split("resume with: ", 1)[1].strip() for line in stdout.splitlines() if "resume with: " in line}
    [command] = commands  # the stop message and the end-of-run summary print the same one
    assert "ckpt_path='" in command and "données_été" in command
    resumed = subprocess.run(command, shell=True, cwd=home, env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    [second] = _runs(runs) - {first}
    after = _checkpoint(second / "checkpoints" / "last.ckpt")
    assert after["global_step"] == 25 and _wandb_id(second) == _wandb_id(first)
    # The history goes on without a gap: every step 0..24 logged once or more across both runs.
    resumed_steps, _ = series(read_csv_history(second / "csv"), "train/loss", "step")
    assert set(steps) | set(resumed_steps) == set(range(25))
    wandb_steps = [series(read_wandb_history(run / "wandb"), "train/loss")[0] for run in (first, second)]
    assert max(wandb_steps[0]) == stopped_at - 1 and set(wandb_steps[0]) | set(wandb_steps[1]) == set(range(25))

    # The resume command the finished run printed, run again: it says the run is complete, makes no run folder.
    [command] = {
        line.split("resume with: ", 1)[1].strip() for line in resumed.stdout.splitlines() if "resume with:" in line
    }
    again = subprocess.run(command, shell=True, cwd=home, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "is complete: it reached trainer.max_steps=25 (step 25). Nothing to train" in again.stdout
    assert _runs(runs) == {first, second}
    # ...and the upload command printed at the end works as printed too.
    [upload] = [
        line.split("upload it with:  ", 1)[1] for line in resumed.stdout.splitlines() if "upload it with:" in line
    ]
    assert shlex.split(upload)[-2] == "sync"
    check = subprocess.run(
        [*shlex.split(upload)[:-2], "--help"], cwd=home, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stderr[-2000:]


@pytest.mark.parametrize(
    "override,expected",
    [
        ("trainer.max_steps=abc", "error: trainer.max_steps='abc' is invalid: must be an integer"),
        ("loss.fake_weight=[1,2]", "error: loss.fake_weight=[1, 2] is invalid: must be a number >= 0 (got a list)"),
        ("loss.fake_weight=nan", "error: loss.fake_weight=nan is invalid: must be a finite number >= 0"),
        ("data.root={tmp}/nonexistent/data", "error: MNIST files missing in {tmp}/nonexistent/data/MNIST/raw"),
        ("hydra.run.dir=/tmp/é", "; quote the value for Hydra, inside the shell's quotes: \"hydra.run.dir='/tmp/é'\""),
    ],
)
def test_a_rejected_command_prints_one_line_and_leaves_no_folder(override: str, expected: str, tmp_path: Path) -> None:
    result = run_cli(
        "encdec_pl.train", override.format(tmp=tmp_path), f"paths.log_dir={tmp_path}/outputs", "logger=none"
    )
    assert result.returncode != 0
    assert expected.format(tmp=tmp_path) in _one_error_line(result)
    assert "CONFIG" not in result.stdout  # no config tree before the error
    assert not (tmp_path / "nonexistent").exists()  # no data folder made on the way
    assert not list((tmp_path / "outputs").rglob("*-*-*_*-*-*"))  # no run folder either


@pytest.fixture
def read_only_folder(tmp_path: Path):
    """A folder no process can write to, even as root: chmod where that suffices, else a read-only tmpfs mount."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    (folder / "existing").mkdir()
    folder.chmod(0o555)
    (folder / "existing").chmod(0o555)
    mounted = False
    if os.access(folder, os.W_OK):  # root: permissions do not stop writes
        mounted = (
            subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(folder)], capture_output=True).returncode
            == 0
        )
        if not mounted:
            pytest.skip("cannot make a read-only folder here (root without mount rights)")
    yield folder
    if mounted:
        subprocess.run(["umount", str(folder)], check=False)
    folder.chmod(0o755)


def test_a_read_only_output_folder_gives_one_line(read_only_folder: Path) -> None:
    target = read_only_folder / "existing" if (read_only_folder / "existing").is_dir() else read_only_folder
    for run_dir in (read_only_folder / "new_run", target):
        result = run_cli("encdec_pl.train", f"hydra.run.dir={run_dir}", "logger=none")
        assert result.returncode == 1
        error = _one_error_line(result)
        assert error.startswith(f"error: cannot write to {run_dir}") and "choose a writable folder" in error, error


def test_a_short_first_run_draws_its_seed_looks_clean_shows_a_picture_and_estimates_the_time(tmp_path: Path) -> None:
    result = run_cli(
        "encdec_pl.train",
        f"hydra.run.dir={tmp_path}",
        "seed=null",
        "logger=csv",
        "trainer.max_steps=6",
        "callbacks.time_estimate.skip_steps=1",
        "callbacks.time_estimate.measure_steps=2",
        *FAST,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # seed=null draws a seed (Lightning alone would use 0), prints it and records it.
    seed = OmegaConf.load(tmp_path / "config.yaml")["seed"]
    assert isinstance(seed, int) and seed != 0
    assert f"seed=null: drew seed {seed} (saved in config.yaml; seed={seed} repeats this run)" in result.stdout
    # No alarming Lightning messages for a run shorter than one validation interval...
    for noise in ("could not find the monitored key", "HINT", "Total FLOPs: 0", "not supported by the model summary"):
        assert noise not in result.stdout + result.stderr
    # ...a reconstruction grid of the final state, and the time estimate once steps were measured.
    assert (tmp_path / "images" / "reconstructions" / "step_000006.png").is_file()
    assert "Estimated training time: about " in result.stdout and "for the remaining 3 steps" in result.stdout


def test_enable_checkpointing_false_turns_off_the_projects_checkpoints(tmp_path: Path) -> None:
    result = run_cli(
        "encdec_pl.train",
        f"hydra.run.dir={tmp_path}",
        "logger=none",
        "trainer.max_steps=2",
        "trainer.enable_checkpointing=false",
        *FAST,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trainer.enable_checkpointing=false: this run writes no checkpoints" in result.stdout
    assert not (tmp_path / "checkpoints").exists()
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "completed"


def test_the_csv_history_of_a_resumed_run_is_the_whole_run(tmp_path: Path) -> None:
    # A resumed run logs to csv/version_1 from its checkpoint's step: read back, both versions make one
    # history, the resumed version replacing the first one's rows from its first step on.
    first, second = tmp_path / "csv" / "version_0", tmp_path / "csv" / "version_1"
    first.mkdir(parents=True)
    (first / "metrics.csv").write_text("step,train/loss\n0,1.0\n1,0.9\n2,0.8\n3,0.7\n")
    time.sleep(0.01)
    second.mkdir(parents=True)
    (second / "metrics.csv").write_text("step,train/loss\n2,0.5\n3,0.4\n4,0.3\n")
    steps, losses = series(read_csv_history(tmp_path / "csv"), "train/loss", "step")
    assert steps == [0, 1, 2, 3, 4] and losses == [1.0, 0.9, 0.5, 0.4, 0.3]
