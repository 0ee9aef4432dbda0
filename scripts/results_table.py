"""The results table of docs/results.md: EDE at fake_weight 0, 1, 2, 4, AE and VAE on MNIST and Fashion-MNIST.

    python scripts/results_table.py                       # train what is missing, evaluate, write the table
    python scripts/results_table.py --epochs 20 trainer.accelerator=gpu   # a GPU budget
    python scripts/results_table.py --stage train          # only the training runs

Every run gets the same budget (--epochs, batch 128, seed 0), the same networks and the
same data; each is then scored by `python -m encdec_pl.evaluate` on the test split.
Runs live in <out>/<dataset>/<model>/ (checkpoints, images, csv/) with the evaluation in
<out>/<dataset>/<model>/evaluation/. Finished steps are skipped when the script is run
again, so an interrupted table resumes where it stopped (a half-finished training run
restarts from its last checkpoint). Extra arguments are Hydra overrides for every
training run. The table is written to <out>/results.md, .csv and .json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from logged_runs import run, train_resumably  # scripts/: the script's own folder is on sys.path

DATASETS = ("mnist", "fashion_mnist")
# name in the table -> overrides selecting it: EDE at four fake weights, then every other model in conf/model
MODELS = {f"EDE fw={weight}": ["model=ede", f"loss.fake_weight={weight}"] for weight in (0, 1, 2, 4)}
MODELS |= {
    option.upper(): [f"model={option}"]
    for option in sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "model").glob("*.yaml"))
    if option != "ede"
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


def folder_name(model: str) -> str:
    return model.lower().replace(" ", "_").replace("=", "")


def train(run_dir: Path, dataset: str, overrides: list[str], epochs: int, extra: list[str]) -> None:
    settings = [f"data={dataset}", *overrides, f"trainer.max_epochs={epochs}", "tags=[results_table]"]
    train_resumably(run_dir, settings, extra, "table_train.log")


def evaluate(run_dir: Path, dataset: str, extra_eval: list[str]) -> dict:
    out = run_dir / "evaluation"
    if not (out / "metrics.json").is_file():
        command = [
            sys.executable, "-m", "encdec_pl.evaluate",
            f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
            f"hydra.run.dir={out}",
            f"data={dataset}",
            "extras.print_config=false",
            *extra_eval,
        ]  # fmt: skip
        run(command, run_dir / "table_evaluate.log")
    return json.loads((out / "metrics.json").read_text())


def write_table(results: dict[str, dict[str, dict]], out: Path, epochs: int) -> None:
    rows = []
    for dataset, by_model in results.items():
        for model, evaluation in by_model.items():
            metrics = evaluation["metrics"]
            rows.append({"dataset": dataset, "model": model, **{key: metrics.get(key) for key, _, _ in COLUMNS}})
    (out / "results.json").write_text(json.dumps({"epochs": epochs, "results": results}, indent=2) + "\n")
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = []
    for dataset, by_model in results.items():
        first = next(iter(by_model.values()))
        ref = first["reference"]
        lines += [
            f"**{dataset}** ({epochs} epochs each; evaluation classifier test accuracy "
            f"{first['classifier']['test_accuracy']:.4f}; probes on raw pixels: logreg "
            f"{ref['probe/logreg/pixels']:.3f}, kNN {ref['probe/knn/pixels']:.3f}; "
            f"Frechet distance between two sets of real images: {ref['frechet/real']:.2f})",
            "",
            "| model | " + " | ".join(title for _, title, _ in COLUMNS) + " | logreg (untrained enc.) |",
            "|---|" + "---:|" * (len(COLUMNS) + 1),
        ]
        for model, evaluation in by_model.items():
            metrics = evaluation["metrics"]
            cells = [f"{metrics[key]:.{digits}f}" for key, _, digits in COLUMNS]
            cells.append(f"{evaluation['reference']['probe/logreg/untrained_encoder']:.3f}")
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines.append("")
    (out / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"Table written to {out}/results.md (.csv, .json)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="training budget of every run (default 3: CPU)")
    parser.add_argument("--out", type=Path, default=Path("outputs/results_table"), help="where the runs go")
    parser.add_argument("--stage", choices=("train", "evaluate", "all"), default="all")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument(
        "--eval", action="append", default=[], metavar="OVERRIDE", help="a Hydra override for every evaluation"
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every training run")
    args = parser.parse_args()
    out = args.out.absolute()
    results: dict[str, dict[str, dict]] = {}
    for dataset in args.datasets:
        for model in args.models:
            run_dir = out / dataset / folder_name(model)
            if args.stage in ("train", "all"):
                train(run_dir, dataset, MODELS[model], args.epochs, args.overrides)
            if args.stage in ("evaluate", "all"):
                results.setdefault(dataset, {})[model] = evaluate(run_dir, dataset, args.eval)
    if results:
        write_table(results, out, args.epochs)


if __name__ == "__main__":
    main()
