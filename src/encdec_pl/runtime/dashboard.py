"""The W&B workspace of the latent-norm equilibrium: its definition, and whether it can be saved.

`build_workspace` describes the saved view (a `wandb_workspaces` Workspace: sections of panels)
without talking to any server, so it can be built and checked offline; `Workspace.save()` is
what needs W&B (python -m encdec_pl.dashboard). `panel_keys` lists every key its panels read,
so tests can check them against what runs really logged, and `runtime.dashboard_preview` draws
the same panels from run files with matplotlib.

Keys: a run's history (`wandb.log` rows, plotted against trainer/global_step), its summary (the
last logged value of each key: equilibrium/step, final quality) and its config, nested as
composed (`loss.fake_weight`; runtime.loggers.log_config).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from urllib.parse import urlparse

import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from wandb_workspaces import expr

from encdec_pl.errors import EncDecError
from encdec_pl.runtime.loggers import has_wandb_credentials

STEP = "trainer/global_step"  # Lightning's step, logged with every row (W&B's own _step counts rows)
LATENT_NORM = "train/latent_norm_avg"  # the windowed mean the equilibrium rule watches
LOSS_TERMS = ("train/pull", "train/push", "train/fake")
# The quality metrics of callbacks=quality (runtime.callbacks.QualityMonitor), logged during training.
QUALITY = (
    "quality/label_preservation",
    "quality/frechet/reconstructions",
    "quality/frechet/samples",
    "quality/probe/knn/codes",
)
EQUILIBRIUM_STEP = "equilibrium/step"  # runtime.callbacks.EquilibriumDetector: first step of the calm stretch
EQUILIBRIUM_VALUE = "equilibrium/value"  # the windowed latent norm when the rule was met
EQUILIBRIUM_REACHED = "equilibrium/reached"  # 1 once reached, 0 until then
MEDIA = ("val/reconstructions", "quality/samples")  # reconstruction grids (every validation), sample grids (quality)
FAKE_WEIGHT, LATENT_DIM = "loss.fake_weight", "model.latent_dim"
# Swept settings on the parallel-coordinates panel (hparams_search=ede_optuna searches these three).
SETTINGS = (FAKE_WEIGHT, LATENT_DIM, "model.lr")
FINAL = (EQUILIBRIUM_STEP, EQUILIBRIUM_VALUE, "quality/frechet/samples", "quality/label_preservation", "val/loss")
DEFAULT_NAME = "Latent-norm equilibrium"


def _layout(x: int, y: int, w: int = 8, h: int = 6) -> wr.Layout:
    return wr.Layout(x=x, y=y, w=w, h=h)


def _line(title: str, y: list[str], x: int, y_pos: int, groupby: str | None = None, w: int = 8) -> wr.LinePlot:
    """Metrics against trainer/global_step; with `groupby`, one line per value of that config key
    (the mean of its runs, with their min-max band)."""
    return wr.LinePlot(
        title=title,
        x=STEP,
        y=y,
        title_x="step",
        groupby=wr.Config(groupby) if groupby else None,
        groupby_aggfunc="mean" if groupby else None,
        groupby_rangefunc="minmax" if groupby else None,
        legend_position="east",
        layout=_layout(x, y_pos, w),
    )


def equilibrium_section() -> ws.Section:
    """The windowed latent norm by fake_weight and by latent_dim, and each run's own curve with its equilibrium."""
    return ws.Section(
        name="Latent-norm equilibrium",
        is_open=True,
        panels=[
            _line(f"Windowed latent norm by {FAKE_WEIGHT}", [LATENT_NORM], 0, 0, groupby=FAKE_WEIGHT),
            _line(f"Windowed latent norm by {LATENT_DIM}", [LATENT_NORM], 8, 0, groupby=LATENT_DIM),
            # equilibrium/value is logged from the step the rule was met, so its flat line starts there:
            # each run's equilibrium, marked on its own curve.
            _line("Latent norm per run; the flat line marks the equilibrium", [LATENT_NORM, EQUILIBRIUM_VALUE], 16, 0),
            wr.ScatterPlot(
                title=f"Equilibrium step vs {FAKE_WEIGHT}",
                x=wr.Config(FAKE_WEIGHT),
                y=wr.SummaryMetric(EQUILIBRIUM_STEP),
                layout=_layout(0, 6),
            ),
            wr.ScatterPlot(
                title=f"Equilibrium step vs {LATENT_DIM}",
                x=wr.Config(LATENT_DIM),
                y=wr.SummaryMetric(EQUILIBRIUM_STEP),
                layout=_layout(8, 6),
            ),
            wr.ScatterPlot(
                title=f"Equilibrium value vs {FAKE_WEIGHT}",
                x=wr.Config(FAKE_WEIGHT),
                y=wr.SummaryMetric(EQUILIBRIUM_VALUE),
                layout=_layout(16, 6),
            ),
        ],
    )


