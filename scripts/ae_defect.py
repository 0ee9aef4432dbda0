"""Why the pixel-MSE autoencoder did not train (docs/recipe.md, "The AE defect").

    python scripts/ae_defect.py --loss mse --lr 1e-3 --steps 100     # the defect
    python scripts/ae_defect.py --loss bce --lr 1e-3 --steps 300     # the fix
    python scripts/ae_defect.py --loss mse --no-weight-norm          # weight norm is not the cause

Trains the AE's networks (encdec_pl.models.Autoencoder) with Adam on 20,000 MNIST training images
(no rotation), fp32 or bf16 autocast, one thread, and prints per step: the loss and pixel MSE, the
codes' RMS, the share of active ReLUs after each decoder layer, the final logits' mean and the share
saturated (|logit| > 8, sigmoid gradient < 3.4e-4), the mean output, and the gradient norm reaching
the decoder and the encoder.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize
from torchvision import datasets

from encdec_pl.models import Autoencoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loss", choices=("mse", "bce"), default="mse")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--no-weight-norm", action="store_true", help="remove weight norm from every layer")
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = os.environ.get("ENCDEC_DATA_DIR", "data")
    images = datasets.MNIST(root, train=True, download=False).data[:20000].float().div(255).unsqueeze(1)
    model = Autoencoder(recon_loss=args.loss).train()
    if args.no_weight_norm:
        for module in list(model.modules()):
            if parametrize.is_parametrized(module):
                parametrize.remove_parametrizations(module, "weight")
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    acts: dict[str, torch.Tensor] = {}
    layers = {"project": model.decoder.project, "conv1": model.decoder.conv1, "conv2": model.decoder.conv2}
    for name, layer in {**layers, "logits": model.decoder.conv3}.items():
        layer.register_forward_hook(lambda _m, _i, out, name=name: acts.__setitem__(name, out.detach().float()))
    generator = torch.Generator().manual_seed(0)
    for step in range(args.steps):
        x = images[torch.randint(0, len(images), (128,), generator=generator)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            z = model.encoder(x)
            x_rec = model.decoder(z).float()
        mse = F.mse_loss(x_rec, x)
        loss = mse if args.loss == "mse" else F.binary_cross_entropy(x_rec, x)
        optimizer.zero_grad()
        loss.backward()
        grads = {part: sum(p.grad.pow(2).sum() for p in getattr(model, part).parameters()).sqrt().item()
                 for part in ("decoder", "encoder")}  # fmt: skip
        optimizer.step()
        if step < 5 or step % args.every == 0 or step == args.steps - 1:
            logits = acts["logits"]
            alive = " ".join(f"{n} {(acts[n] > 0).float().mean().item():.2f}" for n in layers)
            print(
                f"step {step:4d} loss {loss.item():.4f} mse {mse.item():.4f} "
                f"code_rms {z.float().pow(2).mean().sqrt():7.2f} active ReLUs: {alive} | "
                f"logits mean {logits.mean():9.2f} saturated {(logits.abs() > 8).float().mean():.3f} "
                f"out_mean {x_rec.mean():.3f} | grad decoder {grads['decoder']:.1e} encoder {grads['encoder']:.1e}",
                flush=True,
            )


if __name__ == "__main__":
    main()
