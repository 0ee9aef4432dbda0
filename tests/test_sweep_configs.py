"""Sweep configs compose into the launchers and sweeper they name, and refuse what sweeps cannot do.

No cluster here: the SLURM launcher is built from its config and asked for its requeue
submission directly; its sbatch script is checked end to end in test_sweep.py.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class
from omegaconf import DictConfig

from encdec_pl.errors import CheckpointError, ConfigError, InvalidArgument
from encdec_pl.runtime.sweep.job import check_sweep, optimized_metric_value, require_one_device
from hydra_plugins.encdec_pl_launchers.launchers import RayLauncher, SlurmLauncher

from .conftest import compose_config


def launcher_config(overrides: list[str], tmp_path: Path) -> DictConfig:
    compose_config("train", overrides, tmp_path)
    return HydraConfig.get().launcher


# Composed outside a run there is no sweep folder or job name for the SLURM config to refer to.
SLURM_OUTSIDE_A_RUN = ["hydra.launcher.submitit_folder=/tmp/submitit", "hydra.launcher.name=test"]


def build(launcher: DictConfig) -> object:
    """The launcher object, built as Hydra builds it (minus Hydra's wrapping of its errors)."""
    return get_class(launcher._target_)(**{k: v for k, v in launcher.items() if k != "_target_"})


def test_multirun_defaults_to_the_local_launcher_with_one_gpu_per_job(tmp_path: Path) -> None:
    launcher = launcher_config([], tmp_path)
    assert launcher._target_.endswith("encdec_pl_launchers.launchers.RayLauncher")
    assert launcher.ray.init.address == "local"  # its own Ray instance, never someone else's cluster
    assert launcher.ray.remote.num_gpus == 1 and launcher.ray.remote.num_cpus == 1
    assert launcher.ray.remote.max_retries == 0


def test_ray_launcher_joins_a_cluster_by_address(tmp_path: Path) -> None:
    launcher = launcher_config(["hydra/launcher=ray", "hydra.launcher.ray.init.address=head:6379"], tmp_path)
    assert launcher.ray.init.address == "head:6379"
    assert isinstance(build(launcher), RayLauncher)


@pytest.mark.parametrize("num_gpus", [0, 2, -1, "half"])
def test_ray_launcher_refuses_a_job_with_other_than_one_gpu_share(num_gpus: object, tmp_path: Path) -> None:
    launcher = launcher_config([f"hydra.launcher.ray.remote.num_gpus={num_gpus}"], tmp_path)
    with pytest.raises(ConfigError, match=r"hydra.launcher.ray.remote.num_gpus=.* must be in \(0, 1\]"):
        build(launcher)


def test_ray_launcher_typo_is_caught_by_the_plugin_schema(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="num_gpu"):
        launcher_config(["hydra.launcher.ray.remote.num_gpu=1"], tmp_path)


def test_slurm_config_sets_gpus_time_partition_and_requeue(tmp_path: Path) -> None:
    overrides = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=90"]
    overrides += SLURM_OUTSIDE_A_RUN
    launcher = build(launcher_config(overrides, tmp_path))
    assert isinstance(launcher, SlurmLauncher) and launcher.requeue
    assert launcher.params["partition"] == "gpu" and launcher.params["timeout_min"] == 90
    assert launcher.params["gpus_per_node"] == 1 and launcher.params["tasks_per_node"] == 1
    assert launcher.params["max_num_timeout"] == 3 and launcher.params["signal_delay_s"] == 120
    assert "requeue" not in launcher.params  # ours, not an sbatch option


def test_requeued_slurm_job_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    job_dir = tmp_path / "3"
    compose_config("train", ["hydra/launcher=slurm", *SLURM_OUTSIDE_A_RUN], job_dir)
    launcher = build(HydraConfig.get().launcher)  # HydraConfig is now as inside job 3
    args = ("hydra.sweep.dir", 3, "job_id_for_3", {})

    # No checkpoint yet (preempted during the first validation): requeued as it was.
    submission = launcher.checkpoint(["loss.fake_weight=2", "ckpt_path=/old.ckpt"], *args)
    assert submission.function is launcher and submission.args == (["loss.fake_weight=2", "ckpt_path=/old.ckpt"], *args)

    (job_dir / "checkpoints").mkdir(parents=True)
    (job_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
    submission = launcher.checkpoint(["loss.fake_weight=2", "ckpt_path=/old.ckpt"], *args)
    assert submission.args[0] == ["loss.fake_weight=2", "ckpt_path=last"]  # this job's own last.ckpt

    launcher.requeue = False
    assert launcher.checkpoint(["loss.fake_weight=2"], *args) is None  # submitit then ends the job


def test_hparams_search_uses_optuna_on_a_quality_metric(tmp_path: Path) -> None:
    cfg = compose_config("train", ["hparams_search=ede_optuna"], tmp_path)
    sweeper = HydraConfig.get().sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "minimize"
    # the trials measure quality, and the search minimises the samples' Frechet distance
    assert cfg.optimized_metric == "quality/frechet/samples"
    assert cfg.callbacks.quality._target_.endswith("QualityMonitor")
    assert set(sweeper.params) == {"loss.fake_weight", "model.latent_dim", "model.lr"}
    assert compose_config("train", [], tmp_path).optimized_metric is None  # plain runs return nothing


def test_optimized_metric_value_names_what_was_logged() -> None:
    metrics = {"val/loss": 0.5, "train/loss": 0.7}
    assert optimized_metric_value(metrics, "val/loss") == 0.5
    assert optimized_metric_value(metrics, None) is None
    with pytest.raises(ConfigError, match=r"optimized_metric='val/los' was not logged .*train/loss, val/loss"):
        optimized_metric_value(metrics, "val/los")


@pytest.mark.parametrize("trainer", ["ddp", "cpu"])
def test_sweeps_train_one_device_per_job(trainer: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [f"trainer={trainer}"], tmp_path)
    if trainer == "ddp":
        with pytest.raises(ConfigError, match="sweep jobs train on one device each.*trainer=ddp"):
            require_one_device(cfg.trainer)
    else:
        require_one_device(cfg.trainer)


def test_a_search_without_the_evaluation_classifier_stops_before_any_trial(tmp_path: Path) -> None:
    # The launchers run check_sweep before starting jobs: without it, every trial of the search
    # would start, load the data and fail on its own.
    cfg = compose_config("train", ["hparams_search=ede_optuna", f"paths.cache_dir={tmp_path}"], tmp_path)
    classifier = tmp_path / "classifiers" / "mnist.pt"
    with pytest.raises(CheckpointError, match=rf"needs the evaluation classifier for mnist at {classifier}: "
                       r"train it once with python -m encdec_pl.classifier data=mnist"):  # fmt: skip
        check_sweep(cfg)
    classifier.parent.mkdir(parents=True)
    classifier.touch()
    check_sweep(cfg)  # present: the search may start
    check_sweep(compose_config("train", [f"paths.cache_dir={tmp_path / 'empty'}"], tmp_path))  # no quality: no need


def test_config_errors_survive_the_trip_from_a_worker() -> None:
    # A job's error comes back from its Ray worker pickled.
    err = pickle.loads(pickle.dumps(InvalidArgument("latent_dim", 0, "a positive integer")))
    assert (err.name, err.value, str(err)) == ("latent_dim", 0, "latent_dim=0 is invalid: must be a positive integer")


def test_slurm_launcher_off_a_cluster_says_so_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = build(launcher_config(["hydra/launcher=slurm", *SLURM_OUTSIDE_A_RUN], tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    with pytest.raises(ConfigError, match="hydra/launcher=slurm needs SLURM's sbatch and srun, not found on PATH"):
        launcher.launch([["loss.fake_weight=1"]], initial_job_idx=0)
