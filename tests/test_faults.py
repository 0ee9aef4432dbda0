"""Faults provoked for real: a NaN injected mid-run, SIGTERM and Ctrl-C sent to a running CLI, bad checkpoints.

Each subprocess test checks the message, the exit status and that the resumed run continues at
the right step. The in-process tests pin down the pieces (the NaN watch, the resume command,
what ckpt_path=last finds, run folders that never collide).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from encdec_pl import EncDec
from encdec_pl.data import MNISTDataModule
from encdec_pl.errors import CheckpointError
from encdec_pl.runtime.callbacks.faults import FaultHandler, NonFiniteWatch, RunInterrupted
from encdec_pl.runtime.config import register_resolvers
from encdec_pl.runtime.history import read_csv_history, series
from encdec_pl.runtime.resume import (
    check_resume_settings,
    checkpoint_to_score,
    newer_runs_without_checkpoint,
    python_command,
    resolve_ckpt_path,
    resume_command,
)

from .conftest import REPO_ROOT, compose_config, run_cli

NAN, INF = float("nan"), float("inf")
# Short CPU runs: small batches, no workers unless a test needs them, a validation every 10 steps.
FAST = [
    "trainer.accelerator=cpu",
    "data.batch_size=32",
    "data.num_workers=0",
    "trainer.val_check_interval=10",
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=5",
    "extras.print_config=false",
]


def _checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


# ----- the pieces, in process ---------------------------------------------------------------------
class CtrlCAtTrainStart(L.Callback):
    """Sends this process a real SIGINT once training starts, before its first batch: a Ctrl-C that comes too early."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_before_the_first_step_stops_at_once_saves_nothing_and_puts_the_handlers_back(
    tmp_path: Path, data_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The path the subprocess tests cannot hit on purpose (their signal waits for a step): no step, no checkpoint
    to write, so the run stops with the signal's exit status instead of saving an untrained model as last.ckpt."""
    checkpoints = tmp_path / "checkpoints"
    handler = FaultHandler(dirpath=str(checkpoints))
    trainer = L.Trainer(
        accelerator="cpu", max_steps=5, callbacks=[CtrlCAtTrainStart(), handler], logger=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )  # fmt: skip
    datamodule = MNISTDataModule(root=str(data_root), batch_size=16, device_resident=True, download=False)
    caught: list[int] = []  # the caller's own Ctrl-C handler, which the fit must hand the next Ctrl-C back to
    callers = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(RunInterrupted) as stopped:
            trainer.fit(EncDec(width=4, latent_dim=4), datamodule=datamodule)
        # Lightning's teardown may leave the fit's handler installed, inactive: it must forward to the caller's.
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)  # the handler runs here, in the main thread
    finally:
        signal.signal(signal.SIGINT, callers)
    assert caught == [signal.SIGINT]
    assert stopped.value.code == 128 + signal.SIGINT
    assert trainer.global_step == 0
    assert "Stopped by SIGINT before the first training step: nothing new to save" in caplog.text
    assert not checkpoints.exists() or not any(checkpoints.iterdir())


def test_non_finite_watch_names_the_first_bad_step_and_only_its_terms() -> None:
    watch = NonFiniteWatch()

    def terms(pull: float, push: float, fake: float) -> dict[str, torch.Tensor]:
        return {"pull": torch.tensor(pull), "push": torch.tensor(push), "fake": torch.tensor(fake)}

    watch.record(11, terms(0.1, 0.2, 0.3))
    assert watch.first_non_finite() is None and watch.unchecked == []  # checked steps are let go
    watch.record(12, terms(0.1, 0.2, 0.3))
    watch.record(13, terms(0.1, 0.2, INF))  # the fault: only the fake term
    watch.record(14, terms(NAN, NAN, NAN))  # afterwards the weights are NaN and so is everything
    assert watch.first_non_finite() == (13, ["fake"])


def test_resume_command_repeats_the_run_overrides_but_not_the_one_run_ones(tmp_path: Path) -> None:
    compose_config(
        "train",
        ["loss.fake_weight=4", "ckpt_path=/old.ckpt", "callbacks.fault_handler.simulate_nan_at_step=3", "tags=[a,b]"],
        tmp_path,
    )
    command = resume_command(Path("/run/last.ckpt"), "callbacks.fault_handler.resume_lr_factor=0.5")
    python = " ".join(python_command())  # python, or this interpreter's path when its venv is not activated
    assert command == (
        f"{python} -m encdec_pl.train loss.fake_weight=4 'tags=[a,b]' ckpt_path=/run/last.ckpt "
        "callbacks.fault_handler.resume_lr_factor=0.5"
    )
    # A path Hydra's grammar would not read unquoted is quoted for Hydra inside the shell's quotes.
    assert resume_command(Path("/runs/été/last.ckpt")).endswith(" \"ckpt_path='/runs/été/last.ckpt'\"")


