"""Save the W&B workspace of the latent-norm equilibrium: `python -m encdec_pl.dashboard project=<p> entity=<e>`.

The workspace (runtime.dashboard.build_workspace) groups the runs by loss.fake_weight and shows
the windowed latent norm with each run's equilibrium, the loss terms, the quality metrics during
training, the equilibrium and final quality across a sweep, and the image grids. Online only:
without credentials or a reachable server it stops with one line saying to sync and log in.
`preview=<folder>` draws the same panels from the offline run files there, without a server.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from encdec_pl.errors import first_line
from encdec_pl.runtime.cli import run_cli, start_run, user_errors
from encdec_pl.runtime.config import CONFIG_PACKAGE, _abspath
from encdec_pl.runtime.dashboard import WandbOffline, build_workspace, require_online


def preview(cfg: DictConfig) -> list[Path]:
    from encdec_pl.runtime.dashboard_preview import read_logged_runs, render_workspace

    folder = Path(_abspath(cfg.preview))
    runs = read_logged_runs(folder)
    if cfg.sweep:
        runs = [run for run in runs if run.group == cfg.sweep]
        if not runs:
            raise WandbOffline(f"no run of W&B group sweep={cfg.sweep} below {folder}")
    out_dir = Path(_abspath(cfg.preview_dir)) if cfg.preview_dir else folder / "dashboard"
    workspace = build_workspace(cfg.entity or "entity", cfg.project, cfg.sweep, cfg.name)
    drawn = render_workspace(workspace, runs, out_dir)
    print(f"Drew the dashboard's {len(drawn)} sections from {len(runs)} runs:")
    for path, empty in drawn.items():
        print(f"  {path}" + (f" (nothing logged for: {'; '.join(empty)})" if empty else ""))
    return list(drawn)


def save(cfg: DictConfig) -> str:
    require_online()
    import requests
    import wandb

    try:
        entity = cfg.entity or wandb.Api(timeout=15).default_entity
        workspace = build_workspace(entity, cfg.project, cfg.sweep, cfg.name).save()
    except (wandb.errors.Error, requests.exceptions.RequestException) as err:
        where = f"{cfg.entity or 'your entity'}/{cfg.project}"
        raise WandbOffline(f"W&B did not save the workspace of {where}: {first_line(err)}") from err
    print(f"W&B workspace: {workspace.url}")
    return workspace.url


@hydra.main(version_base="1.3", config_path=CONFIG_PACKAGE, config_name="dashboard")
@user_errors
def main(cfg: DictConfig) -> None:
    start_run(cfg, seeded=False)
    if cfg.preview:
        preview(cfg)
    else:
        save(cfg)


if __name__ == "__main__":
    run_cli(main)
