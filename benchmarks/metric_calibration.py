"""Calibrate dnnl.metrics: what the Fréchet distance and the confidence read for real digits and for noise.

    python benchmarks/metric_calibration.py [--sizes 10000 2000 1000 256]

For each n, n held-out training digits (train[50000:], never seen by the classifier) are scored against
the 10,000 test digits with ``sample_quality``: the floor a perfect generator would reach at that sample
size. Noise images and blurred digits show the other end of the scale. Writes benchmarks/results/metric_calibration.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import machine, provenance, save_result  # noqa: E402  (benchmarks/_machine.py)
from dnnl import metrics  # noqa: E402
from dnnl.data import mnist_tensors  # noqa: E402



def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 2_000, 1_000, 256])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None)
    parser.add_argument("--out", default=None, help="result file (default: benchmarks/results/metric_calibration.json)")
    args = parser.parse_args(argv)
    print(machine(), flush=True)

    start = time.perf_counter()
    ref = metrics.reference_features("test", args.root)
    feature_s = time.perf_counter() - start
    test_x, test_y = mnist_tensors("test", args.root)
    accuracy = float((metrics.predict_proba(test_x).argmax(1) == test_y).double().mean())

    rows = {}
    for n in args.sizes:
        q = metrics.real_vs_real(None if n == 10_000 else n, root=args.root, seed=args.seed)
        rows[str(n)] = {"fd": round(q["fd"], 4), "confidence": round(q["confidence"], 4),
                        "not_a_digit": round(q["not_a_digit"], 4)}
        print(f"real vs real, n={n}: FD {q['fd']:.4f}, confidence {q['confidence']:.4f}", flush=True)
    gen = torch.Generator().manual_seed(args.seed)
    fakes = {
        "uniform noise": torch.rand(1000, 1, 28, 28, generator=gen) * 2 - 1,
        "gaussian noise (sd 0.5)": (0.5 * torch.randn(1000, 1, 28, 28, generator=gen)).clamp(-1, 1),
        "test digits with 2-pixel blur": torch.nn.functional.avg_pool2d(test_x[:1000], 5, 1, 2),
    }
    far = {}
    for name, images in fakes.items():
        q = metrics.sample_quality(images, reference=ref)
        far[name] = {"fd": round(q["fd"], 2), "confidence": round(q["confidence"], 4),
                     "not_a_digit": round(q["not_a_digit"], 4)}
        print(f"{name}: {far[name]}", flush=True)
    result = {
        "classifier_test_accuracy": round(accuracy, 4),
        "real_vs_real": rows,
        "other_sets_of_1000": far,
        "reference": "MNIST test set, 10,000 images; held-out digits are train[50000:]",
        "reference_feature_time_s": round(feature_s, 1),
        "seed": args.seed,
        "torch_threads": torch.get_num_threads(),
        **provenance(),
        "script": "benchmarks/metric_calibration.py",
    }
    return save_result(Path(args.out) if args.out else "metric_calibration.json", result)


if __name__ == "__main__":
    main()