def test_printed_commands_start_with_the_interpreter_as_the_shell_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compose_config("train", [], tmp_path)  # runtime.cwd: the repository
    venv_python = REPO_ROOT / ".venv" / "bin" / "python"
    monkeypatch.setattr(sys, "executable", str(venv_python))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # not activated
    assert python_command() == [".venv/bin/python"]
    monkeypatch.setenv("PATH", f"{venv_python.parent}:/usr/bin:/bin")  # activated
    assert python_command() == ["python"]


def test_ckpt_path_last_finds_this_run_then_the_newest_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    older, newer = runs / "2026-01-01_10-00-00", runs / "2026-01-01_09-00-00_2"
    for run, mtime in ((older, 1_000), (newer, 2_000)):  # newest by write time, not by name
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints" / "last.ckpt").write_bytes(b"")
        os.utime(run / "checkpoints" / "last.ckpt", (mtime, mtime))
    # A fresh command (a new timestamped folder) continues the latest run...
    fresh = runs / "2026-01-02_08-00-00"
    fresh.mkdir()
    assert resolve_ckpt_path("last", fresh, runs) == newer / "checkpoints" / "last.ckpt"
    # ...but a run folder's own checkpoint comes first, however old.
    (fresh / "checkpoints").mkdir()
    (fresh / "checkpoints" / "last.ckpt").write_bytes(b"")
    os.utime(fresh / "checkpoints" / "last.ckpt", (0, 0))
    assert resolve_ckpt_path("last", fresh, runs) == fresh / "checkpoints" / "last.ckpt"
    # A folder chosen with hydra.run.dir that has no checkpoint yet: a job's first start, from scratch.
    assert resolve_ckpt_path("last", tmp_path / "my_job", runs) is None
    # Nothing anywhere to resume from a fresh command: one line.
    with pytest.raises(CheckpointError, match=r"^ckpt_path=last: no run under .* has a checkpoints/last.ckpt"):
        resolve_ckpt_path("last", tmp_path / "empty" / "2026-01-02_08-00-00", tmp_path / "empty")


def test_ckpt_path_last_refuses_a_run_with_other_settings_and_names_the_newer_run_without_checkpoint(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    older, killed, fresh = runs / "2026-01-01_10-00-00", runs / "2026-01-01_11-00-00", runs / "2026-01-01_12-00-00"
    (older / "checkpoints").mkdir(parents=True)
    (older / "checkpoints" / "last.ckpt").write_bytes(b"")
    os.utime(older / "checkpoints" / "last.ckpt", (1_000, 1_000))
    killed.mkdir()  # killed before its first checkpoint
    (killed / "config.yaml").write_text("seed: 1\n")
    fresh.mkdir()
    newest = resolve_ckpt_path("last", fresh, runs)
    assert newest == older / "checkpoints" / "last.ckpt"
    newer = newer_runs_without_checkpoint(runs, newest, fresh)
    assert newer == [killed]
    checkpoint = {"global_step": 60, "hyper_parameters": {"fake_weight": 2.0, "latent_dim": 32}}
    check_resume_settings(newest, checkpoint, {"fake_weight": 2, "latent_dim": 32}, str, True, newer)  # same: fine
    with pytest.raises(CheckpointError) as info:
        check_resume_settings(
            newest, checkpoint, {"fake_weight": 4.0, "latent_dim": 32}, lambda k: f"loss.{k}", True, newer
        )
    assert str(info.value).startswith(
        f"ckpt_path=last found the latest run, {older}, (newer runs hold no checkpoint: {killed.name}) (step 60) "
        "was trained with loss.fake_weight=2.0, not loss.fake_weight=4.0 as asked"
    )


def test_evaluate_ckpt_path_takes_a_file_a_run_folder_or_last(tmp_path: Path) -> None:
    runs = tmp_path / "outputs" / "train" / "runs"
    older, newer = runs / "2026-01-01_10-00-00", runs / "2026-01-01_11-00-00"
    for run, mtime in ((older, 2_000), (newer, 1_000)):  # newest by write time
        (run / "checkpoints").mkdir(parents=True)
        (run / "checkpoints" / "last.ckpt").write_bytes(b"")
        os.utime(run / "checkpoints" / "last.ckpt", (mtime, mtime))
    assert checkpoint_to_score("last", runs) == older / "checkpoints" / "last.ckpt"
    assert checkpoint_to_score(str(newer), runs) == newer / "checkpoints" / "last.ckpt"
    assert checkpoint_to_score(str(newer / "checkpoints"), runs) == newer / "checkpoints" / "last.ckpt"
    assert checkpoint_to_score(str(newer / "checkpoints" / "last.ckpt"), runs) == newer / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match=r"is a folder without checkpoints/last.ckpt"):
        checkpoint_to_score(str(tmp_path), runs)
    with pytest.raises(CheckpointError, match=r"^ckpt_path=last: no training run under"):
        checkpoint_to_score("last", tmp_path / "none")


