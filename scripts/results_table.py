"""The results table of docs/results.md: EDE's recipe at fake_weight 0, 1, 2, 4, EDE's published
settings, and the AE and VAE at their best settings, on MNIST and Fashion-MNIST, at one budget.

    python scripts/results_table.py                        # train and evaluate what is missing, write the table
    python scripts/results_table.py --images 384000        # another budget (training images per run)
    python scripts/results_table.py --epochs 1             # or in epochs (430 steps at batch 128 each)
    python scripts/results_table.py --stage table          # only the table, from the committed records
    python scripts/results_table.py --datasets mnist --rows "EDE recipe" AE

Every run sees the same number of training images (--images; trainer.max_steps = images / batch size)
with the same networks and data, and is scored by `python -m encdec_pl.evaluate` on the test split.
Its training also runs callbacks=quality (every --quality-every steps on fixed validation subsets),
which gives the quality-against-budget curve (docs/images/quality_vs_budget_<dataset>.png).

Resuming: each finished run (trained and evaluated) leaves one small record,
docs/results/runs/<budget>/<dataset>/<run>.json, with its command, overrides, steps, wall times, the
machine's load, every metric of `evaluate` and its quality curve. Commit the records: a later
session (whose outputs/ folder is gone) trains only the runs without one. The first table of
docs/results.md (published settings for every EDE row, AE and VAE at RMSprop 1e-4, one epoch) was made
by this script's earlier version (commit 8d96917). A run interrupted inside a
session restarts from its last checkpoint under --out. Seeds: 3 for the recipe, AE and VAE rows,
1 for the rest (--seeds changes the 3, --seed-every-row gives it to every row; --only-seed S trains seed S
alone, so two jobs can share a row).
Extra arguments are Hydra overrides for every training run.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from statistics import mean, stdev

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # runs from a checkout without activating the venv too

from logged_runs import completed, measured, plot_quality_against_images, run  # noqa: E402 - scripts/: the script's own folder is on sys.path

DATASETS = ("mnist", "fashion_mnist")
# row -> (overrides, with {ds} the dataset; seeds: "many" = --seeds, 1 = seed 0 only)
# "EDE recipe, free codes": the recipe of 2026-12-02 to 12-07, codes of free size at the published margin and fake
# weight 2 (its records say so in settings_then); the recipe since scales every code to RMS 1 at margin 0.3
# (docs/recipe.md, "Code scale"), and since 2026-12-08 its fake weight is 8 ("EDE recipe fw=2": the recipe until then).
FREE_CODES = ["model.code_norm=none", "loss.margin=1.0", "loss.fake_weight=2"]
ROWS: dict[str, tuple[list[str], str | int]] = {
    "EDE recipe fw=0": (["experiment=ede_{ds}_fast", "loss.fake_weight=0"], 1),
    "EDE recipe fw=1": (["experiment=ede_{ds}_fast", "loss.fake_weight=1"], 1),
    "EDE recipe fw=2": (["experiment=ede_{ds}_fast", "loss.fake_weight=2"], 1),
    "EDE recipe fw=4": (["experiment=ede_{ds}_fast", "loss.fake_weight=4"], 1),
    "EDE recipe fw=8": (["experiment=ede_{ds}_fast", "loss.fake_weight=8"], 1),
    "EDE recipe fw=16": (["experiment=ede_{ds}_fast", "loss.fake_weight=16"], 1),
    "EDE recipe": (["experiment=ede_{ds}_fast"], "many"),
    "EDE recipe, free codes fw=0": (["experiment=ede_{ds}_fast", *FREE_CODES, "loss.fake_weight=0"], 1),
    "EDE recipe, free codes fw=1": (["experiment=ede_{ds}_fast", *FREE_CODES, "loss.fake_weight=1"], 1),
    "EDE recipe, free codes fw=4": (["experiment=ede_{ds}_fast", *FREE_CODES, "loss.fake_weight=4"], 1),
    "EDE recipe, free codes": (["experiment=ede_{ds}_fast", *FREE_CODES], "many"),
    "EDE published": (["experiment=ede_published", "data={ds}"], 1),
    "AE (best)": (["experiment=ae_mnist_best", "data={ds}"], "many"),
    "VAE (best)": (["experiment=vae_mnist_best", "data={ds}"], "many"),
}
# (key in evaluation metrics.json, column title, digits)
COLUMNS = [
    ("label_preservation", "label pres.", 3),
    ("probe/logreg/codes", "logreg (codes)", 3),
    ("probe/knn/codes", "kNN (codes)", 3),
    ("frechet/reconstructions", "FD recon", 2),
    ("frechet/samples", "FD samples", 2),
    ("mse", "pixel MSE", 4),
]
CURVE_KEYS = ["quality/label_preservation", "quality/frechet/samples", "quality/frechet/reconstructions",
              "quality/probe/knn/codes", "train/latent_norm_avg"]  # fmt: skip


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_").replace("__", "_")


def load_now() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def quality_curve(run_dir: Path) -> list[dict]:
    """The quality callback's rows (step, metrics) from the run's CSV log."""
    from encdec_pl.runtime.history import read_csv_history

    rows = read_csv_history(run_dir / "csv")
    return [
        {"step": int(r["step"]), **{k: float(r[k]) for k in CURVE_KEYS if r.get(k) not in (None, "")}}
        for r in rows
        if r.get("quality/label_preservation") not in (None, "")
    ]


def train_and_evaluate(name: str, ds: str, seed: int, overrides: list[str], args: argparse.Namespace) -> dict:
    run_dir = args.out / str(args.images) / ds / f"{slug(name)}_seed{seed}"
    batch_size = 128  # every row's batch size (the table checks the composed configs agree)
    steps = args.images // batch_size
    train_command = [
        sys.executable, "-m", "encdec_pl.train",
        *overrides,
        f"hydra.run.dir={run_dir}",
        f"data.batch_size={batch_size}",
        f"trainer.max_steps={steps}",
        "trainer.max_epochs=-1",
        "trainer.max_time=null",
        f"seed={seed}",
        "callbacks=quality",
        f"callbacks.quality.every_n_steps={args.quality_every}",
        "logger=csv",
        "data.num_workers=0",  # one core per run
        "extras.print_config=false",
        "tags=[results_table]",
        *args.overrides,
    ]  # fmt: skip
    record: dict = {"row": name, "dataset": ds, "seed": seed, "images": steps * batch_size, "steps": steps,
                    "batch_size": batch_size, "overrides": overrides + args.overrides,
                    "command": " ".join(["python", *train_command[1:]]),
                    "machine": f"{platform.machine()} {os.cpu_count()} cores, torch threads "
                               f"{os.environ.get('OMP_NUM_THREADS', 'default')}"}  # fmt: skip
    record["load_at_start"] = load_now()
    # A run cut off (a session's end, a kill) resumes from its last.ckpt. Each training attempt's start is kept in
    # the run folder; an attempt that never recorded its end ends at its last checkpoint's time (what came after was
    # lost and is trained again), so the record counts the whole run, not the part after the last resume.
    attempts_file = run_dir / "train_attempts.json"
    # A run folder is resumed or scored only for the command that made it: a folder left by a row whose settings
    # have changed since (the recipe's, 2026-12-07) would otherwise be scored under the new row's name.
    command_file = run_dir / "train_command.json"
    if run_dir.is_dir() and any(run_dir.iterdir()):
        made_by = json.loads(command_file.read_text()) if command_file.is_file() else None
        if made_by != train_command[1:]:
            made = "not recorded" if made_by is None else " ".join(made_by)
            raise SystemExit(f"error: {run_dir} holds a run of another command ({made}); remove it to train this row")
    run_dir.mkdir(parents=True, exist_ok=True)
    command_file.write_text(json.dumps(train_command[1:]))
    if not completed(run_dir):
        last = run_dir / "checkpoints" / "last.ckpt"
        attempts = json.loads(attempts_file.read_text()) if attempts_file.is_file() else []
        for attempt in attempts:
            if attempt["end"] is None:
                attempt["end"] = last.stat().st_mtime if last.is_file() else attempt["start"]
        if last.is_file():
            record["resumed_from_step"] = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
        attempts.append({"start": time.time(), "end": None})
        attempts_file.write_text(json.dumps(attempts))
        run(train_command + ([f"ckpt_path={last}"] if last.is_file() else []), run_dir / "table_train.log")
        attempts[-1]["end"] = time.time()
        attempts_file.write_text(json.dumps(attempts))
    # start-up and the quality measurements included; None: trained before attempts were kept in the folder
    attempts = json.loads(attempts_file.read_text()) if attempts_file.is_file() else None
    record["train_wall_s"] = round(sum(a["end"] - a["start"] for a in attempts), 1) if attempts else None
    record["train_attempts"] = len(attempts) if attempts else None
    out = run_dir / "evaluation"
    start = time.time()
    if not (out / "metrics.json").is_file():
        run([sys.executable, "-m", "encdec_pl.evaluate", f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
             f"hydra.run.dir={out}", f"data={ds}", "extras.print_config=false", *args.eval],
            run_dir / "table_evaluate.log")  # fmt: skip
    record["evaluate_wall_s"] = round(time.time() - start, 1)
    record["load_at_end"] = load_now()
    evaluation = json.loads((out / "metrics.json").read_text())
    record["evaluation"] = evaluation
    record["quality_curve"] = quality_curve(run_dir)
    if seed == 0:  # the row's picture: test reconstructions and samples side by side
        figure = side_by_side(out, args.figures / f"{ds}_{slug(name)}.png").resolve()
        # relative to the repository when the figure is in it (the committed records), else as given
        record["figure"] = str(figure.relative_to(REPO) if figure.is_relative_to(REPO) else figure)
    return record


def side_by_side(evaluation_dir: Path, path: Path) -> Path:
    from PIL import Image

    left, right = (Image.open(evaluation_dir / n).convert("RGB") for n in ("reconstructions.png", "samples.png"))
    canvas = Image.new("RGB", (left.width + 8 + right.width, max(left.height, right.height)), "white")
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + 8, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def records_dir(args: argparse.Namespace, ds: str) -> Path:
    return args.records / f"images_{args.images}" / ds


@functools.cache  # one Hydra compose per dataset, not one per row the table and collect look at
def recipe_fake_weight(ds: str) -> float:
    """loss.fake_weight of the recipe, as train composes experiment=ede_<ds>_fast (which may inherit it)."""
    from hydra import compose, initialize_config_dir

    from encdec_pl.runtime.cli import prepare_process

    prepare_process()  # train's resolvers and warning filters, so this compose reads the config as train does
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return float(compose("train", overrides=[f"experiment=ede_{ds}_fast"]).loss.fake_weight)


def collect(args: argparse.Namespace) -> None:
    for ds in args.datasets:
        for name in args.rows:
            overrides, seeds = ROWS[name]
            if name.startswith("EDE recipe fw=") and float(name.split("=")[1]) == recipe_fake_weight(ds):
                continue  # the same run as the recipe row's seed 0: the table shows that one
            overrides = [o.format(ds=ds) for o in overrides]
            for seed in range(args.seeds) if seeds == "many" or args.seed_every_row else [0]:
                if args.only_seed is not None and seed != args.only_seed:
                    continue  # another job trains this seed (one table split over parallel jobs)
                path = records_dir(args, ds) / f"{slug(name)}_seed{seed}.json"
                if path.is_file():
                    continue
                record = train_and_evaluate(name, ds, seed, overrides, args)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(record, indent=1) + "\n")
                print(f"record written: {path}", flush=True)
                if not args.keep_runs:
                    shutil.rmtree(args.out / str(args.images) / ds / f"{slug(name)}_seed{seed}", ignore_errors=True)


def ruler(record: dict) -> str:
    """The evaluation classifier that scored `record`: test accuracy and, where recorded, its weights' fingerprint."""
    info = record["evaluation"]["classifier"]
    return f"{info['test_accuracy']:.4f}" + (f" ({info['weights_sha256'][:8]})" if "weights_sha256" in info else "")


