"""The dashboard's panels drawn locally with matplotlib, from W&B offline run files, no server needed.

Walks the workspace definition of runtime.dashboard section by section and draws each panel
where its layout puts it (W&B's 24-column grid), from what the runs logged (read back with
runtime.history): the same keys, the same grouping, so the picture is what the saved workspace
shows once the runs are synced. Line plots grouped by a config key draw the mean of each group
with its min-max band, as W&B does.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import wandb_workspaces.reports.v2 as wr
import wandb_workspaces.workspaces as ws
from PIL import Image

from encdec_pl.errors import EncDecError
from encdec_pl.runtime.history import find_wandb_run_file, read_wandb_config, read_wandb_history, read_wandb_run

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402

GRID_COLUMNS = 24  # W&B lays panels out on a 24-column grid
MEDIA_RUNS = 6  # runs shown side by side in a media panel


@dataclass
class LoggedRun:
    """What one run logged, as the W&B server would hold it after `wandb sync`."""

    folder: Path  # the offline-run-* folder
    name: str
    group: str
    config: dict[str, Any]
    history: list[dict[str, Any]]

    @property
    def summary(self) -> dict[str, Any]:
        """W&B's default summary: the last logged value of every key."""
        summary: dict[str, Any] = {}
        for row in self.history:
            summary.update(row)
        return summary

    def setting(self, key: str) -> Any:
        """A dotted config key (`loss.fake_weight`) of the nested config; None when absent."""
        node: Any = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def value(self, metric: Any) -> Any:
        """A panel's metric for this run: config, summary, or (for bare names) summary."""
        if isinstance(metric, wr.Config):
            return self.setting(metric.name)
        name = metric.name if isinstance(metric, (wr.SummaryMetric, wr.Metric)) else str(metric)
        return self.summary.get(name)

    def series(self, key: str, x: str) -> tuple[list[float], list[float]]:
        pairs = [(row[x], row[key]) for row in self.history if key in row and x in row and _is_number(row[key])]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def last_image(self, key: str) -> Path | None:
        """The file of the last image logged under `key` (W&B keeps it below files/ of the run folder)."""
        for row in reversed(self.history):
            entry = row.get(key)
            if isinstance(entry, dict) and entry.get("filenames"):
                return self.folder / "files" / entry["filenames"][-1]
            if isinstance(entry, dict) and entry.get("path"):
                return self.folder / "files" / entry["path"]
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_logged_runs(folder: str | Path) -> list[LoggedRun]:
    """Every W&B run below `folder` (a sweep folder, a run folder, outputs/), sorted by group and name."""
    folder = Path(folder)
    files = sorted(folder.rglob("run-*.wandb")) if folder.is_dir() else []
    files = [f for f in files if f.parent.name != "latest-run" and "latest-run" not in f.parts]
    if not files:
        raise EncDecError(f"no W&B run files (run-*.wandb) below {folder}: give a run or sweep folder logged to W&B")
    runs = []
    for file in files:
        info = read_wandb_run(file)
        history = read_wandb_history(file)
        runs.append(
            LoggedRun(find_wandb_run_file(file).parent, info["name"], info["group"], read_wandb_config(file), history)
        )
    return sorted(runs, key=lambda r: (r.group, r.name))


def _group_key(run: LoggedRun, key: str) -> tuple[int, Any]:
    value = run.setting(key)
    return (0, value) if _is_number(value) else (1, str(value))


def _short(name: str, length: int = 32) -> str:
    """A run name cut for a legend (names put the usual settings first: fw2-z32-seed0-...)."""
    return name if len(name) <= length else name[: length - 1] + "…"


