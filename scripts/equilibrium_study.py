"""The equilibrium study: does quality stop improving when the latent norm settles, and does the
level it settles at follow `loss.margin`?

    python scripts/equilibrium_study.py                  # train what is missing, then analyse
    python scripts/equilibrium_study.py --stage analyse  # figures and numbers from finished runs

Runs EDE (published settings, MNIST, seed 0) with `callbacks=quality`, which scores the model
every N steps on fixed validation subsets and runs the equilibrium detector:
  - the main run, margin 1, for --epochs epochs, quality every 100 steps;
  - one run per other margin (--margins), for --margin-epochs epochs, quality every 200 steps.
Runs go to <out>/margin_<m>/ and are skipped when finished (resumed when interrupted).
The analysis writes docs/images/equilibrium_study.png, docs/images/equilibrium_margins.png
and docs/results/equilibrium_study.json (and prints a summary).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from statistics import mean

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # runs from a checkout without activating the venv too

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from logged_runs import run, train_resumably  # noqa: E402 - scripts/: the script's own folder is on sys.path

from encdec_pl.evaluation.equilibrium import EquilibriumRule, find_equilibrium  # noqa: E402
from encdec_pl.runtime.history import measurements, read_csv_history, series  # noqa: E402

QUALITY = [  # (logged key, label, higher is better)
    ("quality/label_preservation", "label preservation", True),
    ("quality/probe/knn/codes", "kNN probe on codes", True),
    ("quality/frechet/reconstructions", "Frechet distance, reconstructions", False),
    ("quality/frechet/samples", "Frechet distance, samples", False),
]


def margin_name(margin: float) -> str:
    return f"margin_{margin:g}"


def train(run_dir: Path, margin: float, epochs: int, every: int, extra: list[str]) -> None:
    overrides = [
        "callbacks=quality",
        f"callbacks.quality.every_n_steps={every}",
        f"loss.margin={margin}",
        f"trainer.max_epochs={epochs}",
        "tags=[equilibrium_study]",
    ]
    train_resumably(run_dir, overrides, extra, "study_train.log")


def nearest(steps: list[int], values: list[float], step: int) -> float:
    return values[min(range(len(steps)), key=lambda i: abs(steps[i] - step))]


def analyse_main(rows: list[dict], rule: EquilibriumRule) -> dict:
    """Equilibrium step of the windowed latent norm, and each quality metric before and after it."""
    steps, norms = series(rows, "train/latent_norm_avg")
    eq_step = find_equilibrium([int(s) for s in steps], norms, rule)
    result: dict = {"equilibrium_step": eq_step, "last_step": int(steps[-1]), "quality": {}}
    if eq_step is not None:
        result["latent_norm_at_equilibrium"] = nearest(steps, norms, eq_step)
    result["latent_norm_at_end"] = mean(norms[-20:])
    for key, _, higher_better in QUALITY:
        q_steps, q_values = measurements(rows, key)
        if not q_steps:
            continue
        start, end = q_values[0], q_values[-1]
        best = max(q_values) if higher_better else min(q_values)
        entry = {"start": start, "end": end, "best": best, "best_step": int(q_steps[q_values.index(best)])}
        if eq_step is not None:
            at_eq = nearest(q_steps, q_values, eq_step)
            entry["at_equilibrium"] = at_eq
            # share of the whole run's change that came after the equilibrium step
            entry["change_after_equilibrium_share"] = (end - at_eq) / (end - start) if end != start else 0.0
        result["quality"][key] = entry
    return result


def analyse_margins(runs: dict[float, list[dict]]) -> dict:
    out = {}
    for margin, rows in sorted(runs.items()):
        _, norms = series(rows, "train/latent_norm_avg")
        _, variances = measurements(rows, "quality/code_variance")
        _, test_norms = measurements(rows, "quality/latent_norm")
        out[f"{margin:g}"] = {
            "margin": margin,
            "push_hinge_variance": margin**2 / 2,  # per-dim variance at which random pairs sit `margin` apart
            "latent_norm_avg_end": mean(norms[-20:]),
            "latent_norm_eval_end": test_norms[-1] if test_norms else None,
            "code_variance_end": variances[-1] if variances else None,
            "last_step": int(series(rows, "train/latent_norm_avg")[0][-1]),
        }
    return out


def plot_main(rows: list[dict], result: dict, path: Path) -> None:
    fig, axes = plt.subplots(len(QUALITY) + 1, 1, figsize=(7.5, 9), sharex=True)
    steps, norms = series(rows, "train/latent_norm_avg")
    axes[0].plot(steps, norms, color="tab:blue")
    axes[0].set_ylabel("latent norm\n(64-step mean)", fontsize=8)
    for key, label, _ in QUALITY:
        ax = axes[1 + [q[0] for q in QUALITY].index(key)]
        ax.plot(*measurements(rows, key), marker="o", markersize=3, linewidth=0.6, color="tab:green")
        ax.set_ylabel(label.replace(", ", ",\n"), fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
        if result["equilibrium_step"] is not None:
            ax.axvline(result["equilibrium_step"], color="tab:red", linestyle="--", linewidth=1)
    title = "EDE on MNIST (margin 1, fake_weight 2, seed 0)"
    if result["equilibrium_step"] is not None:
        title += f": equilibrium detected at step {result['equilibrium_step']} (red)"
    axes[0].set_title(title, fontsize=9)
    axes[-1].set_xlabel("training step (430 per epoch)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_margins(runs: dict[float, list[dict]], path: Path) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 6), sharex=True)
    for margin, rows in sorted(runs.items()):
        (line,) = top.plot(*series(rows, "train/latent_norm_avg"), label=f"margin {margin:g}")
        bottom.plot(*measurements(rows, "quality/code_variance"), marker="o", markersize=3, color=line.get_color())
        bottom.axhline(margin**2 / 2, color=line.get_color(), linestyle=":", linewidth=1)
    top.set_ylabel("latent norm (64-step mean)", fontsize=8)
    top.set_yscale("log")
    top.legend(fontsize=8)
    bottom.set_ylabel("per-dimension code variance\n(dotted: margin^2 / 2)", fontsize=8)
    bottom.set_yscale("log")
    bottom.set_xlabel("training step")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6, help="length of the main run (margin 1)")
    parser.add_argument("--margins", type=float, nargs="*", default=[0.5, 2.0, 4.0], help="other margins to run")
    parser.add_argument("--margin-epochs", type=int, default=3, help="length of the other margins' runs")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "equilibrium_study")
    parser.add_argument("--stage", choices=("train", "analyse", "all"), default="all")
    parser.add_argument("--figures", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--results", type=Path, default=REPO / "docs" / "results")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every training run")
    args = parser.parse_args()
    out = args.out.absolute()
    if args.stage in ("train", "all"):
        classifier = Path(os.environ.get("ENCDEC_CACHE_DIR", "~/.cache/encdec-pl")).expanduser()
        if not (classifier / "classifiers" / "mnist.pt").is_file():
            out.mkdir(parents=True, exist_ok=True)
            run([sys.executable, "-m", "encdec_pl.classifier", "data=mnist", "data.num_workers=0",
                 f"hydra.run.dir={out / 'classifier'}"], out / "classifier.log")  # fmt: skip
        train(out / margin_name(1.0), 1.0, args.epochs, 100, args.overrides)
        for margin in args.margins:
            train(out / margin_name(margin), margin, args.margin_epochs, 200, args.overrides)
    if args.stage in ("analyse", "all"):
        rule = EquilibriumRule()  # the detector's defaults (conf/callbacks/equilibrium.yaml)
        runs = {m: read_csv_history(out / margin_name(m) / "csv") for m in [1.0, *args.margins]}
        main_result = analyse_main(runs[1.0], rule)
        margins = analyse_margins(runs)
        args.figures.mkdir(parents=True, exist_ok=True)
        args.results.mkdir(parents=True, exist_ok=True)
        plot_main(runs[1.0], main_result, args.figures / "equilibrium_study.png")
        plot_margins(runs, args.figures / "equilibrium_margins.png")
        summary = {"main_run": main_result, "margins": margins, "rule": vars(rule)}
        (args.results / "equilibrium_study.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
