"""The equilibrium study: does quality stop improving when the latent norm settles, does the
detector (callbacks=equilibrium) fire there, and does the level it settles at follow `loss.margin`?

    python scripts/equilibrium_study.py                  # train what is missing, then analyse
    python scripts/equilibrium_study.py --stage analyse  # figures and numbers from the committed records

Runs EDE with the recipe (--experiment, default ede_mnist_fast) with codes of free size at margin 1 (the recipe
until 2026-12-07; its code_norm=rms since holds the latent norm at 1) at a constant learning rate (--schedule
constant, the default: a rate decayed to 0 freezes the latent norm by construction) with `callbacks=quality`,
which scores the model every --every steps on fixed validation subsets and runs the equilibrium detector:
  - the main runs: --seeds (0 1 2), --steps steps each (well past the quality plateau);
  - optionally one run per other margin (--margins), --margin-steps steps, quality every 200 steps.
Each finished run leaves a small record, docs/results/runs/equilibrium/<run>.json (the command, wall
time, load, its logged latent norm and quality rows): commit them, and a later session (without the
run folders) trains only the runs without one. A run interrupted within a session resumes from its
checkpoint under --out.

Analysis per seed: the step at which the detector fires on the windowed latent norm (the defaults of
conf/callbacks/equilibrium.yaml) against each quality metric's plateau step, the first measured step
after which the metric gained less than 1% of its total gain (on a 5-point moving mean: at a constant rate
one measurement wobbles by several per cent of the gain); what stopping at the detector's step gives up; and
the detector tuned to the runs (encdec_pl.evaluation.equilibrium.tune_rule: the rule of a grid that stops every
seed giving up at most --tolerated-loss of any metric's gain, or none). Writes
docs/images/equilibrium_<experiment>_seed<k>.png, docs/images/equilibrium_<experiment>_margins.png
(with --margins), docs/results/equilibrium_<experiment>.json and its table, equilibrium_<experiment>.md.
The first study (published settings, one seed, 3 epochs; docs/results.md) was made by this script's
earlier version (commit 8d96917); its equivalent now:
`--experiment ede_published --seeds 0 --epochs 3 --margins 0.5 2 4 --margin-epochs 2`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from statistics import mean

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # runs from a checkout without activating the venv too

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from logged_runs import completed, run  # noqa: E402 - scripts/: the script's own folder is on sys.path

from encdec_pl.evaluation.equilibrium import (  # noqa: E402
    EquilibriumRule,
    QualityCurve,
    StudiedRun,
    find_equilibrium,
    nearest_index,
    tune_rule,
)
from encdec_pl.runtime.history import measurements, read_csv_history, series  # noqa: E402

QUALITY = [  # (logged key, label, higher is better)
    ("quality/label_preservation", "label preservation", True),
    ("quality/probe/knn/codes", "kNN probe on codes", True),
    ("quality/frechet/reconstructions", "Frechet distance, reconstructions", False),
    ("quality/frechet/samples", "Frechet distance, samples", False),
]


def margin_name(margin: float) -> str:
    return f"margin_{margin:g}"


def train(
    run_dir: Path, record: Path, overrides: list[str], steps: int, every: int, seed: int, extra: list[str]
) -> None:
    """Train one run unless its record exists; then write the record (command, wall time, history)."""
    if record.is_file():
        return
    last = run_dir / "checkpoints" / "last.ckpt"
    command = [
        sys.executable, "-m", "encdec_pl.train",
        *overrides,
        f"hydra.run.dir={run_dir}",
        "callbacks=quality",
        f"callbacks.quality.every_n_steps={every}",
        f"trainer.max_steps={steps}",
        "trainer.max_epochs=-1",
        "trainer.max_time=null",
        f"seed={seed}",
        "logger=csv",
        "data.num_workers=0",  # one core per run
        "extras.print_config=false",
        "tags=[equilibrium_study]",
        *extra,
    ]  # fmt: skip
    load_at_start, start = [round(x, 2) for x in os.getloadavg()], time.time()
    # only at a constant rate: a cosine decayed over the shorter run would not be the longer run's schedule
    constant = "lr_schedule=constant" in overrides
    continued_from = continue_shorter_run(run_dir, steps) if constant and not run_dir.exists() else None
    if not completed(run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
        run(command + ([f"ckpt_path={last}"] if last.is_file() else []), run_dir / "study_train.log")
    keys = ("train/latent_norm_avg", *(q[0] for q in QUALITY), "quality/code_variance", "quality/latent_norm")
    rows = [
        {"step": int(r["step"]), **{k: r[k] for k in keys if k in r}}
        for r in read_csv_history(run_dir / "csv")
        if any(k in r for k in keys)
    ]
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({
        "command": " ".join(["python", *command[1:]]), "seed": seed, "steps": steps,
        "train_wall_s": round(time.time() - start, 1), "load_at_start": load_at_start,
        "load_at_end": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "continued_from": continued_from, "rows": rows,
    }) + "\n")  # fmt: skip
    print(f"record written: {record}", flush=True)


def continue_shorter_run(run_dir: Path, steps: int) -> str | None:
    """Start a longer main run from the longest shorter one of the same seed under the same folder, if any:
    a copy of its folder (checkpoint and CSV log) resumed to `steps`. At a constant learning rate this is
    the same training as one long run (the rate does not depend on the run's length); the record says so."""
    prefix, suffix = run_dir.name.split("_" + str(steps) + "steps_")
    shorter = []
    for other in run_dir.parent.glob(f"{prefix}_*steps_{suffix}"):
        other_steps = other.name.removeprefix(prefix + "_").split("steps_")[0]
        if other_steps.isdigit() and int(other_steps) < steps and (other / "checkpoints" / "last.ckpt").is_file():
            shorter.append((int(other_steps), other))
    if not shorter:
        return None
    _, source = max(shorter)
    shutil.copytree(source, run_dir)
    (run_dir / "metrics.json").unlink(missing_ok=True)  # so the copy counts as started, not completed
    print(f"continuing {source.name} as {run_dir.name}", flush=True)
    return source.name


def analyse_main(rows: list[dict], rule: EquilibriumRule) -> dict:
    """Equilibrium step of the windowed latent norm, and each quality metric before and after it."""
    steps, norms = series(rows, "train/latent_norm_avg", "step")
    eq_step = find_equilibrium([int(s) for s in steps], norms, rule)
    result: dict = {"equilibrium_step": eq_step, "last_step": int(steps[-1]), "quality": {}}
    if eq_step is not None:
        result["latent_norm_at_equilibrium"] = norms[nearest_index(steps, eq_step)]
    result["latent_norm_at_end"] = mean(norms[-20:])
    # the norm's level over the run: its mean in blocks of 500 steps (does it still trend, or only wobble?)
    blocks: dict[int, list[float]] = {}
    for step, norm in zip(steps, norms, strict=True):
        blocks.setdefault(int(step) // 500 * 500, []).append(norm)
    result["latent_norm_by_500_steps"] = {start: round(mean(v), 2) for start, v in blocks.items()}
    result["stopping_cost"] = studied_run(rows).stopping_cost(rule)  # what stopping at the detector's step gives up
    for key, _, higher_better in QUALITY:
        q_steps, q_values = measurements(rows, key, "step")
        if not q_steps:
            continue
        start, end = q_values[0], q_values[-1]
        best = max(q_values) if higher_better else min(q_values)
        plateau = QualityCurve(list(q_steps), list(q_values), higher_better).plateau_step()
        entry = {"start": start, "end": end, "best": best, "best_step": int(q_steps[q_values.index(best)]),
                 "plateau_step_1pct": plateau}  # fmt: skip
        if eq_step is not None:
            at_eq = q_values[nearest_index(q_steps, eq_step)]
            entry["at_equilibrium"] = at_eq
            # share of the whole run's change that came after the equilibrium step
            entry["change_after_equilibrium_share"] = (end - at_eq) / (end - start) if end != start else 0.0
        result["quality"][key] = entry
    return result


def studied_run(rows: list[dict]) -> StudiedRun:
    steps, norms = series(rows, "train/latent_norm_avg", "step")
    quality = {key: QualityCurve(*(list(x) for x in measurements(rows, key, "step")), higher)
               for key, _, higher in QUALITY if measurements(rows, key, "step")[0]}  # fmt: skip
    return StudiedRun([int(s) for s in steps], list(norms), quality)


def markdown_summary(summary: dict) -> str:
    """The per-seed table of docs/results.md: where the detector fires, where each metric stops improving, what
    stopping at the detector gives up, and the tuning's answer."""
    short = {"quality/label_preservation": "label pres.", "quality/probe/knn/codes": "kNN codes",
             "quality/frechet/reconstructions": "FD recon", "quality/frechet/samples": "FD samples"}  # fmt: skip
    lines = ["| seed | steps | detector fires at | latent norm, 500-step means (min-max after step 500) | "
             + " | ".join(f"{v}: start / best (step) / end; <1% gain after" for v in short.values())
             + " | given up by stopping at the detector (worst metric) | train wall s |",
             "|---|---:|---:|---|" + "---|" * len(short) + "---|---:|"]  # fmt: skip
    for seed, r in summary["seeds"].items():
        later = [v for start, v in r["latent_norm_by_500_steps"].items() if int(start) >= 500]
        cells = []
        for key in short:
            q = r["quality"].get(key)
            fmt = (lambda x: f"{x:.3f}") if q and abs(q["end"]) < 10 else (lambda x: f"{x:.0f}")
            cells.append("-" if q is None else f"{fmt(q['start'])} / {fmt(q['best'])} ({q['best_step']}) / "
                         f"{fmt(q['end'])}; {q['plateau_step_1pct']}")  # fmt: skip
        cost = r["stopping_cost"]
        worst = (f"{cost['worst_lost']:.1%} ({short[max(cost['lost'], key=cost['lost'].get)]})"
                 if cost["step"] is not None and cost["lost"] else "- (never fires)")  # fmt: skip
        fires = r["equilibrium_step"] if r["equilibrium_step"] is not None else "never"
        lines.append(f"| {seed} | {r['last_step'] + 1} | {fires} | {min(later):.1f} - {max(later):.1f} | "
                     + " | ".join(cells) + f" | {worst} | {r['train_wall_s']:.0f} |")  # fmt: skip
    tuning = summary.get("tuning")
    if tuning:
        lines.append("")
        lines.append(f"Detector tuning: {tuning['rules_tried']} rules (window x tolerance x patience: "
                     f"{tuning['grid']}); {tuning['rules_stopping_every_run']} stop every seed, "
                     f"{tuning['rules_safe']} of them giving up at most {tuning['tolerated_loss']:.0%} of every "
                     "metric's gain.")  # fmt: skip
        for name in ("best", "least_lost"):
            rule = tuning[name]
            if rule:
                steps = ", ".join(f"seed {s}: step {c['step']}, gives up {c['worst_lost']:.1%}"
                                  for s, c in rule["runs"].items())  # fmt: skip
                lines.append(f"- {name.replace('_', ' ')}: {rule['rule']} ({steps}; "
                             f"{rule['mean_saved_share']:.0%} of the steps saved on average)")  # fmt: skip
    return "\n".join(lines) + "\n"


def analyse_margins(runs: dict[float, list[dict]]) -> dict:
    out = {}
    for margin, rows in sorted(runs.items()):
        _, norms = series(rows, "train/latent_norm_avg", "step")
        _, variances = measurements(rows, "quality/code_variance", "step")
        _, test_norms = measurements(rows, "quality/latent_norm", "step")
        out[f"{margin:g}"] = {
            "margin": margin,
            "push_hinge_variance": margin**2 / 2,  # per-dim variance at which random pairs sit `margin` apart
            "latent_norm_avg_end": mean(norms[-20:]),
            "latent_norm_eval_end": test_norms[-1] if test_norms else None,
            "code_variance_end": variances[-1] if variances else None,
            "last_step": int(series(rows, "train/latent_norm_avg", "step")[0][-1]),
        }
    return out


def plot_main(rows: list[dict], result: dict, path: Path, title: str) -> None:
    fig, axes = plt.subplots(len(QUALITY) + 1, 1, figsize=(7.5, 9), sharex=True)
    steps, norms = series(rows, "train/latent_norm_avg", "step")
    axes[0].plot(steps, norms, color="tab:blue")
    axes[0].set_ylabel("latent norm\n(64-step mean)", fontsize=8)
    for key, label, _ in QUALITY:
        ax = axes[1 + [q[0] for q in QUALITY].index(key)]
        ax.plot(*measurements(rows, key, "step"), marker="o", markersize=3, linewidth=0.6, color="tab:green")
        ax.set_ylabel(label.replace(", ", ",\n"), fontsize=8)
        plateau = result["quality"].get(key, {}).get("plateau_step_1pct")
        if plateau is not None:
            ax.axvline(plateau, color="tab:gray", linestyle=":", linewidth=1)
    for ax in axes:
        ax.grid(alpha=0.3)
        if result["equilibrium_step"] is not None:
            ax.axvline(result["equilibrium_step"], color="tab:red", linestyle="--", linewidth=1)
    if result["equilibrium_step"] is not None:
        title += f": equilibrium detected at step {result['equilibrium_step']} (red)"
    axes[0].set_title(title, fontsize=9)
    axes[-1].set_xlabel("training step (grey dotted: <1% of the metric's total gain after it, on a 5-point mean)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_margins(runs: dict[float, list[dict]], path: Path) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 6), sharex=True)
    for margin, rows in sorted(runs.items()):
        (line,) = top.plot(*series(rows, "train/latent_norm_avg", "step"), label=f"margin {margin:g}")
        bottom.plot(*measurements(rows, "quality/code_variance", "step"), marker=".", color=line.get_color())
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
    parser.add_argument("--experiment", default="ede_mnist_fast", help="the settings studied (an experiment config)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=8000, help="length of each main run")
    parser.add_argument("--epochs", type=int, help="length of each main run in epochs (430 steps each)")
    parser.add_argument("--margin-epochs", type=int, help="length of the other margins' runs in epochs")
    parser.add_argument("--every", type=int, default=200, help="steps between quality measurements")
    parser.add_argument("--margins", type=float, nargs="*", default=[], help="other margins to run (seed 0)")
    parser.add_argument("--margin-steps", type=int, default=2000, help="length of the other margins' runs")
    parser.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                        help="the learning rate: constant (the default; why: below) or cosine")  # fmt: skip
    parser.add_argument("--tolerated-loss", type=float, default=0.02,
                        help="detector tuning: the share of a quality metric's gain a stop may give up")  # fmt: skip
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "equilibrium_study")
    parser.add_argument("--stage", choices=("train", "analyse", "all"), default="all")
    parser.add_argument("--figures", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--results", type=Path, default=REPO / "docs" / "results")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every training run")
    args = parser.parse_args()
    if args.epochs is not None:
        args.steps = 430 * args.epochs
    if args.margin_epochs is not None:
        args.margin_steps = 430 * args.margin_epochs
    out = args.out.absolute()
    records = args.results / "runs" / "equilibrium"
    # Constant by default: a rate decayed to 0 over the run freezes the latent norm at the end whatever the
    # dynamics do, which would make the claim (the norm settles by itself, and quality with it) true by construction.
    # Codes of free size at the published margin, as the claim is about them and the records were made so: the
    # recipe's code_norm=rms (since 2026-12-07) holds the latent norm at 1, which has no equilibrium to study.
    free_codes = ["model.code_norm=none", "loss.margin=1.0"]
    base = [f"experiment={args.experiment}", *free_codes,
            *(["lr_schedule=constant"] if args.schedule == "constant" else [])]  # fmt: skip
    tag = args.experiment + ("_cosine" if args.schedule == "cosine" else "")
    mains = {seed: f"{tag}_{args.steps}steps_seed{seed}" for seed in args.seeds}
    margins = {m: f"{tag}_margin{m:g}_{args.margin_steps}steps_seed0" for m in args.margins}
    if args.stage in ("train", "all"):
        classifier = Path(os.environ.get("ENCDEC_CACHE_DIR", "~/.cache/encdec-pl")).expanduser()
        if not (classifier / "classifiers" / "mnist.pt").is_file():
            out.mkdir(parents=True, exist_ok=True)
            run([sys.executable, "-m", "encdec_pl.classifier", "data=mnist", "data.num_workers=0",
                 f"hydra.run.dir={out / 'classifier'}"], out / "classifier.log")  # fmt: skip
        for seed, name in mains.items():
            train(out / name, records / f"{name}.json", base, args.steps, args.every, seed, args.overrides)
        for margin, name in margins.items():
            overrides = [*base, f"loss.margin={margin}"]
            train(out / name, records / f"{name}.json", overrides, args.margin_steps, 200, 0, args.overrides)
    if args.stage in ("analyse", "all"):
        rule = EquilibriumRule()  # the detector's defaults (conf/callbacks/equilibrium.yaml)
        summary: dict = {"rule": vars(rule), "experiment": args.experiment, "seeds": {}}
        args.figures.mkdir(parents=True, exist_ok=True)
        for seed, name in mains.items():
            if not (records / f"{name}.json").is_file():
                continue
            record = json.loads((records / f"{name}.json").read_text())
            result = analyse_main(record["rows"], rule)
            wall, source = record["train_wall_s"], record.get("continued_from")
            while source and (records / f"{source}.json").is_file():  # a continued run: its shorter runs' time too
                earlier = json.loads((records / f"{source}.json").read_text())
                wall, source = wall + earlier["train_wall_s"], earlier.get("continued_from")
            result.update(train_wall_s=wall, continued_from=record.get("continued_from"),
                          load=[record["load_at_start"], record["load_at_end"]])  # fmt: skip
            summary["seeds"][seed] = result
            title = f"EDE, experiment={args.experiment}, seed {seed}"
            plot_main(record["rows"], result, args.figures / f"equilibrium_{args.experiment}_seed{seed}.png", title)
        main_rows = {seed: json.loads((records / f"{name}.json").read_text())["rows"]
                     for seed, name in mains.items() if (records / f"{name}.json").is_file()}  # fmt: skip
        if main_rows:
            runs = {seed: studied_run(rows) for seed, rows in main_rows.items()}
            summary["tuning"] = tuning = tune_rule(runs, args.tolerated_loss)
            best = tuning["best"]
            print(f"detector tuning ({len(main_rows)} seeds, {tuning['rules_tried']} rules): "
                  + (f"{tuning['rules_safe']} stop every seed giving up at most {args.tolerated_loss:.0%} of any "
                     f"metric's gain; the one that saves most: {best['rule']}, "
                     f"{best['mean_saved_share']:.0%} of the steps saved on average" if best else
                     "no rule stops every seed without giving up more than that"), flush=True)  # fmt: skip
        first = records / f"{mains[args.seeds[0]]}.json"
        margin_runs = {1.0: json.loads(first.read_text())["rows"]} if first.is_file() else {}
        for margin, name in margins.items():
            if (records / f"{name}.json").is_file():
                margin_runs[margin] = json.loads((records / f"{name}.json").read_text())["rows"]
        if len(margin_runs) > 1:
            summary["margins"] = analyse_margins(margin_runs)
            plot_margins(margin_runs, args.figures / f"equilibrium_{args.experiment}_margins.png")
        args.results.mkdir(parents=True, exist_ok=True)
        (args.results / f"equilibrium_{args.experiment}.json").write_text(json.dumps(summary, indent=2) + "\n")
        if summary["seeds"]:
            (args.results / f"equilibrium_{args.experiment}.md").write_text(markdown_summary(summary))
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