def _label(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _colors(count: int) -> list:
    cmap = plt.get_cmap("viridis")
    return [cmap(i / max(count - 1, 1) * 0.9) for i in range(count)]


def _draw_line(ax: plt.Axes, panel: wr.LinePlot, runs: list[LoggedRun]) -> bool:
    x = str(panel.x)
    drawn = False
    if panel.groupby is not None:
        key = panel.groupby.name
        groups: dict[Any, list[LoggedRun]] = defaultdict(list)
        for run in runs:
            groups[_group_key(run, key)].append(run)
        for color, (group, members) in zip(_colors(len(groups)), sorted(groups.items()), strict=True):
            for y in panel.y:
                curves = [run.series(str(y), x) for run in members]
                curves = [c for c in curves if c[0]]
                if not curves:
                    continue
                common = sorted(set(curves[0][0]).intersection(*(set(c[0]) for c in curves[1:])))
                values = [[dict(zip(*c, strict=True))[s] for c in curves] for s in common]
                label = f"{key.rsplit('.', 1)[-1]}={_label(group[1])}" + (
                    f" (n={len(curves)})" if len(curves) > 1 else ""
                )
                ax.plot(common, [sum(v) / len(v) for v in values], color=color, label=label)
                if len(curves) > 1:
                    ax.fill_between(common, [min(v) for v in values], [max(v) for v in values], color=color, alpha=0.2)
                drawn = True
    else:
        for color, run in zip(_colors(len(runs)), runs, strict=True):
            for i, y in enumerate(panel.y):
                steps, values = run.series(str(y), x)
                if steps:
                    style = {"linestyle": "-", "linewidth": 1.2} if i == 0 else {"linestyle": "--", "linewidth": 2}
                    ax.plot(steps, values, color=color, label=_short(run.name) if i == 0 else None, **style)
                    drawn = True
        ax.plot([], [], "k--", label=" / ".join(str(y) for y in panel.y[1:]))
    ax.set_xlabel(panel.title_x or x, fontsize=7)
    if len(panel.y) == 1:
        ax.set_ylabel(str(panel.y[0]), fontsize=7)
    if drawn:
        ax.legend(fontsize=6, loc="best")
    return drawn


def _draw_scatter(ax: plt.Axes, panel: wr.ScatterPlot, runs: list[LoggedRun]) -> bool:
    points = [(run.value(panel.x), run.value(panel.y), run.name) for run in runs]
    points = [p for p in points if _is_number(p[0]) and _is_number(p[1])]
    for x, y, name in points:
        ax.scatter(x, y, color="tab:blue")
        ax.annotate(_short(name), (x, y), fontsize=5, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(getattr(panel.x, "name", str(panel.x)), fontsize=7)
    ax.set_ylabel(getattr(panel.y, "name", str(panel.y)), fontsize=7)
    return bool(points)


def _draw_bars(ax: plt.Axes, panel: wr.BarPlot, runs: list[LoggedRun]) -> bool:
    metric = panel.metrics[0]
    bars = [(_short(run.name), run.value(metric)) for run in runs if _is_number(run.value(metric))]
    ax.barh([b[0] for b in bars], [b[1] for b in bars], color=_colors(len(bars)))
    ax.tick_params(axis="y", labelsize=6)
    ax.set_xlabel(str(metric), fontsize=7)
    return bool(bars)


def _draw_parallel(ax: plt.Axes, panel: wr.ParallelCoordinatesPlot, runs: list[LoggedRun]) -> bool:
    columns = [c.metric for c in panel.columns]
    table = [[run.value(c) for c in columns] for run in runs]
    ranges = []
    for j in range(len(columns)):
        values = [row[j] for row in table if _is_number(row[j])]
        ranges.append((min(values), max(values)) if values else (0.0, 1.0))
    colour_by = [row[-1] for row in table]
    finite = [v for v in colour_by if _is_number(v)]
    low_shade, high_shade = (min(finite), max(finite)) if finite else (0.0, 0.0)
    cmap = plt.get_cmap("viridis")
    drawn = False
    for row, shade in zip(table, colour_by, strict=True):
        xs, ys = [], []
        for j, value in enumerate(row):
            if _is_number(value):
                low, high = ranges[j]
                xs.append(j)
                ys.append(0.5 if high == low else (value - low) / (high - low))
        if len(xs) > 1:
            spread = high_shade - low_shade
            t = (shade - low_shade) / spread if _is_number(shade) and spread > 0 else 0.5
            ax.plot(xs, ys, color=cmap(t * 0.9), marker="o", markersize=3)
            drawn = True
    ax.set_xticks(range(len(columns)), [getattr(c, "name", str(c)) for c in columns], fontsize=6, rotation=15)
    ax.set_yticks([])
    for j, (low, high) in enumerate(ranges):
        ax.axvline(j, color="gray", linewidth=0.5)
        ax.text(j, -0.06, _label(low), ha="center", va="top", fontsize=5)
        ax.text(j, 1.04, _label(high), ha="center", va="bottom", fontsize=5)
    ax.set_ylim(-0.15, 1.15)
    return drawn


def _draw_media(ax: plt.Axes, panel: wr.MediaBrowser, runs: list[LoggedRun]) -> bool:
    key = panel.media_keys[0]
    found = [(_short(run.name), run.last_image(key)) for run in runs]
    found = [(name, path) for name, path in found if path is not None and path.is_file()][:MEDIA_RUNS]
    if not found:
        return False
    images = [Image.open(path).convert("RGB") for _, path in found]
    height = max(im.height for im in images)
    strip = Image.new("RGB", (sum(im.width + 8 for im in images), height), "white")
    left = 0
    for im in images:
        strip.paste(im, (left, 0))
        left += im.width + 8
    ax.imshow(strip)
    ax.set_xticks(
        [sum(im.width + 8 for im in images[:i]) + images[i].width / 2 for i in range(len(images))],
        [name for name, _ in found],
        fontsize=5,
        rotation=10,
    )
    ax.set_yticks([])
    ax.set_xlabel(f"{key}, last logged step", fontsize=7)
    return True


DRAW = {
    wr.LinePlot: _draw_line,
    wr.ScatterPlot: _draw_scatter,
    wr.BarPlot: _draw_bars,
    wr.ParallelCoordinatesPlot: _draw_parallel,
    wr.MediaBrowser: _draw_media,
}


def render_section(section: ws.Section, runs: list[LoggedRun], path: Path) -> list[str]:
    """Draw `section` into the PNG `path`: its panels where their layouts put them, from `runs`.

    Returns the titles of the panels that found nothing to draw (no run logged their keys)."""
    empty = []
    rows = max(p.layout.y + p.layout.h for p in section.panels)
    unit = 0.42  # inches per grid row
    fig = plt.figure(figsize=(18, unit * rows + 0.5))
    top = 0.5 / (unit * rows + 0.5)  # room for the section's title
    for panel in section.panels:
        lay = panel.layout
        # the panel's cell, less room for its title above and its axis labels below
        left, width = lay.x / GRID_COLUMNS + 0.035, lay.w / GRID_COLUMNS - 0.05
        height_unit = (1 - top) / rows
        bottom = 1 - top - (lay.y + lay.h) * height_unit + 1.3 * height_unit
        ax = fig.add_axes((left, bottom, width, lay.h * height_unit - 1.9 * height_unit))
        ax.set_title(panel.title or "", fontsize=8)
        ax.tick_params(labelsize=6)
        if not DRAW[type(panel)](ax, panel, runs):
            empty.append(panel.title or type(panel).__name__)
            ax.text(0.5, 0.5, "nothing logged for this panel", ha="center", va="center", transform=ax.transAxes)
        if not isinstance(panel, wr.MediaBrowser):
            ax.grid(alpha=0.3)
    fig.suptitle(section.name, fontsize=11, x=0.01, ha="left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return empty


def section_file_name(section: ws.Section) -> str:
    slug = "".join(c if c.isalnum() else "_" for c in section.name.lower().split(":")[0].split("(")[0].strip())
    return f"dashboard_{slug.strip('_')}.png"


def render_workspace(workspace: ws.Workspace, runs: list[LoggedRun], out_dir: Path) -> dict[Path, list[str]]:
    """One PNG per section of `workspace` in `out_dir`: {path: titles of its panels that had nothing to draw}."""
    drawn = {}
    for section in workspace.sections:
        path = Path(out_dir) / section_file_name(section)
        drawn[path] = render_section(section, runs, path)
    return drawn
