"""Does the training loop keep up with its own step? images/s of ``train()`` against the bare ``train_step``.

    python benchmarks/loop_vs_step.py             # quick and full sizes, on the device dnnl picks (meant for a GPU)
    python benchmarks/loop_vs_step.py --smoke     # tiny sizes on any device: proves the script runs

For each size (``TrainConfig.quick()`` and ``TrainConfig.full()``, their model and batch):

- the bare step: ``train_step`` on one batch already on the device, as the loop calls it (channels_last,
  fused AdamW, the loop's gradient clipping and precision), ``--steps`` times after ``--warmup``;
- the loop: ``train()`` itself (data batches, the step, the learning-rate schedule, the EMA, logging),
  first ``--warmup`` steps, then resumed for ``--steps`` more; its rate is the resumed part's
  ``images_per_sec``, which includes one checkpoint write at its end.

The peak GPU memory of each is ``torch.cuda.max_memory_allocated`` from a reset at its start. The goal is
the loop at >= 0.9x the bare step. Writes benchmarks/results/loop_vs_step_cuda.json on a GPU
(``loop_vs_step.json`` elsewhere; nothing with --smoke).
"""
from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import device_tag, provenance, save_result, synchronize  # noqa: E402  (benchmarks/_machine.py)
import dnnl  # noqa: E402
from dnnl.models.ddpm import train, train_step  # noqa: E402
from dnnl.models.ddpm._env import precision  # noqa: E402
from dnnl.models.ddpm.train import TrainConfig  # noqa: E402

GOAL = 0.9
SMOKE = dict(channels=(8, 16), num_res_blocks=1, batch_size=8, subset=64)


def _fresh_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def bare_step(config: TrainConfig, device: torch.device, warmup: int, steps: int) -> dict:
    """images/s and peak memory of ``train_step`` alone, on one batch already on the device."""
    _fresh_peak(device)
    cuda = device.type == "cuda"
    torch.manual_seed(config.seed)
    model = config.build_model(1).to(device).to(memory_format=torch.channels_last).train()
    schedule = config.build_schedule().to(device) if cuda else config.build_schedule()
    gen = torch.Generator(device if cuda else "cpu").manual_seed(config.seed)
    x0 = (torch.rand(config.batch_size, 1, 28, 28, device=device, generator=gen) * 2 - 1).contiguous(
        memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                  fused=device.type in ("cpu", "cuda") or None)
    autocast_dtype, scaler = precision(device)

    def step():
        train_step(model, schedule, x0, optimizer, generator=gen, grad_clip=config.grad_clip, scaler=scaler,
                   autocast_dtype=autocast_dtype)

    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return {"images_per_s": round(steps * config.batch_size / (time.perf_counter() - start), 1),
            "peak_memory_mb": _peak_mb(device)}


def loop(config: TrainConfig, device: torch.device, warmup: int, steps: int, out: Path) -> dict:
    """images/s and peak memory of ``train()``: ``warmup`` steps, then resumed for ``steps`` more."""
    base = config.to_dict()
    base.update(out_dir=str(out), sample_every=0, checkpoint_every=10**9, log_every=max(1, min(50, steps)))
    train(TrainConfig(**{**base, "steps": warmup, "decay_steps": warmup + steps}), progress=False)
    _fresh_peak(device)
    result = train(TrainConfig(**{**base, "steps": warmup + steps, "decay_steps": warmup + steps}), resume=True,
                   progress=False)
    return {"images_per_s": round(result.images_per_sec, 1), "peak_memory_mb": _peak_mb(device)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=20, help="steps before timing")
    parser.add_argument("--root", default=None, help="MNIST folder (default: $DNNL_DATA, then the cache)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; writes nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.warmup = 3, 2
    device = dnnl.get_device()
    sizes = {}
    with tempfile.TemporaryDirectory(prefix="dnnl-loop-") as tmp:
        for name, preset in (("quick", TrainConfig.quick), ("full", TrainConfig.full)):
            config = preset(data_root=args.root, **(SMOKE if args.smoke else {}))
            bare = bare_step(config, device, args.warmup, args.steps)
            looped = loop(config, device, args.warmup, args.steps, Path(tmp) / name)
            sizes[name] = {"batch_size": config.batch_size, "channels": list(config.channels), "bare_step": bare,
                           "loop": looped, "loop_over_step": round(looped["images_per_s"] / bare["images_per_s"], 3)}
            print(f"{name}: loop {looped['images_per_s']:.0f} vs bare step {bare['images_per_s']:.0f} images/s "
                  f"({sizes[name]['loop_over_step']:.2f}x)", flush=True)
    result = {"device": str(device), "sizes": sizes, "goal": f"loop >= {GOAL:g}x the bare step",
              "goal_met": all(s["loop_over_step"] >= GOAL for s in sizes.values()),
              "steps": args.steps, "warmup": args.warmup, "smoke": args.smoke, **provenance(),
              "command": "python benchmarks/loop_vs_step.py"}
    return save_result(f"loop_vs_step{device_tag(device)}.json", result, write=not args.smoke)


if __name__ == "__main__":
    main()
