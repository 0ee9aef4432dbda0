"""The same seed on CPU gives the same losses, step for step, in two separate processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from encdec_pl.runtime.history import read_csv_history, series

from .conftest import REPO_ROOT

STEPS = 30


@pytest.mark.slow
def test_same_seed_same_losses_step_for_step_on_cpu(tmp_path: Path, data_root: Path) -> None:
    runs = [tmp_path / "a", tmp_path / "b"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    # Both at once: one core each. A DataLoader worker rotates the images, so worker seeding counts too.
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "encdec_pl.train",
                f"hydra.run.dir={run}",
                f"data.root={data_root}",
                "seed=7",
                "logger=csv",
                "trainer.accelerator=cpu",
                f"trainer.max_steps={STEPS}",
                "trainer.log_every_n_steps=1",
                "trainer.limit_val_batches=0",
                "data.batch_size=32",
                "data.num_workers=1",
                "extras.print_config=false",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run in runs
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
    histories = [read_csv_history(run / "csv") for run in runs]
    for term in ("loss", "pull", "push", "fake", "latent_norm"):
        (steps_a, values_a), (steps_b, values_b) = (series(h, f"train/{term}", "step") for h in histories)
        assert len(steps_a) == STEPS and steps_a == steps_b
        assert values_a == values_b, f"train/{term} differs between two runs with the same seed"
    assert len(set(series(histories[0], "train/loss", "step")[1])) > STEPS // 2  # the losses do move
