"""Sample quality of a shipped checkpoint: Fréchet distance, classifier confidence, real-vs-real floor.

    python benchmarks/evaluate_pretrained.py [--name ddpm_mnist_quick] [--n 1000] [--steps 100] [--method ddpm]

Draws ``--n`` samples with a ``--steps``-step strided chain (all T steps take ``T/steps`` times longer;
the script reports the measured time per step and what a full chain would cost), scores them with
``dnnl.metrics.sample_quality`` against the 10,000 MNIST test images, and computes the real-vs-real
calibration with the same code: held-out training digits (train[50000:]) against the test set, once
with all 10,000 and once with ``--n`` of them (the FD of a small set is biased upwards, so the fair
floor uses the same n as the samples).

Writes benchmarks/results/<name>_quality.json (``pretrained_quality.json`` for the default name) and a
sample grid, and stores the numbers in the ``quality`` field of the checkpoint's JSON record.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import RESULTS, machine, provenance, save_result, write_json  # noqa: E402  (benchmarks/_machine.py)
import dnnl  # noqa: E402
from dnnl import metrics  # noqa: E402
from dnnl.models.ddpm import load_pretrained, sample  # noqa: E402
from dnnl.models.ddpm.pretrained import WEIGHTS_DIR, pretrained_schedule  # noqa: E402
from dnnl.plot import save_grid  # noqa: E402



def rounded(d: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="ddpm_mnist_quick")
    parser.add_argument("--path", default=None, help="a checkpoint .pt elsewhere (its .json beside it)")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--method", default="ddpm", choices=["ddpm", "ddim"])
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="MNIST folder (default: $DNNL_DATA, then the cache)")
    parser.add_argument("--no-update", action="store_true", help="do not write into the checkpoint's JSON")
    parser.add_argument("--out", default=None, help="result file (default: benchmarks/results/<name>_quality.json, "
                        "pretrained_quality.json for the shipped default)")
    args = parser.parse_args(argv)
    print(machine(), flush=True)

    device = dnnl.get_device()
    model = load_pretrained(args.name, device, path=args.path)
    schedule = pretrained_schedule(args.name, path=args.path)

    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    start = time.perf_counter()
    images = sample(model, schedule, (args.n, 1, 28, 28), steps=args.steps, method=args.method, generator=gen,
                    batch_size=args.batch_size, progress=True).images.cpu()
    sampling_s = time.perf_counter() - start
    per_step = sampling_s / args.steps
    print(f"sampled {args.n} images with {args.steps} {args.method} steps in {sampling_s:.1f} s", flush=True)

    start = time.perf_counter()
    quality = metrics.sample_quality(images, root=args.root)
    scoring_s = time.perf_counter() - start
    calib_all = metrics.real_vs_real(root=args.root)
    calib_n = metrics.real_vs_real(args.n, root=args.root, seed=args.seed)

    name = args.name if args.path is None else Path(args.path).stem
    RESULTS.mkdir(parents=True, exist_ok=True)
    grid_path = (Path(args.out).with_suffix(".png") if args.out
                 else RESULTS / f"{name}_samples_{args.method}{args.steps}.png")
    grid = save_grid(images[:64], grid_path, nrow=8)
    summary = {
        "fd": round(quality["fd"], 4),
        "confidence": round(quality["confidence"], 4),
        "class_histogram": quality["class_histogram"],
        "n_samples": args.n,
        "sampler": f"{args.method}, {args.steps} strided steps of T={schedule.T} (DDPMScheduler 'leading' spacing), "
                   "x0 clipped to [-1, 1]",
        "seed": args.seed,
        "reference": "MNIST test set (10,000 images)",
        "real_vs_real_fd": {"n=10000": round(calib_all["fd"], 4), f"n={args.n}": round(calib_n["fd"], 4)},
        "real_vs_real_confidence": round(calib_all["confidence"], 4),
        "fd_over_real_vs_real_same_n": round(quality["fd"] / calib_n["fd"], 3),
        "targets": {"fd_within_3x_of_real_vs_real": quality["fd"] <= 3 * calib_n["fd"],
                    "confidence_at_least_0.9": quality["confidence"] >= 0.9},
        "metric": "Fréchet distance on the 128-d penultimate features of dnnl/weights/mnist_classifier.pt",
        "script": "benchmarks/evaluate_pretrained.py",
    }
    prov = provenance()
    result = {
        "checkpoint": name,
        "quality": summary,
        "samples": rounded(quality),
        "real_vs_real": {"all_10000": rounded(calib_all), f"random_{args.n}": rounded(calib_n)},
        "timing": {
            "device": str(device), "machine": prov["machine"], "torch": prov["torch"],
            "sampling_s": round(sampling_s, 1), "steps": args.steps, "batch_size": args.batch_size,
            "seconds_per_step_for_all_samples": round(per_step, 3),
            "full_chain_estimate_s": round(per_step * schedule.T, 0),
            "scoring_s": round(scoring_s, 1),
        },
        "sample_grid": str(grid.relative_to(REPO)) if grid.is_relative_to(REPO) else str(grid),
        "date": prov["date"],
    }

    if not args.no_update:
        record = Path(args.path).with_suffix(".json") if args.path else WEIGHTS_DIR / f"{args.name}.json"
        data = json.loads(record.read_text())
        data["quality"] = summary
        write_json(record, data)
    return save_result(Path(args.out) if args.out else
                       "pretrained_quality.json" if name == "ddpm_mnist_quick" else f"{name}_quality.json", result)


if __name__ == "__main__":
    main()
