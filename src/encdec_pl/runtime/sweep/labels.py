"""W&B labels of runs: one group per sweep, each job tagged with its overrides, readable run names.

Registered as config resolvers (conf/logger/wandb.yaml uses them) and evaluated inside each
job, where Hydra's config says whether this is a multirun and what the job's overrides are.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

WANDB_TAG_LENGTH = 64  # W&B refuses longer tags
RUN_NAME_LENGTH = 128  # W&B shows run names up to this length

# Short names of the settings that runs are usually told apart by: loss.fake_weight=2
# model.latent_dim=32 seed=0 names the run fw2-z32-seed0. Other settings appear as key=value
# (their last part: trainer.max_steps=300 -> max_steps=300), a config group choice as its option (model=ae -> ae);
# paths (values with a "/") and `tags` are left out.
NAME_ABBREVIATIONS = {
    "loss.fake_weight": "fw",
    "model.latent_dim": "z",
    "seed": "seed",
    "model.lr": "lr",
    "loss.margin": "margin",
    "data.batch_size": "bs",
}
NOT_IN_NAME = {"tags", "optimized_metric"}  # labels and bookkeeping, not settings of the run
DEFAULT_RUN_NAME = "defaults"  # a run without overrides


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_group() -> str:
    """The W&B group of a sweep job: the name of its sweep folder ("" outside a sweep).

    Every job of one sweep shares the folder, so they share the group; the folder's default
    name is the sweep's start time, and `hydra.sweep.dir=.../<name>` names the group.
    """
    return Path(str(HydraConfig.get().sweep.dir)).name if in_multirun() else ""


def job_overrides() -> list[str]:
    """This run's command-line overrides (`key=value`, as typed) that describe the experiment.

    Keys listed in hydra.job.config.override_dirname.exclude_keys (paths and other settings that
    do not describe the experiment) are left out. Empty outside a Hydra run.
    """
    if not HydraConfig.initialized():
        return []
    hydra_cfg = HydraConfig.get()
    excluded = set(hydra_cfg.job.config.override_dirname.exclude_keys)
    return [str(o) for o in hydra_cfg.overrides.task if _override_key(str(o)) not in excluded]


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def sweep_tags(tags: list[str] | None) -> list[str]:
    """`tags`, plus in a sweep job each of its overrides as `key=value` (see job_overrides);
    a tag longer than W&B allows is cut."""
    result = [str(t) for t in tags or []]
    if not in_multirun():
        return result
    for override in job_overrides():
        tag = override[:WANDB_TAG_LENGTH]
        if tag not in result:
            result.append(tag)
    return result


def _short_value(text: str) -> str:
    """2.0 -> 2, 0.50 -> 0.5; anything else as typed, without spaces."""
    try:
        number = float(text)
    except ValueError:
        return text.replace(" ", "")
    if math.isfinite(number) and number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return text if "e" in text.lower() else repr(number)


def run_name_from(overrides: list[str], groups: Collection[str] = ()) -> str:
    """A readable run name from `key=value` overrides: loss.fake_weight=2 model.latent_dim=32 seed=0
    -> fw2-z32-seed0. `groups` are the config group names (model=ae -> ae)."""
    first, rest = [], []  # the usual settings and group choices first, so that a cut keeps them
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key in NOT_IN_NAME or key.startswith("hydra.") or "/" in value:  # no labels, no paths
            continue
        value = _short_value(value)
        if key in NAME_ABBREVIATIONS:
            first.append(f"{NAME_ABBREVIATIONS[key]}{value}")
        elif key in groups:
            first.append(value)
        else:
            rest.append(f"{key.rsplit('.', 1)[-1]}={value}")
    return "-".join(first + rest)[:RUN_NAME_LENGTH] or DEFAULT_RUN_NAME


def run_name() -> str:
    """The W&B name of this run, from its overrides (run_name_from); "defaults" when it has none."""
    groups = set(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else set()
    return run_name_from(job_overrides(), groups)
