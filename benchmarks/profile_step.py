"""Where the time of one training step goes: torch.profiler over ``train_step`` of the quick preset.

    python benchmarks/profile_step.py               # the quick preset's model and batch, 10 profiled steps
    python benchmarks/profile_step.py --smoke       # a tiny model, 2 steps: proves the script runs

The step is ``dnnl.models.ddpm.train_step`` as the training loop runs it on this device (channels_last,
fused AdamW, the loop's gradient clipping; bf16 autocast on CUDA). After ``--warmup`` steps, ``--steps``
steps run under ``torch.profiler``; each operator's self time (its own, without the operators it calls) is
summed into a few groups: convolutions, GroupNorm, attention (scaled dot-product attention and its
projections' matmuls are told apart by name only where they are distinct operators), SiLU, the optimizer
(AdamW and the gradient-norm clipping), and everything else. Forward and backward count together.
Before profiling, the same number of steps is timed without the profiler (``ms_per_step``); the profiler
adds time of its own, so the shares, not the profiled milliseconds, are the result.

Writes benchmarks/results/profile_step.json (``profile_step_cuda.json`` on a GPU; not with --smoke).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import device_tag, provenance, save_result, synchronize  # noqa: E402  (benchmarks/_machine.py)
import dnnl  # noqa: E402
from dnnl.models.ddpm import train_step  # noqa: E402
from dnnl.models.ddpm._env import precision  # noqa: E402
from dnnl.models.ddpm.train import TrainConfig  # noqa: E402

# operator name fragments -> group (first match wins). Names are compared in lower case without "_", so that
# aten's forward ops (aten::native_group_norm) and autograd's backward nodes (NativeGroupNormBackward0) both match.
GROUPS = (
    ("attention (scaled dot-product at 7x7)", ("scaleddotproduct", "flashattention", "efficientattention",
                                               "softmax", "bmm")),
    ("GroupNorm", ("groupnorm",)),
    ("convolution (3x3 and 1x1; with attention, its q/k/v and output projections too)", ("convolution", "conv2d",
                                                                                   "mkldnnconv", "cudnnconv")),
    ("SiLU", ("silu",)),
    ("optimizer (AdamW, gradient clipping)", ("adam", "foreachnorm", "foreachmul", "clipgrad")),
    ("linear (time embedding)", ("addmm", "aten::mm", "mmbackward", "linear")),
    ("upsampling", ("upsample",)),
)
# operators that only call others (their self time is bookkeeping, their children are counted)
_SKIP = ("ProfilerStep", "autograd::engine", "Optimizer.step", "Optimizer.zero_grad")


def group_of(name: str) -> str:
    low = name.lower().replace("_", "")
    for group, parts in GROUPS:
        if any(p in low for p in parts):
            return group
    return "other (elementwise, copies, loss, RNG)"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="profiled steps")
    parser.add_argument("--warmup", type=int, default=3, help="steps before profiling")
    parser.add_argument("--smoke", action="store_true", help="a tiny model, 2 steps; writes nothing")
    args = parser.parse_args(argv)
    device = dnnl.get_device()
    config = TrainConfig.quick(**({"channels": (8, 16), "num_res_blocks": 1, "batch_size": 4} if args.smoke else {}))
    if args.smoke:
        args.steps, args.warmup = 2, 1
    torch.manual_seed(0)
    model = config.build_model(1).to(device).to(memory_format=torch.channels_last).train()
    schedule = config.build_schedule().to(device) if device.type == "cuda" else config.build_schedule()
    gen = torch.Generator(device if device.type == "cuda" else "cpu").manual_seed(0)
    x0 = (torch.rand(config.batch_size, 1, 28, 28, device=device, generator=gen) * 2 - 1).contiguous(
        memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, fused=device.type in ("cpu", "cuda") or None)
    autocast_dtype, scaler = precision(device)

    def step():
        train_step(model, schedule, x0, optimizer, generator=gen, grad_clip=config.grad_clip, scaler=scaler,
                   autocast_dtype=autocast_dtype)

    for _ in range(args.warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize(device)
    wall_ms = (time.perf_counter() - start) * 1000 / args.steps
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    use_cuda = device.type == "cuda"
    times, ops = defaultdict(float), defaultdict(lambda: defaultdict(float))
    for e in prof.key_averages():
        if any(e.key.startswith(s) for s in _SKIP):
            continue
        us = e.self_device_time_total if use_cuda else e.self_cpu_time_total
        g = group_of(e.key)
        times[g] += us
        ops[g][e.key] += us
    total = sum(times.values())
    groups = {g: {"ms_per_step": round(t / 1000 / args.steps, 2), "share": round(t / total, 4),
                  "top_ops": [k for k, _ in sorted(ops[g].items(), key=lambda kv: -kv[1])[:4]]}
              for g, t in sorted(times.items(), key=lambda kv: -kv[1])}
    result = {"model": {"channels": list(config.channels), "num_res_blocks": config.num_res_blocks,
                        "attention": config.attention, "parameters": sum(p.numel() for p in model.parameters())},
              "batch_size": config.batch_size, "device": str(device), "torch_threads": torch.get_num_threads(),
              "profiled_steps": args.steps, "clock": "device self time" if use_cuda else "CPU self time",
              "ms_per_step": round(wall_ms, 1), "ms_per_step_in_operators_profiled": round(total / 1000 / args.steps, 1),
              "groups": groups,
              "smoke": args.smoke, **provenance(), "command": "python benchmarks/profile_step.py"}
    return save_result(f"profile_step{device_tag(device)}.json", result, write=not args.smoke)


if __name__ == "__main__":
    main()
