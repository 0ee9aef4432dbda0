"""Summarise a sweep at a glance: `python -m encdec_pl.report <multirun folder>`.

Writes into <multirun folder>/report/ (or --out):
- summary.md and summary.csv: one row per job with its status, overrides and final metrics
  (failed jobs included, with the reason), the latent-norm equilibrium right after the chosen
  metric (equilibrium/step and /value; "not reached" where the detector never saw the norm settle);
  the Markdown table shows the overrides that differ between jobs and lists the shared ones above
  it, the CSV has every override;
- heatmap.png: a chosen metric over loss.fake_weight x model.latent_dim (--metric, --x, --y);
- latent_norm.png: every job's windowed latent norm against steps, overlaid.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from statistics import mean
from typing import Any

import matplotlib

from encdec_pl.errors import ConfigError
from encdec_pl.runtime.cli import exit_on_user_error
from encdec_pl.runtime.history import series
from encdec_pl.runtime.sweep.results import JobResult, read_sweep

matplotlib.use("Agg")  # files only
import matplotlib.pyplot as plt  # noqa: E402

DEFAULT_METRIC = "val/loss"  # when the sweep's jobs name no `optimized_metric`
LATENT_NORM_KEYS = ("train/latent_norm_avg", "train/latent_norm")  # the windowed mean, else the raw value


def sweep_metric(jobs: Sequence[JobResult]) -> str:
    """The sweep's own `optimized_metric` (set by hparams_search), else DEFAULT_METRIC."""
    for job in jobs:
        name = job.setting("optimized_metric")
        if name:
            return str(name)
    return DEFAULT_METRIC


EQUILIBRIUM_COLUMNS = ("equilibrium/step", "equilibrium/value", "equilibrium/reached")
NOT_REACHED = "not reached"  # the equilibrium cells of a job whose detector never saw the latent norm settle


def metric_columns(jobs: Sequence[JobResult], first: str) -> list[str]:
    """Every metric any job logged: `first`, the equilibrium (step, value, reached), validation, training, the rest."""
    names = {name for job in jobs for name in job.metrics}
    equilibrium = [n for n in EQUILIBRIUM_COLUMNS if n != first and n in names]
    order = {"val": 0, "train": 1}
    rest = sorted(names - {first, *equilibrium}, key=lambda n: (order.get(n.split("/")[0], 2), n))
    return ([first] if first in names else []) + equilibrium + rest


def metric_cell(job: JobResult, metric: str) -> str:
    """The table cell of one metric; the equilibrium step and value of a job that never reached it say so."""
    if metric in EQUILIBRIUM_COLUMNS[:2] and metric not in job.metrics and job.metrics.get("equilibrium/reached") == 0:
        return NOT_REACHED
    return format_value(job.metrics.get(metric))


def split_overrides(jobs: Sequence[JobResult]) -> tuple[list[str], dict[str, str]]:
    """(keys whose values differ between jobs, {key: value} shared by every job)."""
    keys = list(dict.fromkeys(key for job in jobs for key in job.overrides))
    shared = {}
    for key in keys:
        values = {job.overrides.get(key) for job in jobs}
        if len(values) == 1 and None not in values:
            shared[key] = values.pop()
    varying = [k for k in keys if k not in shared]
    if not varying:  # a sweep of one job: show its overrides as columns anyway
        return keys, {}
    return varying, shared


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def job_label(job: JobResult, keys: Sequence[str]) -> str:
    return " ".join(f"{k.rsplit('.', 1)[-1]}={job.overrides.get(k, '')}" for k in keys) or job.name


def write_csv(jobs: Sequence[JobResult], metrics: Sequence[str], path: Path) -> None:
    keys = list(dict.fromkeys(key for job in jobs for key in job.overrides))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["job", "status", *keys, "global_step", *metrics, "error"])
        for job in jobs:
            writer.writerow(
                [job.name, job.status, *(job.overrides.get(k, "") for k in keys), job.global_step]
                + [job.metrics.get(m, "") for m in metrics]
                + [job.error]
            )


