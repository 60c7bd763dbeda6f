"""Command line: ``python -m dnnl.models.ddpm --preset quick --out runs/quick`` (runs under torchrun too).

A fault (a non-finite loss, a locked, full or read-only folder, a corrupted checkpoint) or Ctrl-C/SIGTERM
ends the run with one line on stderr instead of a traceback; an interrupted run saved a checkpoint first.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from ... import get_mode
from ._env import distributed
from .train import TrainConfig, TrainingInterrupted, TrainResult, train


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dnnl.models.ddpm",
        description="Train the DDPM U-Net on MNIST (Algorithm 1). Runs under torchrun for several GPUs.")
    p.add_argument("--preset", choices=("quick", "full"), default=None,
                   help="model and run size (default: quick without a GPU, full with one)")
    p.add_argument("--out", dest="out_dir", help="output folder for checkpoint.pt and samples/")
    p.add_argument("--steps", type=int, help="total optimiser steps")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--subset", type=int, help="train on the first N images only")
    p.add_argument("--batch-size", type=int, help="images per step per process")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--min-snr-gamma", type=float, help="weight the loss by min(SNR, gamma)/SNR (default: off)")
    p.add_argument("--seed", type=int, help="seed for the weights, data order and noise")
    p.add_argument("--data-root", help="folder that holds MNIST/raw/ (default: $DNNL_DATA or the cache)")
    p.add_argument("--sample-every", type=int, help="save a grid of EMA samples every N steps (0: never)")
    p.add_argument("--checkpoint-every", type=int, help="save a checkpoint every N steps")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: list[str] | None = None) -> TrainResult:
    """Parse ``argv``, train, print a one-line summary; errors propagate (see :func:`run_cli`)."""
    args = vars(parser().parse_args(argv))
    preset = args.pop("preset") or get_mode()
    resume, no_progress = args.pop("resume"), args.pop("no_progress")
    config = TrainConfig.preset_named(preset, **{k: v for k, v in args.items() if v is not None})
    result = train(config, resume=resume, progress=not no_progress)
    if distributed()[0] == 0:
        tail = result.losses[-config.log_every:]
        print(f"done: {result.steps} steps, final loss {np.mean(tail):.4f}, {result.images_per_sec:.0f} img/s, "
              f"{result.wall_time:.0f} s; checkpoint {result.checkpoint}")
    return result


def run_cli(argv: list[str] | None = None) -> None:
    """:func:`main`, with faults and interruptions reported in one line and a non-zero exit status."""
    try:
        main(argv)
    except TrainingInterrupted as err:
        print(f"interrupted: {err}", file=sys.stderr, flush=True)
        sys.exit(128 + err.signum)  # the shell's convention for "ended by this signal"
    except (RuntimeError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    run_cli()
