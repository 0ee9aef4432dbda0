"""Reading a finished (or running) sweep folder back: each job's overrides, outcome and metrics.

A Hydra multirun folder holds one folder per job (`0/`, `1/`, ...) with `.hydra/overrides.yaml`
(the job's command-line overrides) and `.hydra/config.yaml` (its composed config). What a job
wrote about its end:
- `metrics.json` {status, global_step, metrics}: written by every training run that started;
- `error.txt`: why it failed (sweep/failures.py), when it raised or its process died.
A job with neither was killed before it could write anything, or is still running.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from encdec_pl.errors import SweepError
from encdec_pl.runtime.history import read_run_history
from encdec_pl.runtime.sweep.failures import read_failure

NO_RESULT = "no metrics.json or error.txt: killed before it could write them, or still running"


@dataclass
class JobResult:
    name: str  # the job's folder, relative to the sweep folder ("0", "1", ...)
    folder: Path
    overrides: dict[str, str]  # key (or config group) -> value, as typed on the command line
    status: str  # completed | interrupted | diverged | failed | running (still, or killed: kill -9, OOM, node lost)
    error: str = ""  # why it failed, one line
    global_step: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def setting(self, key: str) -> Any:
        """The value of config key `key` in this job: its override, else its composed config."""
        if key in self.overrides:
            return yaml.safe_load(self.overrides[key])
        config_file = self.folder / ".hydra" / "config.yaml"
        if not config_file.is_file():
            return None
        return OmegaConf.select(OmegaConf.load(config_file), key, throw_on_resolution_failure=False)

    def history(self) -> list[dict[str, Any]]:
        """The rows the job logged (W&B offline file or CSV); empty if it logged none or they are unreadable."""
        try:
            return read_run_history(self.folder)
        except Exception:  # noqa: BLE001 - a killed job can leave a truncated log; the report goes on without it
            return []


def parse_overrides(lines: list[str]) -> dict[str, str]:
    """{key: value text} of Hydra override strings, with Hydra's own parser (`+key=v`, `~key`, `group=option`)."""
    parsed = OverridesParser.create().parse_overrides([str(line) for line in lines])
    return {o.key_or_group: ("~" if o.is_delete() else o.get_value_element_as_str()) for o in parsed}


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def read_job(sweep_dir: Path, folder: Path) -> JobResult:
    overrides = parse_overrides(OmegaConf.to_container(OmegaConf.load(folder / ".hydra" / "overrides.yaml")))
    name = str(folder.relative_to(sweep_dir))
    error = read_failure(folder) or ""
    summary_file = folder / "metrics.json"
    if not summary_file.is_file():
        return JobResult(name, folder, overrides, "failed", error or NO_RESULT)
    summary = json.loads(summary_file.read_text())
    status = summary.get("status", "failed")
    if status == "running" and not error:
        # metrics.json is rewritten with each interval checkpoint: "running" at the end means the job
        # is still running, or was killed without a chance to say so.
        error = f"still running, or killed at step {summary.get('global_step')} (its last interval checkpoint)"
    return JobResult(name, folder, overrides, status, error, summary.get("global_step"), summary.get("metrics", {}))


def read_sweep(sweep_dir: str | Path) -> list[JobResult]:
    """Every job of the sweep in `sweep_dir`, in job order."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise SweepError(f"no sweep folder at {sweep_dir}")
    if (sweep_dir / ".hydra" / "overrides.yaml").is_file() and not (sweep_dir / "multirun.yaml").is_file():
        raise SweepError(
            f"{sweep_dir} is the folder of a single run, not of a sweep: the report compares the jobs of a multirun "
            "(give outputs/train/multirun/<date>_<time>); a single run's results are its metrics.json and images/"
        )
    folders = sorted(
        (p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml") if ".submitit" not in p.parts),
        key=lambda p: _natural_key(str(p.relative_to(sweep_dir))),
    )
    if not folders:
        raise SweepError(
            f"{sweep_dir} holds no sweep jobs (no <job>/.hydra/overrides.yaml): give the folder a multirun wrote, "
            "e.g. outputs/train/multirun/<date>_<time>"
        )
    return [read_job(sweep_dir, folder) for folder in folders]
