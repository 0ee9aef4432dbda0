"""Hydra launchers for sweeps, built on the Ray and submitit launcher plugins.

`RayLauncher` (hydra/launcher=local and =ray) is Hydra's Ray launcher with a placement rule:
on a cluster with GPUs every job asks Ray for `num_gpus` (1, or 1/k to pack k jobs) of a GPU.
Ray schedules it only when that share is free and sets CUDA_VISIBLE_DEVICES to its GPU in the
job's process, which the launcher makes a fresh one per GPU job, so CUDA starts after the GPU is
set: the job sees exactly one GPU, and no two jobs share one unless packing asks for it. Without GPUs every
job reserves `num_cpus` CPUs, so at most (the instance's CPUs / num_cpus) jobs run at once, and
Ray sets the job's OMP_NUM_THREADS (torch's thread count) to num_cpus. The same code joins a
multi-machine Ray cluster when given its address.

`SlurmLauncher` (hydra/launcher=slurm) is submitit's SLURM launcher whose requeued jobs (after a
preemption or a time limit) resume from their own checkpoints/last.ckpt.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra_plugins.hydra_ray_launcher import ray_launcher
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from omegaconf import DictConfig, OmegaConf, open_dict

# Hydra imports every hydra_plugins module at the start of any Hydra app: encdec_pl (torch,
# Lightning) and ray are imported only inside the methods that need them.

log = logging.getLogger(__name__)

# How long running jobs get to stop cleanly (Lightning saves what it can) after Ctrl-C.
INTERRUPT_GRACE_S = 60
WAIT_S = 1.0


class RayLauncher(ray_launcher.RayLauncher):
    """Hydra's Ray launcher, with each job placed on one GPU (or CPUs), and every job's result kept.

    `ray.remote.num_gpus` is each job's share of a GPU: 1 (the default) gives it a GPU of its own,
    1/k packs k jobs on a GPU. On a cluster without GPUs it is ignored and jobs run on CPU.
    `ray.remote.num_cpus` is the CPUs each job reserves (and its torch threads).
    """

    def __init__(self, ray: DictConfig) -> None:
        from encdec_pl.errors import ConfigError, is_number

        num_gpus = (ray.get("remote") or {}).get("num_gpus", 1)
        if not (is_number(num_gpus) and 0 < num_gpus <= 1):
            raise ConfigError(
                f"hydra.launcher.ray.remote.num_gpus={num_gpus!r} is invalid: must be in (0, 1], a job's share of "
                "one GPU (1: a GPU of its own; 0.5: two jobs per GPU); sweep jobs use one device each"
            )
        super().__init__(ray=ray)

    def job_resources(self) -> dict[str, Any]:
        """Ray options of each job on the running cluster: its GPU share only if the cluster has GPUs."""
        import ray

        options = OmegaConf.to_container(self.ray_cfg.remote, resolve=True) if self.ray_cfg.get("remote") else {}
        assert isinstance(options, dict)
        options.setdefault("num_gpus", 1)
        if ray.cluster_resources().get("GPU", 0) == 0:
            options["num_gpus"] = 0  # a job asking for a GPU would wait forever
        return options

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import ray
        from hydra_plugins.hydra_ray_launcher._launcher_util import start_ray

        from encdec_pl.runtime.sweep.job import check_sweep

        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        check_sweep(self.config)  # before anything starts; each job checks its own too
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        start_ray(self.ray_cfg.init)
        options = self.job_resources()
        # A GPU job gets a fresh worker process (max_calls=1): Ray 2.60 reuses workers for GPU tasks
        # too, and a reused process keeps the CUDA context (and memory) of its previous job's GPU
        # whatever CUDA_VISIBLE_DEVICES says next. CPU jobs reuse workers, saving the imports.
        run_job = ray.remote(max_calls=1 if options["num_gpus"] else 0)(_run_job_in_worker).options(**options)
        log.info(
            "Ray launcher: %d jobs into %s; each job: %g GPU, %g CPU; cluster: %g GPU, %g CPU",
            len(job_overrides),
            sweep_dir,
            options["num_gpus"],
            options.get("num_cpus", 1),
            ray.cluster_resources().get("GPU", 0),
            ray.cluster_resources().get("CPU", 0),
        )

        pending: dict[Any, tuple[int, Sequence[str], DictConfig]] = {}
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = f"job_id_for_{idx}"
                sweep_config.hydra.job.num = idx
            log.info("\t#%d : %s -> %s", idx, " ".join(filter_overrides(overrides)), _job_dir(sweep_config))
            ref = run_job.remote(
                hydra_context=self.hydra_context,
                sweep_config=sweep_config,
                task_function=self.task_function,
                singleton_state=Singleton.get_state(),
            )
            pending[ref] = (idx, overrides, sweep_config)

        try:
            results = _collect(pending)
        except KeyboardInterrupt:
            _interrupt(pending)
            sys.exit(130)  # the shell's code for Ctrl-C, without a traceback from deep inside Ray
        failed = [idx for idx, result in sorted(results.items()) if result.status != JobStatus.COMPLETED]
        log.info(
            "%d of %d jobs completed%s; summary: python -m encdec_pl.report %s",
            len(results) - len(failed),
            len(results),
            f", failed: {' '.join(f'#{i}' for i in failed)}" if failed else "",
            sweep_dir,
        )
        return [results[idx] for idx in sorted(results)]


def _run_job_in_worker(**kwargs: Any) -> JobReturn:
    """Hydra's job runner for Ray workers, with a failed job's user error made to travel back as one.

    The result is pickled back to the driver, which drops an exception's __cause__; without
    `portable_error` a bad setting wrapped by Hydra's instantiate would reach the user as a traceback.
    """
    from hydra_plugins.hydra_ray_launcher._launcher_util import _run_job

    from encdec_pl.runtime.cli import prepare_process
    from encdec_pl.runtime.sweep.failures import portable_error

    prepare_process()  # a fresh worker process: the job's config needs the resolvers
    result = _run_job(**kwargs)
    if result.status == JobStatus.FAILED:
        result.return_value = portable_error(result._return_value)
    return result


def _collect(pending: dict[Any, tuple[int, Sequence[str], DictConfig]]) -> dict[int, JobReturn]:
    """Wait for every job, in the order they finish; a job whose process died fails alone.

    Hydra's own Ray launcher calls ray.get on each job in turn, so the first job whose worker
    died (killed, out of memory) raised in the driver and ended the sweep, killing the others.
    """
    import ray

    from encdec_pl.runtime.sweep.failures import describe_error

    results: dict[int, JobReturn] = {}
    start = time.monotonic()
    while pending:
        # Short waits: a blocking ray.wait would not see Ctrl-C until a job finished.
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_S)
        if not ready:
            continue
        ref = ready[0]
        idx, overrides, sweep_config = pending.pop(ref)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as err:
            result = _died(overrides, sweep_config, err)
        elapsed, command = time.monotonic() - start, " ".join(filter_overrides(overrides))
        if result.status == JobStatus.COMPLETED:
            log.info("#%d completed after %.0f s: %s", idx, elapsed, command)
        else:
            log.error("#%d failed after %.0f s: %s\n\t%s", idx, elapsed, command, describe_error(result._return_value))
        results[idx] = result
    return results


def _died(overrides: Sequence[str], sweep_config: DictConfig, err: Exception) -> JobReturn:
    """The result of a job that never returned: recorded in its folder as failed."""
    from encdec_pl.errors import SweepError, first_line
    from encdec_pl.runtime.sweep.failures import record_failure

    job_dir = _job_dir(sweep_config)
    error = SweepError(f"the job's process died before it finished (killed, or out of memory): {first_line(err)}")
    record_failure(job_dir, error)
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    if not overrides_file.is_file():  # died before Hydra wrote it: the report still lists the job
        overrides_file.parent.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(list(overrides)), overrides_file)
    return JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=error)


def _job_dir(sweep_config: DictConfig) -> Path:
    return Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)


def _interrupt(pending: dict[Any, tuple[int, Sequence[str], DictConfig]]) -> None:
    """Ctrl-C: pass it on to the running jobs (Lightning stops them cleanly) and drop the queued ones."""
    import ray

    unfinished = " ".join(f"#{idx}" for idx, _, _ in sorted(pending.values(), key=lambda job: job[0]))
    log.warning("Interrupted: stopping the unfinished jobs %s (up to %d s)", unfinished, INTERRUPT_GRACE_S)
    for ref in pending:
        ray.cancel(ref)  # a KeyboardInterrupt inside a running job; a queued job never starts
    deadline = time.monotonic() + INTERRUPT_GRACE_S
    while pending and time.monotonic() < deadline:
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=WAIT_S)
        for ref in ready:
            pending.pop(ref)
    log.warning(
        "Stopped. A started job keeps its folder (train.log, checkpoints/last.ckpt): resume it with its overrides "
        "plus ckpt_path=<job folder>/checkpoints/last.ckpt"
    )


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """One SLURM job per sweep job, via submitit; requeued jobs resume from their last checkpoint.

    On preemption (when the cluster signals it) or shortly before the time limit, SLURM sends
    SIGUSR2; submitit then calls `checkpoint` in the job and requeues what it returns. Here that
    is the same job with `ckpt_path=last` added once the job has written checkpoints/last.ckpt,
    so the requeued job continues at the saved step, in the same W&B run.
    """

    def __init__(self, requeue: bool = True, **params: Any) -> None:
        super().__init__(**params)
        self.requeue = requeue

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.core.utils import FailedJobError

        from encdec_pl.errors import ConfigError, SweepError
        from encdec_pl.runtime.sweep.job import check_sweep

        missing = [command for command in ("sbatch", "srun") if shutil.which(command) is None]
        if missing:
            raise ConfigError(
                f"hydra/launcher=slurm needs SLURM's {' and '.join(missing)}, not found on PATH here: "
                "run the sweep from a SLURM login node, or use hydra/launcher=local on this machine"
            )
        check_sweep(self.config)  # before anything is submitted; each job checks its own too
        try:
            return super().launch(job_overrides, initial_job_idx)
        except FailedJobError as err:
            if "sbatch" not in str(err):
                raise
            detail = " ".join(str(err).split())
            raise SweepError(
                f"SLURM refused the sweep ({detail}); check hydra.launcher.partition and the limits"
            ) from err

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """Run one job in its SLURM process, which composes the job's config: the resolvers first."""
        from encdec_pl.runtime.cli import prepare_process

        prepare_process()
        return super().__call__(*args, **kwargs)

    def checkpoint(self, sweep_overrides: list[str], *args: Any, **kwargs: Any) -> Any:
        """The submission that replaces this job when SLURM requeues it (None: do not requeue)."""
        from hydra.core.hydra_config import HydraConfig

        if not self.requeue:
            return None
        job_dir = Path(HydraConfig.get().runtime.output_dir)
        if (job_dir / "checkpoints" / "last.ckpt").is_file():
            sweep_overrides = [o for o in sweep_overrides if not o.lstrip("+").startswith("ckpt_path=")]
            sweep_overrides.append("ckpt_path=last")
        return super().checkpoint(sweep_overrides, *args, **kwargs)


# What `python -m encdec_pl.train` registers with Hydra (runtime.cli.prepare_process).
LAUNCHERS = (RayLauncher, SlurmLauncher)