def markdown_table(jobs: Sequence[JobResult], metrics: Sequence[str]) -> str:
    varying, shared = split_overrides(jobs)
    header = ["job", "status", *varying, "step", *metrics]
    lines = []
    if shared:
        lines += ["Overrides shared by every job: " + " ".join(f"`{k}={v}`" for k, v in shared.items()), ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for job in jobs:
        cells = [job.name, job.status, *(job.overrides.get(k, "") for k in varying), format_value(job.global_step)]
        cells += [metric_cell(job, m) for m in metrics]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    failures = [job for job in jobs if job.error]
    if failures:
        lines += ["", "Failed jobs:"] + [f"- job {job.name}: {job.error}" for job in failures]
    return "\n".join(lines) + "\n"


def _axis_values(values: set[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:  # mixed types (e.g. null and numbers): keep them in text order
        return sorted(values, key=str)


def heatmap_grid(
    jobs: Sequence[JobResult], metric: str, x_key: str, y_key: str
) -> tuple[list[Any], list[Any], dict[tuple[Any, Any], list[float]], set[tuple[Any, Any]]]:
    """(x values, y values, {(x, y): metric of each completed job there}, cells holding a failed job)."""
    cells: dict[tuple[Any, Any], list[float]] = defaultdict(list)
    failed: set[tuple[Any, Any]] = set()
    for job in jobs:
        cell = (job.setting(x_key), job.setting(y_key))
        if job.completed and metric in job.metrics:
            cells[cell].append(job.metrics[metric])
        else:
            failed.add(cell)
    xs = _axis_values({c[0] for c in [*cells, *failed]})
    ys = _axis_values({c[1] for c in [*cells, *failed]})
    return xs, ys, dict(cells), failed


def plot_heatmap(jobs: Sequence[JobResult], metric: str, x_key: str, y_key: str, path: Path) -> None:
    """`metric` of every completed job over x_key x y_key (mean where several jobs share a cell)."""
    xs, ys, cells, failed = heatmap_grid(jobs, metric, x_key, y_key)
    grid = [[mean(cells[(x, y)]) if (x, y) in cells else math.nan for x in xs] for y in ys]

    fig, ax = plt.subplots(figsize=(1.1 * len(xs) + 3, 0.7 * len(ys) + 2), constrained_layout=True)
    image = ax.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(len(xs)), [format_value(x) for x in xs])
    ax.set_yticks(range(len(ys)), [format_value(y) for y in ys])
    ax.set_xlabel(x_key)
    ax.set_ylabel(y_key)
    ax.set_title(f"{metric} (final value; mean where jobs share a cell)", fontsize=9)
    fig.colorbar(image, ax=ax, label=metric)
    finite = [v for row in grid for v in row if not math.isnan(v)]
    middle = (min(finite) + max(finite)) / 2 if finite else 0.0
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            values = cells.get((x, y))
            if values:
                text = format_value(mean(values)) + (f"\n(n={len(values)})" if len(values) > 1 else "")
                color = "black" if mean(values) > middle else "white"
            elif (x, y) in failed:
                text, color = "failed", "red"
            else:
                continue
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=8)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_latent_norms(jobs: Sequence[JobResult], path: Path) -> list[JobResult]:
    """Every job's logged latent norm against steps, one line per job; returns the jobs left out (nothing logged).

    The step axis is the run's own (its images/latent_norm.png): optimizer steps done, 1 for the
    first. Lightning logs a step's metrics under the count before it (0 for the first), hence the +1.
    Jobs that logged no latent norm (most often: failed before their first logging step) are named
    in the figure, not silently left out.
    """
    varying, _ = split_overrides(jobs)
    fig, ax = plt.subplots(figsize=(9, 5), constrained_layout=True)
    colors = plt.get_cmap("viridis")
    left_out = []
    for i, job in enumerate(jobs):
        rows = job.history()
        key = next((k for k in LATENT_NORM_KEYS if any(k in row for row in rows)), None)
        if key is None:
            left_out.append(job)
            continue
        steps, values = series(rows, key)
        steps = [step + 1 for step in steps]
        style = "-" if job.completed else ":"
        label = f"{job.name}: {job_label(job, varying)}" + ("" if job.completed else f" ({job.status})")
        ax.plot(steps, values, style, color=colors(i / max(len(jobs) - 1, 1)), label=label, linewidth=1.2)
    ax.set_xlabel("step (optimizer steps done)")
    ax.set_ylabel("latent norm (64-step window mean)")
    ax.set_title("Latent norm of every job")
    ax.grid(alpha=0.3)
    if left_out:
        missing = ", ".join(f"{job.name} ({job.status})" for job in left_out)
        ax.plot([], [], " ", label=f"no latent norm logged: {missing}")  # a legend entry without a line
    if jobs:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if len(left_out) == len(jobs):
        ax.text(0.5, 0.5, "no job logged a latent norm", ha="center", va="center", transform=ax.transAxes)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return left_out


def write_report(
    sweep_dir: Path,
    out_dir: Path | None = None,
    metric: str | None = None,
    x_key: str = "loss.fake_weight",
    y_key: str = "model.latent_dim",
) -> dict[str, Path]:
    """Read the sweep, write the table, the heatmap and the curves; return what was written.

    The heatmap is left out, with a line in summary.md saying why, when no job logged the metric
    (a sweep too short to validate, or one whose jobs all failed); a metric asked for by name
    that no job logged is an error.
    """
    jobs = read_sweep(sweep_dir)
    logged = sorted({name for job in jobs for name in job.metrics})
    if metric is not None and metric not in logged:
        close = difflib.get_close_matches(metric, logged, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"--metric {metric}: no job logged it{hint}; logged: {', '.join(logged) or 'nothing'}")
    metric = metric or sweep_metric(jobs)
    out_dir = out_dir or sweep_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = metric_columns(jobs, metric)
    written = {"markdown": out_dir / "summary.md", "csv": out_dir / "summary.csv"}
    table = markdown_table(jobs, columns)
    if metric in logged:
        written["heatmap"] = out_dir / "heatmap.png"
        plot_heatmap(jobs, metric, x_key, y_key, written["heatmap"])
    else:
        table += f"\nNo heatmap: no job logged {metric}; choose a logged metric with --metric.\n"
    written["latent_norm"] = out_dir / "latent_norm.png"
    left_out = plot_latent_norms(jobs, written["latent_norm"])
    if left_out:
        names = ", ".join(f"{job.name} ({job.status})" for job in left_out)
        table += f"\nlatent_norm.png: no latent norm logged by job {names}.\n"
    written["markdown"].write_text(f"# Sweep {sweep_dir}\n\n" + table)
    write_csv(jobs, columns, written["csv"])
    return written


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m encdec_pl.report",
        description="Summarise a sweep: a table of every job (summary.md, summary.csv), a heatmap of one metric "
        "and every job's latent norm, written to <sweep folder>/report/.",
    )
    parser.add_argument("sweep_dir", type=Path, help="the multirun folder, e.g. outputs/train/multirun/<date>_<time>")
    parser.add_argument(
        "--metric", help=f"metric of the heatmap (default: the sweep's optimized_metric, else {DEFAULT_METRIC})"
    )
    parser.add_argument(
        "--x", default="loss.fake_weight", help="config key along the heatmap's x axis (default: %(default)s)"
    )
    parser.add_argument(
        "--y", default="model.latent_dim", help="config key along the heatmap's y axis (default: %(default)s)"
    )
    parser.add_argument("--out", type=Path, help="where to write (default: <sweep_dir>/report)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        written = write_report(args.sweep_dir, args.out, args.metric, args.x, args.y)
    except Exception as err:  # noqa: BLE001 - user errors become one line; bugs keep their traceback
        exit_on_user_error(err)
        raise
    print(written["markdown"].read_text())
    print("Written:\n" + "\n".join(f"  {path}" for path in written.values()))


if __name__ == "__main__":
    main(sys.argv[1:])