def _run_dirs_composed_at(now: str, tmp_path: Path) -> tuple[str, str]:
    """hydra.run.dir and hydra.sweep.dir as the CLI resolves them, with the clock stopped at `now`."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="encdec_pl.conf", version_base="1.3"):
        # After Hydra's initialisation registers its `now`, before composing resolves the run folder.
        OmegaConf.register_new_resolver("now", lambda pattern: now, replace=True, use_cache=True)
        cfg = compose("train", overrides=[f"paths.log_dir={tmp_path}"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.cwd = str(REPO_ROOT)
    HydraConfig().set_config(cfg)
    return cfg.hydra.run.dir, cfg.hydra.sweep.dir


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path: Path) -> None:
    try:
        first_run, first_sweep = _run_dirs_composed_at("12-00-00", tmp_path)
        second_run, second_sweep = _run_dirs_composed_at("12-00-00", tmp_path)
    finally:  # give Hydra its clock back
        from hydra.core.utils import setup_globals

        setup_globals()
    assert first_run != second_run and first_sweep != second_sweep
    assert Path(first_run).name == "12-00-00_12-00-00"  # the clock really was stopped
    assert Path(second_run).name == Path(first_run).name + "_2"
    assert Path(first_run).is_dir() and Path(second_run).is_dir()  # reserved at once: a third run skips both
    assert Path(first_run).parent == tmp_path / "train" / "runs"


def _save_checkpoint(model: EncDec, path: Path) -> None:
    trainer = L.Trainer(max_steps=0, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path, weights_only=False)


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A good latent-16 checkpoint and three broken files."""
    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {name: folder / f"{name}.ckpt" for name in ("latent16", "truncated", "not_a_checkpoint", "other_model")}
    _save_checkpoint(EncDec(latent_dim=16), paths["latent16"])
    paths["truncated"].write_bytes(paths["latent16"].read_bytes()[:5000])
    paths["not_a_checkpoint"].write_text("model: ede\nlatent_dim: 16\n")
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"beta": 4.0}}, paths["other_model"])
    return paths


@pytest.mark.parametrize(
    "name,kwargs,expected",
    [
        ("latent16", {"latent_dim": 32}, "it was saved with latent_dim=16 (here 32)"),
        ("truncated", {}, "the file is truncated (5000 bytes"),
        ("not_a_checkpoint", {}, "not a PyTorch checkpoint"),
        ("other_model", {}, "was not saved by EncDec (EncDec.__init__() got an unexpected keyword argument 'beta')"),
    ],
)
def test_load_from_checkpoint_names_the_file_and_the_problem(
    bad_checkpoints: dict[str, Path], name: str, kwargs: dict, expected: str
) -> None:
    with pytest.raises(CheckpointError) as info:
        EncDec.load_from_checkpoint(bad_checkpoints[name], **kwargs)
    message = str(info.value)
    assert str(bad_checkpoints[name]) in message and expected in message and "\n" not in message


# ----- through the CLI, for real --------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "name,override,expected",
    [
        ("latent16", "model.latent_dim=32", "it was saved with model.latent_dim=16 (here 32)"),
        ("truncated", None, "cannot read checkpoint {path}: the file is truncated"),
    ],
)
def test_cli_bad_checkpoint_exits_with_one_line(
    bad_checkpoints: dict[str, Path], name: str, override: str | None, expected: str, tmp_path: Path
) -> None:
    path = bad_checkpoints[name]
    extra = [override] if override else []
    result = run_cli("encdec_pl.train", f"ckpt_path={path}", *extra, f"hydra.run.dir={tmp_path}", "logger=none")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stdout
    assert expected.format(path=path) in lines[0] and str(path) in lines[0]
    if name == "latent16":
        assert lines[0].endswith("use its settings: model.latent_dim=16")


