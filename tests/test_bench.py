"""The benchmark commands run end to end in their short mode and print their tables (figures: docs/speed.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from encdec_pl.bench.flops import arithmetic_bound, training_step_flops

from .conftest import run_cli


def test_flops_of_a_training_step_scale_with_the_batch() -> None:
    per_image = training_step_flops(8) / 8
    assert training_step_flops(16) == pytest.approx(16 * per_image, rel=1e-6)
    # conv and linear work of 3 encoder passes and 1 decoder pass, forward and backward: ~0.5 GFLOP per image
    assert 4e8 < per_image < 6e8
    assert arithmetic_bound(per_image, 989e12) == pytest.approx(989e12 / per_image)


@pytest.mark.slow
def test_bench_quick_prints_the_three_loops_ratios_bound_and_equilibrium(tmp_path: Path, data_root: Path) -> None:
    result = run_cli("encdec_pl.bench", "--config-name", "bench_quick", f"hydra.run.dir={tmp_path}", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for line in ("published loop", "conventional Lightning", "fast path", "device: cpu"):
        assert line in out
    assert "batch 128: fast path / published loop = " in out and "fast path / conventional Lightning = " in out
    assert "GFLOP per training step" in out and "H100 SXM" in out
    assert "equilibrium, conventional Lightning: step" in out and "equilibrium, fast path: step" in out
    report = json.loads((tmp_path / "bench.json").read_text())
    loops = {t["name"]: t for t in report["timings"]}
    assert set(loops) == {"published loop", "conventional Lightning", "fast path"}
    assert all(t["median"] > 0 and t["peak_memory_mb"] > 0 for t in loops.values())
    # the rows ran what they say: the conventional loop with workers in fp32, the fast path on the device
    assert loops["conventional Lightning"]["settings"]["precision"] == "32-true"
    assert loops["conventional Lightning"]["settings"]["data"].endswith("workers")
    assert loops["fast path"]["settings"]["data"] == "on device"


@pytest.mark.slow
def test_packing_runs_jobs_side_by_side(tmp_path: Path, data_root: Path) -> None:
    result = run_cli(
        "encdec_pl.bench.packing", "jobs=[1,2]", "steps=2", "warmup_steps=1", "batch_size=32",
        f"hydra.run.dir={tmp_path}", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "packing.json").read_text())
    assert [row["jobs"] for row in report["rows"]] == [1, 2]
    cores = os.cpu_count() or 1
    assert [row["threads_per_job"] for row in report["rows"]] == [cores, max(1, cores // 2)]  # no oversubscription
    assert all(row["aggregate_img_per_s"] > 0 for row in report["rows"])
    assert "jobs-per-GPU" in result.stdout


def test_interleaved_step_timing_covers_every_variant() -> None:
    from encdec_pl.bench.step import VARIANTS, interleaved_steps

    seconds = interleaved_steps(batch_size=8, rounds=2, warmup=0, clock="cpu")
    assert seconds.keys() == VARIANTS.keys()
    assert all(len(values) == 2 and min(values) > 0 for values in seconds.values())
