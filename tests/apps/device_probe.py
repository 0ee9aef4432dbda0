"""A Hydra app with the project's config and launchers whose jobs record what devices they were given.

    python tests/apps/device_probe.py -m seed='range(8)' hydra.launcher.ray.init.num_gpus=4 ...

Each job writes <job folder>/probe.json: its GPU ids as Ray assigned them, CUDA_VISIBLE_DEVICES
and OMP_NUM_THREADS as the job's process sees them, its pid, and when it started and ended.
`+probe.peers=k` makes each job wait (up to 60 s) until k jobs are running at once, to show
that k jobs really can share a GPU.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from omegaconf import DictConfig

from hydra_plugins.encdec_pl_launchers.launchers import RayLauncher

# What encdec_pl.runtime.cli.prepare_process does for the train command, without importing encdec_pl (torch, Lightning):
# the probe's jobs should start as fast as Ray can start them.
Plugins.instance().register(RayLauncher)


def _running_jobs(running_dir: Path) -> int:
    return len(list(running_dir.glob("*")))


@hydra.main(version_base="1.3", config_path="pkg://encdec_pl.conf", config_name="train")
def probe(cfg: DictConfig) -> None:
    import ray

    start = time.time()
    job_dir = Path(HydraConfig.get().runtime.output_dir)
    running_dir = job_dir.parent / "running"
    running_dir.mkdir(exist_ok=True)
    marker = running_dir / str(HydraConfig.get().job.num)
    marker.touch()
    peers = cfg.get("probe", {}).get("peers", 1)
    saw_peers = False
    while time.time() - start < 60:
        saw_peers = _running_jobs(running_dir) >= peers
        if saw_peers:
            break
        time.sleep(0.1)
    time.sleep(cfg.get("probe", {}).get("sleep", 0.5))
    record = {
        "job": HydraConfig.get().job.num,
        "gpu_ids": [int(i) for i in ray.get_gpu_ids()],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "pid": os.getpid(),
        "saw_peers": saw_peers,
        "start": start,
        "end": time.time(),
    }
    marker.unlink()
    (job_dir / "probe.json").write_text(json.dumps(record))


if __name__ == "__main__":
    probe()
