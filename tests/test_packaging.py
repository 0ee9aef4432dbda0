"""`python -m encdec_pl.train` from a built wheel (non-editable): configs must ship inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_wheel_install_finds_its_configs_and_trains(tmp_path: Path, data_root: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, REPO_ROOT],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(dist.glob("encdec_pl-*.whl"))
    # A fresh environment holding only the wheel; the dependencies are borrowed from this
    # environment through a .pth line (which does not activate this checkout's editable install).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    Path(site, "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", wheel], check=True, timeout=300)

    elsewhere = tmp_path / "elsewhere"  # no conf/ folder anywhere near
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    where = subprocess.run(
        [python, "-c", "import encdec_pl; print(encdec_pl.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=env,
    )
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    run = subprocess.run(
        [python, "-m", "encdec_pl.train", "debug=fdr", f"data.root={data_root}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert (tmp_path / "run" / "config.yaml").is_file()
