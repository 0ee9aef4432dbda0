"""The tabular results table of docs/tabular.md: EDE (fw 0/1/2/4), AE, VAE on UCI Adult, and
the discrete-output ablation, each trained by `python -m encdec_pl.train data=adult` and scored
by `python -m encdec_pl.evaluate`.

Resumable across sessions: every finished run leaves a small record,
docs/results/tabular/<name>.json (command, machine, training wall time, every metric), which is
committed; runs with a record are skipped. A run interrupted mid-training resumes from its
last.ckpt (outputs/ is kept within a session only). The anchors and references come from
`python -m encdec_pl.bench.tabular`, which writes records to the same folder.

    python scripts/tabular_results.py [--only NAME_PREFIX] [--epochs 20] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from logged_runs import completed, run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "docs" / "results" / "tabular"
RUNS = ROOT / "outputs" / "tabular_results"
MACHINE = "2-core AMD EPYC (Zen 5), 24 GiB, no GPU, shared with other jobs; torch " + torch.__version__.split("+")[0]


def plan(seeds: list[int], anchor_epochs: int) -> list[tuple[str, list[str]]]:
    """(name, overrides) in the order they run: the ablation, baselines, references and anchors, then EDE.

    A name starting with "bench:" is a `python -m encdec_pl.bench.tabular` call (it writes its own record).
    """
    runs = [(f"ablation_{mode}_fw2_s0", ["model=ede", f"network.discrete_output={mode}", "loss.fake_weight=2"])
            for mode in ("gumbel", "straight_through", "repair", "softmax")]  # fmt: skip
    runs += [("ae_s0", ["model=ae", "seed=0"]), ("vae_s0", ["model=vae", "seed=0"])]
    runs += [("bench:holdout_s0", ["methods=[holdout]"]), ("bench:independent_s0", ["methods=[independent]"])]
    runs += [(f"bench:{m}_e{anchor_epochs}_s0", [f"methods=[{m}]", f"epochs={anchor_epochs}"])
             for m in ("tvae", "ctgan")]  # fmt: skip
    for seed in seeds:
        runs += [(f"ede_fw{fw}_s{seed}", ["model=ede", f"loss.fake_weight={fw}", f"seed={seed}"])
                 for fw in (0, 1, 4, 2)]  # fmt: skip
        if seed != 0:
            runs += [(f"ae_s{seed}", ["model=ae", f"seed={seed}"]), (f"vae_s{seed}", ["model=vae", f"seed={seed}"])]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run only the runs whose name starts with this")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--anchor-epochs", type=int, default=10, help="CTGAN/TVAE epochs (the package default is 300)")
    parser.add_argument("--extra", default="", help="overrides added to every training command (space-separated)")
    parser.add_argument("--table", action="store_true", help="only write docs/results/tabular/table.md")
    args = parser.parse_args()
    if args.table:
        write_table()
        return
    RECORDS.mkdir(parents=True, exist_ok=True)
    RUNS.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    for name, overrides in plan([int(s) for s in args.seeds.split(",")], args.anchor_epochs):
        bench = name.startswith("bench:")
        name = name.removeprefix("bench:")
        if not name.startswith(args.only) or (RECORDS / f"{name}.json").is_file():
            continue
        if bench:
            run([python, "-m", "encdec_pl.bench.tabular", *overrides, f"hydra.run.dir={RUNS / name}"],
                RUNS / f"{name}.log")  # fmt: skip
            continue
        run_dir = RUNS / name
        train = [python, "-m", "encdec_pl.train", "data=adult", *overrides, f"trainer.max_epochs={args.epochs}",
                 "logger=csv", "~callbacks.rich_progress_bar", f"hydra.run.dir={run_dir}", "ckpt_path=last",
                 *args.extra.split()]  # fmt: skip
        wall_file = run_dir / "wall_seconds.json"
        if not completed(run_dir):
            start = time.time()
            run(train, RUNS / f"{name}.log")
            spent = json.loads(wall_file.read_text())["seconds"] if wall_file.is_file() else 0.0
            wall_file.write_text(json.dumps({"seconds": spent + time.time() - start}))
        evaluate = [python, "-m", "encdec_pl.evaluate", f"ckpt_path={run_dir}/checkpoints/last.ckpt",
                    f"hydra.run.dir={run_dir}/evaluate"]  # fmt: skip
        run(evaluate, RUNS / f"{name}.log")
        result = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
        summary = json.loads((run_dir / "metrics.json").read_text())
        shown = [c for c in train[1:] if not c.startswith(("hydra.run.dir", "ckpt_path"))]
        record = {
            "name": name,
            "train_command": "python " + " ".join(shown),
            "evaluate_command": "python -m encdec_pl.evaluate ckpt_path=<run>/checkpoints/last.ckpt",
            "machine": MACHINE,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "train_wall_s": round(json.loads(wall_file.read_text())["seconds"], 1) if wall_file.is_file() else None,
            "epochs": args.epochs,
            "global_step": summary["global_step"],
            "model": result["model"],
            "model_hparams": result["model_hparams"],
            "metrics": result["metrics"],
        }
        (RECORDS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"  record: {RECORDS / f'{name}.json'}", flush=True)


COLUMNS = [("shape", "Shape"), ("trend", "Trend"), ("trend_default_thresholds", "Trend (default thr.)"),
           ("ml_efficacy_auc", "AUC"), ("detection", "Detection"), ("alpha_precision", "alpha-prec."),
           ("beta_recall", "beta-rec."), ("dcr_share", "DCR share"), ("validity_raw/categorical", "raw one-hot"),
           ("validity_raw/numeric_in_range", "raw in range"),
           ("validity_repaired/rows", "valid repaired"), ("recon/accuracy_mean", "recon acc."),
           ("recon/r2_mean", "recon R^2"), ("probe/income_auc", "probe AUC")]  # fmt: skip


def write_table() -> None:
    """docs/results/tabular/table.md: one row per run group (seeds pooled: mean, and +- std when >1 seed)."""
    import statistics

    groups: dict[str, list[dict]] = {}
    for path in sorted(RECORDS.glob("*.json")):
        record = json.loads(path.read_text())
        group = record["name"].rsplit("_s", 1)[0]
        groups.setdefault(group, []).append(record)
    header = ["run", "seeds", *[label for _, label in COLUMNS], "train wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group, records in groups.items():
        cells = [group, str(len(records))]
        for key, _ in COLUMNS:
            values = [r["metrics"][key] for r in records if key in r["metrics"]]
            if not values:
                cells.append("")
            elif len(values) == 1:
                cells.append(f"{values[0]:.3f}")
            else:
                cells.append(f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}")
        walls = [r["train_wall_s"] for r in records if r.get("train_wall_s") is not None]
        cells.append(f"{statistics.mean(walls):.0f}" if walls else "")
        lines.append("| " + " | ".join(cells) + " |")
    (RECORDS / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
