"""Shared fixtures: the real datasets, composed configs, and one short real training run.

The data root is ENCDEC_DATA_DIR when set (CI points it at ../shared/datasets),
else ../shared/datasets next to the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from encdec_pl.runtime.config import register_resolvers

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("ENCDEC_DATA_DIR", REPO_ROOT.parent / "shared" / "datasets")).absolute()

# Tests run on CPU, one intra-op thread per test process: with pytest-xdist's two workers
# on a 2-core machine that is one core each, and no oversubscription.
torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Slow tests first, quick ones last: pytest-xdist hands tests out in collection order, so a
    # minutes-long test collected late can run alone on one worker while the other sits idle; with the
    # quick tests at the end, both workers stay busy until the last minute. Stable: each group keeps
    # its file order.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA_ROOT / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.fail(f"MNIST not found under {DATA_ROOT}: set ENCDEC_DATA_DIR to a folder holding MNIST/raw/*-ubyte")
    return DATA_ROOT


def compose_config(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose a config as the CLI would, with Hydra's runtime fields set, output under `output_dir`."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="encdec_pl.conf", version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.runtime.cwd = str(REPO_ROOT)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


@pytest.fixture
def cfg_train(tmp_path: Path, data_root: Path) -> DictConfig:
    """The default training config on the real data, writing to a temporary run folder, no W&B."""
    return compose_config("train", [f"data.root={data_root}", "logger=csv", "data.num_workers=0"], tmp_path)


def run_cli(module: str, *overrides: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run `python -m <module> <overrides>` in a subprocess, as a user would."""
    # Commands that take no data.root (the benchmarks) read the data root from the environment.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ENCDEC_DATA_DIR": str(DATA_ROOT)}
    if "PYTEST_XDIST_WORKER" in os.environ:
        env.setdefault("OMP_NUM_THREADS", "1")  # two test workers on two cores: one thread each
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("WANDB_API_KEY", None)  # tests never log online
    return subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=cwd or REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# One real training run shared by the end-to-end, resume and notebook tests: 150 steps of the
# default EDE on MNIST, validating every 50 steps, W&B offline. 150, not more: it is the longest
# setup of the suite (about 1.7 s a step on one thread of this project's 2-core CPU), and every test
# that reads it asserts what the first 150 steps already show (the terms move, the norm grows).
# Tests that use it carry `uses_trained_run`, which keeps them on one xdist worker so the
# run happens once per test session.
TRAIN_STEPS = 150
VAL_EVERY = 50
uses_trained_run = pytest.mark.xdist_group("trained_run")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        # Under xdist every worker has its own session; the run must still happen once.
        claim = tmp_path_factory.getbasetemp().parent / "trained_run.worker"
        try:
            with claim.open("x") as f:
                f.write(worker)
        except FileExistsError:
            pytest.fail(
                f"the shared training run already ran on {claim.read_text()}: tests that use it must carry "
                "`uses_trained_run` and the suite must run with --dist loadgroup (as `make test` does)"
            )
    run_dir = tmp_path_factory.mktemp("trained_run")
    result = run_cli(
        "encdec_pl.train",
        f"hydra.run.dir={run_dir}",
        f"data.root={data_root}",
        "data.num_workers=1",
        f"trainer.max_steps={TRAIN_STEPS}",
        f"trainer.val_check_interval={VAL_EVERY}",
        "trainer.limit_val_batches=10",
        "trainer.log_every_n_steps=5",
        "trainer.accelerator=cpu",
        "logger.wandb.mode=offline",
        "seed=0",
    )
    if result.returncode != 0:
        pytest.fail(f"training run failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    (run_dir / "cli_output.txt").write_text(result.stdout + result.stderr)
    return run_dir


# The evaluation classifier of the tests: trained once per test process, on a small budget, into a
# temporary cache (the user's ~/.cache is never touched).
CLASSIFIER_BATCHES = 60  # one short epoch: ~90% test accuracy, plenty to tell digits apart in tests


@pytest.fixture(scope="session")
def eval_classifier(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    result = run_cli(
        "encdec_pl.classifier",
        f"data.root={data_root}",
        f"classifier.path={cache}/classifiers/mnist.pt",
        "classifier.epochs=1",
        f"classifier.limit_train_batches={CLASSIFIER_BATCHES}",
        "classifier.accelerator=cpu",
        "data.num_workers=0",
        f"hydra.run.dir={cache}/run",
    )
    if result.returncode != 0:
        pytest.fail(f"classifier training failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return cache / "classifiers" / "mnist.pt"