def loss_section() -> ws.Section:
    """The loss terms against steps, each grouped by fake_weight, and all three per run."""
    panels: list = [
        _line(f"{term} by {FAKE_WEIGHT}", [term], 8 * i, 0, groupby=FAKE_WEIGHT) for i, term in enumerate(LOSS_TERMS)
    ]
    return ws.Section(name="Loss terms", is_open=True, panels=panels)


def quality_section() -> ws.Section:
    """Quality during training beside the latent norm: does quality still move after the norm settles?"""
    panels: list = [_line(f"Windowed latent norm by {FAKE_WEIGHT}", [LATENT_NORM], 0, 0, groupby=FAKE_WEIGHT, w=12)]
    for i, key in enumerate(QUALITY):
        x, y = (12, 0) if i == 0 else (12 * ((i - 1) % 2), 6 * (1 + (i - 1) // 2))
        panels.append(_line(f"{key} by {FAKE_WEIGHT}", [key], x, y, groupby=FAKE_WEIGHT, w=12))
    return ws.Section(name="Quality during training (callbacks=quality)", is_open=True, panels=panels)


def sweep_section() -> ws.Section:
    """The swept settings against the equilibrium and the final quality, one line per run."""
    columns = [wr.ParallelCoordinatesPlotColumn(metric=wr.Config(key)) for key in SETTINGS]
    columns += [wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric(key)) for key in FINAL]
    return ws.Section(
        name="Sweep: settings vs equilibrium and final quality",
        is_open=True,
        panels=[
            wr.ParallelCoordinatesPlot(
                title="Settings vs equilibrium and final quality", columns=columns, layout=_layout(0, 0, 24, 8)
            ),
            wr.ScatterPlot(
                title=f"Final quality/frechet/samples vs {EQUILIBRIUM_STEP}",
                x=wr.SummaryMetric(EQUILIBRIUM_STEP),
                y=wr.SummaryMetric("quality/frechet/samples"),
                layout=_layout(0, 8, 12),
            ),
            wr.BarPlot(
                title="Equilibrium reached (1) or not (0), per run",
                metrics=[EQUILIBRIUM_REACHED],
                orientation="h",
                layout=_layout(12, 8, 12),
            ),
        ],
    )


def media_section() -> ws.Section:
    return ws.Section(
        name="Reconstructions and samples",
        is_open=True,
        panels=[
            wr.MediaBrowser(
                title="Validation images above their reconstructions",
                media_keys=[MEDIA[0]],
                gallery_axis="step",
                layout=_layout(0, 0, 12, 10),
            ),
            wr.MediaBrowser(
                title="Samples D(z) (callbacks=quality)",
                media_keys=[MEDIA[1]],
                gallery_axis="step",
                layout=_layout(12, 0, 12, 10),
            ),
        ],
    )


def build_workspace(entity: str, project: str, sweep: str | None = None, name: str | None = None) -> ws.Workspace:
    """The saved view of `entity/project` (only the runs of W&B group `sweep`, if given), not yet saved."""
    filters = [expr.Metric("Group") == sweep] if sweep else []
    return ws.Workspace(
        entity=entity,
        project=project,
        name=name or (f"{DEFAULT_NAME}: {sweep}" if sweep else DEFAULT_NAME),
        sections=[equilibrium_section(), loss_section(), quality_section(), sweep_section(), media_section()],
        settings=ws.WorkspaceSettings(x_axis=STEP, max_runs=100),
        runset_settings=ws.RunsetSettings(
            filters=filters,
            groupby=[expr.Config(FAKE_WEIGHT)],  # the run list (and run colours) grouped by fake_weight
            pinned_columns=[
                f"config:{FAKE_WEIGHT}",
                f"config:{LATENT_DIM}",
                f"summary:{EQUILIBRIUM_STEP}",
                f"summary:{EQUILIBRIUM_VALUE}",
            ],
        ),
    )


@dataclass
class PanelKeys:
    """The keys a workspace's panels read, by where W&B looks them up."""

    history: set[str] = field(default_factory=set)  # logged rows: line plots, media
    summary: set[str] = field(default_factory=set)  # the last logged value of a history key
    config: set[str] = field(default_factory=set)  # dotted config keys
    x_axes: set[str] = field(default_factory=set)  # history keys used as the x axis


def _add(keys: PanelKeys, metric: object, default: str) -> None:
    if isinstance(metric, wr.Config):
        keys.config.add(metric.name)
    elif isinstance(metric, wr.SummaryMetric):
        keys.summary.add(metric.name)
    elif isinstance(metric, wr.Metric):
        getattr(keys, default).add(metric.name)
    elif isinstance(metric, str):
        getattr(keys, default).add(metric)


def panel_keys(workspace: ws.Workspace) -> PanelKeys:
    """Every key that `workspace`'s panels and run list read (a panel type not handled here is an error)."""
    keys = PanelKeys()
    for section in workspace.sections:
        for panel in section.panels:
            if isinstance(panel, wr.LinePlot):
                _add(keys, panel.x, "x_axes")
                for y in panel.y:
                    _add(keys, y, "history")
                if panel.groupby is not None:
                    _add(keys, panel.groupby, "config")
            elif isinstance(panel, wr.ScatterPlot):
                for metric in (panel.x, panel.y, panel.z):
                    if metric is not None:
                        _add(keys, metric, "summary")
            elif isinstance(panel, wr.BarPlot):
                for metric in panel.metrics:
                    _add(keys, metric, "summary")
            elif isinstance(panel, wr.ParallelCoordinatesPlot):
                for column in panel.columns:
                    _add(keys, column.metric, "summary")
            elif isinstance(panel, wr.MediaBrowser):
                keys.history.update(panel.media_keys)
            else:
                raise TypeError(f"panel_keys does not know {type(panel).__name__} panels")
    for group in workspace.runset_settings.groupby:
        if isinstance(group, expr.Config):
            keys.config.add(group.name)
    return keys


class WandbOffline(EncDecError):
    """The workspace cannot be saved: W&B is offline here, or no credentials are set."""


SYNC_HINT = "upload the runs with `wandb sync <run folder>/wandb/offline-run-*` and log in with `wandb login` first"


def wandb_host() -> tuple[str, int]:
    """(host, port) of the W&B server (WANDB_BASE_URL, default api.wandb.ai)."""
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    return url.hostname or "api.wandb.ai", url.port or (443 if url.scheme == "https" else 80)


def require_online(timeout: float = 3.0) -> None:
    """Raise WandbOffline (one line) unless W&B could be reached with credentials.

    Checks without the network first (WANDB_MODE, credentials in WANDB_API_KEY or ~/.netrc), then
    opens one TCP connection to the server with a short timeout, so that an offline machine
    fails in seconds instead of waiting on W&B's retries.
    """
    mode = os.environ.get("WANDB_MODE", "")
    if mode in ("offline", "disabled", "dryrun"):
        raise WandbOffline(f"the dashboard is saved on the W&B server, and WANDB_MODE={mode}: unset it, {SYNC_HINT}")
    if not has_wandb_credentials():
        raise WandbOffline(f"the dashboard is saved on the W&B server and no W&B credentials are set: {SYNC_HINT}")
    host, port = wandb_host()
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        raise WandbOffline(
            f"the dashboard is saved on the W&B server, and {host}:{port} cannot be reached ({err}): {SYNC_HINT}"
        ) from err
