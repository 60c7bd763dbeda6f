"""Train the small MNIST classifier behind dnnl.metrics and ship its weights.

    python benchmarks/train_classifier.py [--epochs 4] [--seed 0] [--out dnnl/weights/mnist_classifier.pt]

Trains on train[:50000] (train[50000:] stays held out for the real-vs-real calibration), reports the
accuracy on the 10,000 test images, and writes the weights (a ``weights_only`` state dict) plus a JSON
record: accuracy, seed, epochs, wall time, machine.

Every batch also holds "not a digit" images (class 10): uniform and Gaussian noise, smooth blobs, blank
or constant images, sparse specks, and digits buried in noise (x_t with ᾱ <= 0.35). Without them the
network reads pure noise as an 8 with > 99% probability, and "confidently classified" would mean nothing.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import machine, provenance, save_result  # noqa: E402  (benchmarks/_machine.py)
import dnnl  # noqa: E402
from dnnl.data import mnist_tensors  # noqa: E402
from dnnl.metrics import CLASSIFIER_PATH, CLASSIFIER_TRAIN_SIZE, NOT_A_DIGIT, MNISTClassifier  # noqa: E402

JUNK_KINDS = ("uniform", "gaussian", "blobs", "constant", "specks", "noised digit")


def junk_images(digits: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One "not a digit" image per row of ``digits`` (N, 1, 28, 28), each of a random kind, in [-1, 1]."""
    n = digits.shape[0]
    u = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    kind = torch.randint(0, len(JUNK_KINDS), (n, 1, 1, 1), generator=gen)
    gauss = torch.randn(n, 1, 28, 28, generator=gen)
    out = u(n, 1, 28, 28) * 2 - 1                                                  # uniform
    out = torch.where(kind == 1, gauss * (0.2 + 0.8 * u(n, 1, 1, 1)), out)         # gaussian
    side = [4, 7, 14][int(torch.randint(0, 3, (1,), generator=gen))]
    blobs = F.interpolate(torch.randn(n, 1, side, side, generator=gen), size=28, mode="bilinear")
    blobs = blobs * (0.5 + 1.5 * u(n, 1, 1, 1)) + (u(n, 1, 1, 1) * 1.5 - 1)
    out = torch.where(kind == 2, blobs, out)                                       # blobs
    const = (u(n, 1, 1, 1) * 2 - 1) + 0.05 * gauss
    out = torch.where(kind == 3, const, out)                                       # blank / constant
    specks = torch.where(u(n, 1, 28, 28) < 0.02 + 0.28 * u(n, 1, 1, 1), 1.0, -1.0)
    out = torch.where(kind == 4, specks, out)                                      # sparse specks
    ab = 0.35 * u(n, 1, 1, 1)
    noised = ab.sqrt() * digits + (1 - ab).sqrt() * torch.randn(n, 1, 28, 28, generator=gen)
    out = torch.where(kind == 5, noised, out)                                      # digit buried in noise
    return out.clamp(-1, 1)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in zip(x.split(1000), y.split(1000)))
    return correct / len(y)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--junk-per-batch", type=int, default=24, help='"not a digit" images added to each batch')
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="MNIST folder (default: $DNNL_DATA, then the cache)")
    parser.add_argument("--out", default=str(CLASSIFIER_PATH))
    parser.add_argument("--smoke", action="store_true",
                        help="512 images, one epoch: proves the script runs (use with --out elsewhere)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs = 1
    print(machine(), flush=True)

    dnnl.set_seed(args.seed)
    x_all, y_all = mnist_tensors("train", args.root)
    x_train, y_train = x_all[:CLASSIFIER_TRAIN_SIZE], y_all[:CLASSIFIER_TRAIN_SIZE]
    if args.smoke:
        x_train, y_train = x_train[:512], y_train[:512]
    x_held, y_held = x_all[CLASSIFIER_TRAIN_SIZE:], y_all[CLASSIFIER_TRAIN_SIZE:]
    x_test, y_test = mnist_tensors("test", args.root)

    model = MNISTClassifier()
    steps_per_epoch = len(x_train) // args.batch_size
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)

    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            xb = x_train[idx]
            # small random shifts (up to 2 pixels) make the features less brittle on generated digits
            dx, dy = torch.randint(-2, 3, (2,), generator=gen).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            yb = y_train[idx]
            if args.junk_per_batch:
                junk = junk_images(xb[:args.junk_per_batch], gen)
                xb = torch.cat([xb, junk])
                yb = torch.cat([yb, torch.full((junk.shape[0],), NOT_A_DIGIT, dtype=torch.long)])
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / steps_per_epoch:.4f}, "
              f"held-out acc {accuracy(model, x_held, y_held):.4f}, {time.perf_counter() - start:.0f} s", flush=True)
    wall = time.perf_counter() - start

    model.eval()
    junk_gen = torch.Generator().manual_seed(args.seed + 1)
    x_junk = torch.cat([junk_images(x_test[i:i + 1000], junk_gen) for i in range(0, 2000, 1000)])
    y_junk = torch.full((len(x_junk),), NOT_A_DIGIT, dtype=torch.long)
    record = {
        "test_accuracy": accuracy(model, x_test, y_test),
        "heldout_accuracy": accuracy(model, x_held, y_held),
        "not_a_digit_accuracy": accuracy(model, x_junk, y_junk),
        "not_a_digit_kinds": list(JUNK_KINDS),
        "junk_per_batch": args.junk_per_batch,
        "train_split": f"train[:{CLASSIFIER_TRAIN_SIZE}]",
        "heldout_split": f"train[{CLASSIFIER_TRAIN_SIZE}:]",
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "wall_time_s": round(wall, 1),
        **provenance(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "script": "benchmarks/train_classifier.py",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".pt.tmp")
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, out)
    return save_result(out.with_suffix(".json"), record)


if __name__ == "__main__":
    main()