def classifiers(records: dict[str, list[dict]]) -> str:
    rulers = sorted({ruler(r) for rs in records.values() for r in rs})
    return f"test accuracy {rulers[0]}" if len(rulers) == 1 else f"{len(rulers)} of them, per row in the last column"


def cell(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{mean(values):.{digits}f} ± {stdev(values):.{digits}f}"


HEADLINE = 384000  # the budget of the table in docs/results.md and the README (3000 steps at batch 128)


def write_table(args: argparse.Namespace) -> None:
    lines = [f"Budget: {args.images} training images per run ({args.images // 128} steps at batch 128).", ""]
    for ds in DATASETS:  # every dataset with records, whatever --datasets trained: the file is the whole table
        records: dict[str, list[dict]] = {}
        for path in sorted(records_dir(args, ds).glob("*.json")):
            record = json.loads(path.read_text())
            records.setdefault(record["row"], []).append(record)
        if not records:
            continue
        any_record = next(iter(records.values()))[0]["evaluation"]
        ref = any_record["reference"]
        lines += [
            f"**{ds}** (evaluation classifier: {classifiers(records)}; "
            f"probes on raw pixels: logreg {ref['probe/logreg/pixels']:.3f}, kNN {ref['probe/knn/pixels']:.3f}; "
            f"Frechet distance between two sets of real test images: {ref['frechet/real']:.2f})",
            "",
            "| row | seeds | "
            + " | ".join(title for _, title, _ in COLUMNS)
            + " | train wall (s) | load (1-min avg) | classifier |",
            "|---|---:|" + "---:|" * (len(COLUMNS) + 2) + "---|",
        ]
        for name in ROWS:
            rs, shown = records.get(name, []), name
            if name.startswith("EDE recipe fw=") and float(name.split("=")[1]) == recipe_fake_weight(ds):
                # the fake_weight sweep's own point is the recipe's seed-0 run, named so it does not read as another
                # run; shown only beside the sweep's other points (else it repeats the recipe's row)
                sweep = any(r.startswith("EDE recipe fw=") for r in records)
                rs = [r for r in records.get("EDE recipe", []) if r["seed"] == 0] if sweep else []
                shown = f"{name} (the recipe's seed 0)"
            if not rs:
                continue
            cells = [cell([r["evaluation"]["metrics"][k] for r in rs], d) for k, _, d in COLUMNS]
            walls = cell([r["train_wall_s"] for r in rs if r["train_wall_s"] is not None], 0)  # None: time not kept
            loads = ", ".join(f"{r['load_at_start'][0]:.1f}-{r['load_at_end'][0]:.1f}" for r in rs)
            rulers = ", ".join(sorted({ruler(r) for r in rs}))
            lines.append(f"| {shown} | {len(rs)} | " + " | ".join(cells) + f" | {walls} | {loads} | {rulers} |")
        lines += ["", "classifier: the evaluation classifier each row was scored with (its test accuracy, and its "
                  "weights' fingerprint where recorded): Frechet distances compare only between rows read with one "
                  "classifier; label preservation and the probes hardly depend on it.", ""]  # fmt: skip
        plot_curves(records, args.figures / f"quality_vs_budget_{ds}.png", ds)
    text = "\n".join(lines)
    out = args.records / f"images_{args.images}" / "results_table.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    print(f"Table written to {out}")


def plot_curves(records: dict[str, list[dict]], path: Path, ds: str) -> None:
    lines = []
    colors = {"EDE recipe": "C0", "EDE recipe fw=2": "C9", "EDE recipe, free codes": "C7", "EDE published": "C1",
              "AE (best)": "C2", "VAE (best)": "C3"}  # fmt: skip
    for name, color in colors.items():
        for i, record in enumerate(records.get(name, [])):
            curve = measured(record["quality_curve"])
            lines.append({
                "images": [row["step"] * record["batch_size"] for row in curve],
                "label_preservation": [row.get("quality/label_preservation") for row in curve],
                "frechet_samples": [row.get("quality/frechet/samples") for row in curve],
                "label": name if i == 0 else None, "color": color, "alpha": 0.8,
            })  # fmt: skip
    plot_quality_against_images(lines, path, f"{ds}: quality against training budget (every seed a line)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--images", type=int, default=128000, help="training images per run (default 128000: 1000 steps)"
    )
    parser.add_argument("--epochs", type=int, help="the budget in epochs instead (430 steps of 128 images each)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the recipe, AE and VAE rows")
    parser.add_argument(
        "--seed-every-row", action="store_true", help="train --seeds seeds of the one-seed rows too (to check one)"
    )
    parser.add_argument("--only-seed", type=int, help="train only this seed (split a table over parallel jobs)")
    parser.add_argument("--quality-every", type=int, default=100, help="steps between quality measurements")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "results_table", help="where the runs go")
    parser.add_argument("--records", type=Path, default=REPO / "docs" / "results" / "runs")
    parser.add_argument(
        "--figures", type=Path, help=f"default: docs/images/results, or its images_<budget>/ for budgets but {HEADLINE}"
    )
    parser.add_argument("--stage", choices=("all", "table"), default="all")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--keep-runs", action="store_true", help="keep run folders after their record is written")
    parser.add_argument("--eval", action="append", default=[], metavar="OVERRIDE", help="an override for evaluate")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every training run")
    args = parser.parse_args()
    if args.epochs is not None:
        args.images = 430 * 128 * args.epochs
    if args.figures is None:  # another budget's pictures must not replace those of the headline table (docs link them)
        args.figures = REPO / "docs" / "images" / "results"
        if args.images != HEADLINE:
            args.figures = args.figures / f"images_{args.images}"
    args.out = args.out.absolute()
    if args.stage == "all":
        collect(args)
    write_table(args)


if __name__ == "__main__":
    main()
