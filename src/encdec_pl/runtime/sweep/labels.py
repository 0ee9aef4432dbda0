"""W&B labels of sweep jobs: one group per sweep, each job tagged with its overrides.

Registered as config resolvers (conf/logger/wandb.yaml uses them) and evaluated inside each
job, where Hydra's config says whether this is a multirun and what the job's overrides are.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

WANDB_TAG_LENGTH = 64  # W&B refuses longer tags


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_group() -> str:
    """The W&B group of a sweep job: the name of its sweep folder ("" outside a sweep).

    Every job of one sweep shares the folder, so they share the group; the folder's default
    name is the sweep's start time, and `hydra.sweep.dir=.../<name>` names the group.
    """
    return Path(str(HydraConfig.get().sweep.dir)).name if in_multirun() else ""


def sweep_tags(tags: list[str] | None) -> list[str]:
    """`tags`, plus in a sweep job each of its overrides as `key=value`.

    Keys listed in hydra.job.config.override_dirname.exclude_keys (paths and other settings that
    do not describe the experiment) are left out; a tag longer than W&B allows is cut.
    """
    result = [str(t) for t in tags or []]
    if not in_multirun():
        return result
    hydra_cfg = HydraConfig.get()
    excluded = set(hydra_cfg.job.config.override_dirname.exclude_keys)
    for override in hydra_cfg.overrides.task:
        key = str(override).split("=", 1)[0].lstrip("+~")
        tag = str(override)[:WANDB_TAG_LENGTH]
        if key not in excluded and tag not in result:
            result.append(tag)
    return result
