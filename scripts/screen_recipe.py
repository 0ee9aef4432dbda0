"""A fast screen of EDE variants for the recipe search (docs/recipe.md, "The screen").

Trains `encdec_pl.models.EncDec` with its own `compute_losses` in a plain loop (no Lightning, no
validation, no checkpoints: a screen, not a result) and scores it every --every steps with the
quality metrics of `evaluate` (`encdec_pl.evaluation.scoring.score_model`: 1000 images held out of the
training split, the cached evaluation classifier). What the screen finds is then measured with
`python -m encdec_pl.train` (scripts/recipe_ablation.py), whose numbers are the ones reported.

    OMP_NUM_THREADS=1 python scripts/screen_recipe.py adam1e3_bn --lr 1e-3 --decoder-norm batch
    OMP_NUM_THREADS=1 python scripts/screen_recipe.py adam1e3_st --lr 1e-3 --output st

The same data and steps as training: MNIST training images (the last 5000 held out, as the data module
does with data.val_size), batch 128 drawn with replacement, the published random rotation of up to 10
degrees (the fast path's batch rotation), bf16 autocast and channels-last as on this CPU's fast path.
Two hooks exist only here, to test why the published decoder stalls: --output st (the final sigmoid's
gradient floored at 0.05, so it cannot vanish) and --decoder-input-norm (each code scaled to RMS 1 before
the decoder). --code-norm is the model's setting model.code_norm=rms (each code scaled to RMS 1 at the
encoder's output, so the margin sets the fake distance relative to the codes). Each run writes
docs/results/runs/screen/<name>.json (its arguments, the machine's load, the quality rows and the loss
terms every 50 steps).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # runs from a checkout without activating the venv too

from encdec_pl.data.device_batches import rotate, sample_angles  # noqa: E402
from encdec_pl.evaluation.classifier import load_classifier  # noqa: E402
from encdec_pl.evaluation.scoring import Split, judge, score_model  # noqa: E402
from encdec_pl.models.ede import EncDec, UnitRMS  # noqa: E402
from encdec_pl.networks.image import ImageSpec  # noqa: E402


class FlooredSigmoid(torch.autograd.Function):
    """sigmoid forward; backward with s(1 - s) floored at 0.05, so a saturated output still passes a gradient."""

    @staticmethod
    def forward(ctx: object, logits: torch.Tensor) -> torch.Tensor:
        out = torch.sigmoid(logits)
        ctx.save_for_backward(out)  # type: ignore[attr-defined]
        return out

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad * (out * (1 - out)).clamp_min(0.05)


def hook_decoder(model: EncDec, output: str, input_norm: bool) -> None:
    decoder = model.decoder

    def forward(z: torch.Tensor) -> torch.Tensor:
        if input_norm:
            z = UnitRMS()(z)
        h = decoder.project(z).view(-1, 4 * decoder.width, 4, 4)
        h = decoder.conv1(decoder.upsample(h))[..., :7, :7]
        h = decoder.conv2(decoder.upsample(h))
        logits = decoder.conv3(decoder.upsample(h))
        return FlooredSigmoid.apply(logits) if output == "st" else torch.sigmoid(logits)

    decoder.forward = forward  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name")
    parser.add_argument("--data", default="mnist", choices=("mnist", "fashion_mnist"))
    parser.add_argument("--optimizer", default="adam", choices=("adam", "rmsprop"))
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--beta1", type=float, default=0.9, help="Adam's first beta (GANs often use 0.5)")
    parser.add_argument("--fake-weight", type=float, default=2.0)
    parser.add_argument("--margin", type=float, default=1.0)
    parser.add_argument("--decoder-norm", default="none", choices=("none", "batch"))
    parser.add_argument("--output", default="sigmoid", choices=("sigmoid", "st"))
    parser.add_argument("--decoder-input-norm", action="store_true")
    parser.add_argument("--code-norm", action="store_true", help="codes scaled to RMS 1 at the encoder's output")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--records", type=Path, default=REPO / "docs" / "results" / "runs" / "screen")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(args.seed)

    from torchvision.datasets import MNIST, FashionMNIST

    root = os.environ.get("ENCDEC_DATA_DIR", str(REPO / "data"))
    train = (MNIST if args.data == "mnist" else FashionMNIST)(root, train=True)
    images, labels = train.data.float().div(255).unsqueeze(1), train.targets
    held_out = Split(images[-5000:], labels[-5000:]).subset(1000, 0)
    images, labels = images[:-5000], labels[:-5000]
    fit = Split(images, labels).subset(2000, 0)

    model = EncDec(fake_weight=args.fake_weight, margin=args.margin, optimizer=args.optimizer, lr=args.lr,
                   decoder_norm=args.decoder_norm, code_norm="rms" if args.code_norm else "none",
                   data_spec=ImageSpec())  # fmt: skip
    if args.output != "sigmoid" or args.decoder_input_norm:
        hook_decoder(model, args.output, args.decoder_input_norm)
    model = model.to(memory_format=torch.channels_last)
    if args.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(args.beta1, 0.999))
    else:
        optimizer = torch.optim.RMSprop(model.parameters(), lr=args.lr)
    cache = Path(os.environ.get("ENCDEC_CACHE_DIR", "~/.cache/encdec-pl")).expanduser()
    classifier, _ = load_classifier(cache / "classifiers" / f"{args.data}.pt", args.data)
    judged = judge(classifier, held_out.images)
    generator = torch.Generator().manual_seed(args.seed)
    rows: list[dict] = []
    terms: list[dict] = []
    load_at_start, start = list(os.getloadavg()), time.time()

    def measure(step: int) -> None:
        metrics = score_model(model, classifier, held_out, fit, 1000, 5, 0, judged).metrics
        with torch.no_grad():
            model.eval()
            mean_output = float(model.decode(model.encode(held_out.images[:256])).mean())
            model.train()
        row = {"step": step, **{k: round(v, 4) for k, v in metrics.items() if not k.startswith("accuracy/")},
               "mean_output": round(mean_output, 4), "wall_s": round(time.time() - start, 1)}  # fmt: skip
        rows.append(row)
        print(args.name, row, flush=True)

    measure(0)
    model.train()
    for step in range(1, args.steps + 1):
        x = images[torch.randint(0, len(images), (128,), generator=generator)]
        x = rotate(x, sample_angles(len(x), 10.0, generator)).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            losses = model.compute_losses(x)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        if step % 50 == 0:
            terms.append({"step": step, **{k: round(float(v.detach()), 4) for k, v in losses.items()}})
        if step % args.every == 0:
            measure(step)
    args.records.mkdir(parents=True, exist_ok=True)
    threads = os.environ.get("OMP_NUM_THREADS")
    record = {
        "name": args.name, "command": "python scripts/screen_recipe.py " + " ".join(sys.argv[1:]),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": f"{os.cpu_count()}-core CPU, torch {torch.__version__}, OMP_NUM_THREADS={threads}",
        "load_at_start": load_at_start, "load_at_end": list(os.getloadavg()), "rows": rows, "terms": terms,
    }  # fmt: skip
    (args.records / f"{args.name}.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