@pytest.mark.slow
def test_nan_stops_with_the_step_and_terms_keeps_the_last_good_checkpoint_and_resumes(
    tmp_path: Path, data_root: Path
) -> None:
    run, resumed = tmp_path / "run", tmp_path / "resumed"
    common = [f"data.root={data_root}", "logger=csv", "lr_schedule=constant", *FAST]
    result = run_cli(
        "encdec_pl.train",
        f"hydra.run.dir={run}",
        *common,
        "trainer.max_steps=40",
        "callbacks.fault_handler.simulate_nan_at_step=23",
    )
    assert result.returncode == 1
    [error] = _error_lines(result)
    last = run / "checkpoints" / "last.ckpt"
    assert error.startswith("error: non-finite loss at step 23: loss, pull, push, fake, latent_norm")
    assert f"the last good checkpoint, {last} (step 20), was kept" in error
    assert error.endswith(f"ckpt_path={last} callbacks.fault_handler.resume_lr_factor=0.5")
    # Noticed at the logging step 25, and no checkpoint was written after step 22.
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["status"] == "diverged" and summary["global_step"] == 25
    kept = _checkpoint(last)
    assert kept["global_step"] == 20
    assert all(torch.isfinite(t).all() for t in kept["state_dict"].values())

    command = error.split(" -m encdec_pl.train ", 1)[1].split()
    assert "callbacks.fault_handler.simulate_nan_at_step=23" not in command  # a one-run switch is not repeated
    result = run_cli("encdec_pl.train", f"hydra.run.dir={resumed}", *command, "trainer.max_steps=26")
    assert result.returncode == 0, result.stderr[-3000:]
    after = _checkpoint(resumed / "checkpoints" / "last.ckpt")
    assert after["global_step"] == 26
    # model.lr halved (common pins a constant rate: the halving under the cosine is in test_lr_schedule.py)
    assert after["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(0.5 * kept["hyper_parameters"]["lr"])
    assert all(torch.isfinite(t).all() for t in after["state_dict"].values())
    steps, losses = series(read_csv_history(resumed / "csv"), "train/loss", "step")
    assert min(steps) >= 20 and all(math.isfinite(v) for v in losses)


def _start(run_root: Path, *overrides: str) -> subprocess.Popen:
    """The CLI in its own process group, as a terminal would start it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("WANDB_API_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "encdec_pl.train", f"paths.log_dir={run_root}", *overrides],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for_training(process: subprocess.Popen, runs: Path, known: set[Path], timeout: float = 240) -> Path:
    """The new run folder, once training has started and saved its first checkpoint (the validation every 10
    steps writes last.ckpt): a signal sent then comes after training steps, whatever the machine's load. A fixed
    wait could send it before the first step, which stops with nothing to save (another case)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for log in set(runs.glob("*/train.log")) - known:
            started = "Ctrl-C (or SIGTERM) saves a checkpoint" in log.read_text()
            if started and (log.parent / "checkpoints" / "last.ckpt").is_file():
                return log.parent
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"training did not start: {process.communicate()[1][-3000:]}")


@pytest.mark.slow
def test_sigterm_then_ctrl_c_each_save_a_checkpoint_and_ckpt_path_last_resumes(tmp_path: Path, data_root: Path) -> None:
    runs = tmp_path / "train" / "runs"
    common = [f"data.root={data_root}", "logger.wandb.mode=offline", "trainer.max_steps=100000", *FAST]

    # A scheduler's preemption: SIGTERM to the main process only.
    first = _start(tmp_path, *common)
    first_run = _wait_for_training(first, runs, set())
    first.send_signal(signal.SIGTERM)
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stdout + stderr
    last = first_run / "checkpoints" / "last.ckpt"
    stopped_at = _checkpoint(last)["global_step"]
    summary = json.loads((first_run / "metrics.json").read_text())
    assert summary["status"] == "interrupted" and summary["global_step"] == stopped_at >= 1
    assert f"Stopped by SIGTERM at step {stopped_at}; checkpoint: {last}" in stdout  # the log goes to stdout
    assert f"ckpt_path={last}" in stdout  # the resume command

    # A fresh command with ckpt_path=last continues that run; then Ctrl-C in the terminal, which
    # reaches the whole process group, DataLoader workers included.
    second = _start(tmp_path, *common, "ckpt_path=last", "data.num_workers=1")
    second_run = _wait_for_training(second, runs, {first_run / "train.log"})
    os.killpg(second.pid, signal.SIGINT)
    stdout, stderr = second.communicate(timeout=120)
    assert second.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert "Traceback" not in stdout + stderr
    assert f"ckpt_path=last: resuming the latest run, {last}" in stdout  # a warning, naming the run
    assert f"Restored all states from the checkpoint at {last}" in stdout + stderr
    assert _checkpoint(second_run / "checkpoints" / "last.ckpt")["global_step"] > stopped_at  # went on from there
    run_id = next((first_run / "wandb").glob("offline-run-*")).name.rsplit("-", 1)[1]
    assert next((second_run / "wandb").glob("offline-run-*")).name.endswith(f"-{run_id}")  # the same W&B run


def test_fault_handler_config_names_its_arguments(cfg_train: DictConfig) -> None:
    assert set(cfg_train.callbacks.fault_handler) - {"_target_"} == set(inspect.signature(FaultHandler).parameters)
