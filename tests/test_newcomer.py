"""The newcomer's path: the README's set-up commands from a fresh clone, `make help`, and `--help` everywhere."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from .conftest import REPO_ROOT

SOURCE = REPO_ROOT / "src" / "encdec_pl"


def makefile_targets() -> list[str]:
    text = (REPO_ROOT / "Makefile").read_text()
    return [t for t in re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.MULTILINE)]


def test_make_help_lists_every_target() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in re.sub(r"\x1b\[[0-9;]*m", "", result.stdout).splitlines() if line.strip()}
    targets = makefile_targets()
    assert {"help", "install", "train", "test", "lint"} <= set(targets)
    assert set(targets) <= listed, f"targets without a '## description': {set(targets) - listed}"


def entry_points() -> list[str]:
    """Every `python -m encdec_pl...` module: those with a __main__ guard, and packages with __main__.py."""
    modules = []
    for path in sorted(SOURCE.rglob("*.py")):
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        if path.name == "__main__.py":
            modules.append(".".join(parts[:-1]))
        elif re.search(r"^if __name__ == .__main__.:", path.read_text(), flags=re.MULTILINE):
            modules.append(".".join(parts))
    return modules


@pytest.mark.slow
def test_every_entry_point_says_what_it_does_and_where_it_writes() -> None:
    modules = entry_points()
    assert "encdec_pl.train" in modules
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    # All at once: each is mostly the import of torch and Lightning.
    running = {
        module: subprocess.Popen(
            [sys.executable, "-m", module, "--help"],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for module in modules
    }
    for module, process in running.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, f"{module} --help: {stderr[-2000:]}"
        text = stdout + stderr
        assert f"python -m {module}" in text, f"{module} --help does not show how to run it"
        assert len([line for line in text.splitlines() if line.strip()]) >= 3, f"{module} --help says too little"
        assert re.search(r"\b(writes?|written|saves?|saved|outputs?)\b", text, re.IGNORECASE), (
            f"{module} --help does not say where it writes"
        )


def readme_commands(heading: str) -> list[list[str]]:
    """The command lines of each ```bash block in the README section `heading`, comments dropped."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    return [
        [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]
        for block in blocks
    ]


@pytest.mark.slow
def test_readme_setup_commands_work_from_a_fresh_clone(tmp_path: Path, data_root: Path) -> None:
    if not (REPO_ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    install_then_train, install_then_test = readme_commands("Set up, train, test")[:2]
    assert install_then_train == ["make install", ".venv/bin/python -m encdec_pl.train loss.fake_weight=2.0"]
    assert install_then_test == ["make install", "make test"]

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True, timeout=120)
    # `make install` as written, minus the downloads: the recipe's own commands, with the
    # dependencies borrowed from this environment (CI runs the real `make install`).
    dry_run = subprocess.run(["make", "-n", "install"], cwd=clone, capture_output=True, text=True, check=True)
    assert "-m venv .venv" in dry_run.stdout and "pip install -e '.[dev]'" in dry_run.stdout
    # --without-pip: pip and setuptools come from this environment too (the venv's bundled ones are older).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", ".venv"], cwd=clone, check=True, timeout=120)
    python = clone / ".venv" / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", "."],
        cwd=clone,
        check=True,
        capture_output=True,
        timeout=300,
    )

    # The train command exactly as written (20 epochs): stopped with Ctrl-C once it trains.
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "WANDB_API_KEY")}
    env.update(ENCDEC_DATA_DIR=str(data_root), WANDB_MODE="offline", OMP_NUM_THREADS="1")
    train = subprocess.Popen(
        install_then_train[1].split(),
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    logs: list[Path] = []
    while time.monotonic() < deadline and train.poll() is None:
        logs = list((clone / "outputs" / "train" / "runs").glob("*/train.log"))
        # The time estimate is logged once steps have run: a Ctrl-C before the first step ends has nothing new to
        # save (by design, "Stopped ... before the first training step"), so the train-start line is too early.
        if logs and "Estimated training time" in logs[0].read_text():
            break
        time.sleep(0.5)
    assert logs and train.poll() is None, f"training did not start: {train.communicate()[1][-3000:]}"
    os.killpg(train.pid, signal.SIGINT)
    stdout, stderr = train.communicate(timeout=300)
    run = logs[0].parent
    assert train.returncode == 130, stderr[-3000:]
    assert (run / "checkpoints" / "last.ckpt").is_file() and f"ckpt_path={run}/checkpoints/last.ckpt" in stdout

    # The test command's tools work from the clone: pytest finds the suite (running it is CI's job).
    collected = subprocess.run(
        [clone / ".venv" / "bin" / "python", "-m", "pytest", "--collect-only", "-q"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert collected.returncode == 0, collected.stdout[-3000:]
    assert re.search(r"\d+ tests collected", collected.stdout)
    assert (
        f"{clone}"
        in subprocess.run(
            [python, "-c", "import encdec_pl; print(encdec_pl.__file__)"], capture_output=True, text=True, cwd=tmp_path
        ).stdout
    )
