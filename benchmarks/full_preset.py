"""The full preset on a GPU: training images/s, time to the FD target, and peak GPU memory.

    python benchmarks/full_preset.py                    # TrainConfig.full(), scored every 1,000 steps
    python benchmarks/full_preset.py --max-minutes 5    # stop training after 5 minutes in any case
    python benchmarks/full_preset.py --smoke            # tiny sizes: proves the script runs, measures nothing

Trains ``TrainConfig.full()`` with the package's own loop in segments of ``--every`` steps. Each segment
resumes from the run's checkpoint, so weights, optimiser, data order and the learning-rate curve are
those of one uninterrupted run of the preset. After each segment, ``--n`` samples from the EMA model
(``--sample-steps`` strided DDPM steps, fixed noise) are scored by ``dnnl.metrics`` against the MNIST test
set. The run stops at the first score with FD ≤ ``--target`` × the real-vs-real FD at the same n (the
target of the shipped checkpoint), or at ``--max-steps`` / ``--max-minutes``. The time to the target is
the training wall time (the loop's own clock, checkpoints included), not the scoring. Peak memory is
the largest ``torch.cuda.max_memory_allocated`` of the training segments, each counted from a reset made
at its start, after the previous segment's models were released (:func:`train_segment`).

Writes benchmarks/results/full_preset_cuda.json on a GPU (``full_preset.json`` on a CPU, like the other scripts).
"""
from __future__ import annotations

import argparse
import gc
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import device_tag, machine, provenance, save_result  # noqa: E402  (benchmarks/_machine.py)
import dnnl  # noqa: E402
from dnnl import metrics  # noqa: E402
from dnnl.models.ddpm import sample  # noqa: E402
from dnnl.models.ddpm.train import TrainConfig, train  # noqa: E402


def score(model, schedule, n: int, steps: int, seed: int, reference, batch: int = 500) -> dict:
    """FD and confidence of ``n`` EMA samples drawn with the same noise every time."""
    gen = torch.Generator().manual_seed(seed)
    images = sample(model, schedule, (n, 1, 28, 28), steps=steps, generator=gen, batch_size=batch,
                    progress=False).images
    return metrics.sample_quality(images, reference=reference)


def train_segment(config: TrainConfig, device: torch.device):
    """Resume the run up to ``config.steps``; returns (TrainResult, peak MB of this segment or None off CUDA).

    On CUDA the peak counter is reset first, after the caller dropped the previous segment's result and the
    allocator's cache is emptied, so the peak is this segment's training alone: not the scoring before it,
    and not a previous segment's models still held.
    """
    cuda = device.type == "cuda"
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    result = train(config, resume=True, progress=False)
    return result, (torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=1000, help="training steps between scores")
    parser.add_argument("--max-steps", type=int, default=None, help="default: the preset's steps")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop once training took this long")
    parser.add_argument("--target", type=float, default=3.0, help="FD target as a multiple of real-vs-real")
    parser.add_argument("--keep-going", action="store_true", help="train on after the target is reached")
    parser.add_argument("--n", type=int, default=1000, help="samples per score")
    parser.add_argument("--sample-steps", type=int, default=100, help="strided DDPM steps per sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "runs" / "full_preset"), help="run folder (replaced)")
    parser.add_argument("--root", default=None, help="MNIST folder (default: $DNNL_DATA, then the cache)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the script runs, measures nothing")
    args = parser.parse_args(argv)
    print(machine(), flush=True)
    device = dnnl.get_device()
    cuda = device.type == "cuda"

    overrides = dict(out_dir=args.out, data_root=args.root, seed=args.seed, sample_every=0)
    if args.smoke:
        overrides.update(channels=(8, 16), num_res_blocks=1, batch_size=8, subset=64, warmup=1, steps=4,
                         log_every=1, checkpoint_every=2)
        args.every, args.n, args.sample_steps = 2, 16, 2
    preset = TrainConfig.full(**overrides)
    max_steps = min(args.max_steps or preset.steps, preset.steps)
    shutil.rmtree(args.out, ignore_errors=True)

    reference = metrics.reference_features("test", args.root)
    calib = metrics.real_vs_real(args.n, root=args.root, seed=args.seed)
    target_fd = args.target * calib["fd"]
    print(f"real-vs-real FD at n={args.n}: {calib['fd']:.2f}; target FD <= {target_fd:.2f}", flush=True)

    schedule = preset.build_schedule()
    scores, reached, step, peak = [], None, 0, None
    while step < max_steps:
        step = min(step + args.every, max_steps)
        config = TrainConfig(**{**preset.to_dict(), "steps": step})  # decay_steps stays the preset's
        result = None  # the previous segment's model and EMA must not count in this segment's peak
        result, segment_peak = train_segment(config, device)
        if segment_peak is not None:
            peak = max(peak or 0.0, segment_peak)
        start = time.perf_counter()
        q = score(result.ema_model, schedule, args.n, args.sample_steps, args.seed, reference)
        row = {"step": step, "train_wall_s": round(result.wall_time, 1),
               "images_per_s": round(result.images_per_sec, 1),
               "loss": round(sum(result.losses[-100:]) / len(result.losses[-100:]), 5),
               "fd": round(q["fd"], 3), "confidence": round(q["confidence"], 4),
               "scoring_s": round(time.perf_counter() - start, 1)}
        scores.append(row)
        print(f"step {step}: FD {row['fd']:.2f}, {row['confidence']:.1%} confident, {row['images_per_s']:.0f} images/s, "
              f"{row['train_wall_s']:.0f} s of training", flush=True)
        if reached is None and q["fd"] <= target_fd:
            reached = row
            if not args.keep_going:
                break
        if args.max_minutes is not None and result.wall_time >= 60 * args.max_minutes:
            break

    last = scores[-1]
    rates = [r["images_per_s"] for r in scores[1:]] or [scores[0]["images_per_s"]]
    result = {
        "preset": {k: v for k, v in preset.to_dict().items()
                   if k in ("channels", "num_res_blocks", "attention", "dropout", "batch_size", "lr", "warmup",
                            "decay_steps", "ema_decay", "steps")},
        "parameters": sum(p.numel() for p in preset.build_model().parameters()),
        "precision": "bf16 autocast + TF32 (the training loop on CUDA)" if cuda else "float32",
        "images_per_s": round(sorted(rates)[len(rates) // 2], 1),
        "images_per_s_note": "median over the segments after the first (each includes its checkpoint write)",
        "peak_memory_mb": round(peak, 1) if peak is not None else None,
        "real_vs_real": {"fd": round(calib["fd"], 3), "confidence": round(calib["confidence"], 4), "n": args.n},
        "target_fd": round(target_fd, 3),
        "target": f"FD <= {args.target:g} x real-vs-real at n = {args.n}",
        "reached": reached is not None,
        "steps_to_target": reached["step"] if reached else None,
        "time_to_target_s": reached["train_wall_s"] if reached else None,
        "scores": scores,
        "final": {"step": last["step"], "fd": last["fd"], "confidence": last["confidence"]},
        "sampler": f"DDPM, {args.sample_steps} strided steps, x0 clipped, seed {args.seed}",
        "smoke": args.smoke,
        "device": str(device),
        **provenance(),
        "command": "python benchmarks/full_preset.py"
                   + (f" --max-minutes {args.max_minutes:g}" if args.max_minutes is not None else ""),
    }
    return save_result(f"full_preset{device_tag(device)}.json", result, write=not args.smoke)


if __name__ == "__main__":
    main()
