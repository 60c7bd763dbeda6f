"""Training throughput (images/s) of dnnl's U-Net against diffusers' UNet2DModel of about the same size.

    python benchmarks/throughput.py [--batch-size 64] [--steps 1] [--rounds 24]

Both models train on the same random 28×28 batches with the same step: random t, x_t from
``q_sample``, MSE to ε, backward, AdamW. After warm-up steps, the two models take turns for
``--rounds`` rounds of ``--steps`` timed steps each (the order flips every round), so a busy machine
slows both alike; the ratio is total images per second of one over the other.
Writes benchmarks/results/throughput.json and throughput.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import cpu_name  # noqa: E402  (benchmarks/_machine.py)
import dnnl  # noqa: E402
from dnnl.models.ddpm import NoiseSchedule, q_sample  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def ours_quick() -> tuple[torch.nn.Module, dict]:
    """The U-Net of the quick training preset."""
    from dnnl.models.ddpm.train import TrainConfig

    cfg = TrainConfig.quick()
    kwargs = {"channels": list(cfg.channels), "num_res_blocks": cfg.num_res_blocks, "attention": cfg.attention,
              "dropout": cfg.dropout}
    return cfg.build_model(), kwargs


def diffusers_unet(widths: tuple[int, ...], layers_per_block: int, groups: int, size: int):
    """diffusers' UNet2DModel with the same shape of network: plain res-blocks, attention only in the middle."""
    from diffusers import UNet2DModel

    levels = len(widths)
    return UNet2DModel(
        sample_size=size, in_channels=1, out_channels=1, block_out_channels=widths,
        layers_per_block=layers_per_block, down_block_types=("DownBlock2D",) * levels,
        up_block_types=("UpBlock2D",) * levels, norm_num_groups=groups, attention_head_dim=widths[-1] // 4,
    )


def match_diffusers(target: int, widths: tuple[int, ...], layers_per_block: int, groups: int, size: int):
    """The UNet2DModel closest in parameter count to ``target``. Its first width equals ours (both spend the
    same on the full-resolution level); the deeper widths are ours times one factor, rounded to multiples
    of ``groups`` (and of 4, the attention heads)."""
    step = groups * 4 // math.gcd(groups, 4)
    seen, best = set(), None
    for k in range(8, 65):
        factor = k / 32
        cand = (widths[0],) + tuple(max(step, round(w * factor / step) * step) for w in widths[1:])
        if cand in seen:
            continue
        seen.add(cand)
        with torch.device("meta"):
            gap = abs(n_params(diffusers_unet(cand, layers_per_block, groups, size)) - target)
        if best is None or gap < best[0]:
            best = (gap, cand)
    widths = best[1]
    return diffusers_unet(widths, layers_per_block, groups, size), widths


class Bench:
    """One model, its optimizer and a fixed stream of batches."""

    def __init__(self, name, model, call, batch_size, size, seed):
        self.name, self.model, self.call = name, model.train(), call
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        self.schedule = NoiseSchedule.linear(1000)
        self.gen = torch.Generator().manual_seed(seed)
        self.batch_size, self.size = batch_size, size
        self.rates, self.seconds = [], []

    def step(self):
        x0 = torch.rand(self.batch_size, 1, self.size, self.size, generator=self.gen) * 2 - 1
        t = torch.randint(0, 1000, (self.batch_size,), generator=self.gen)
        noise = torch.randn(x0.shape, generator=self.gen)
        loss = F.mse_loss(self.call(self.model, q_sample(self.schedule, x0, t, noise), t), noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def timed(self, steps):
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        self.seconds.append(time.perf_counter() - start)
        self.rates.append(steps * self.batch_size / self.seconds[-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1, help="timed steps per model per round")
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    dnnl.set_seed(args.seed)
    device = torch.device("cpu")
    ours, kwargs = ours_quick()
    widths = tuple(ours.channels)
    layers = getattr(ours, "num_res_blocks", kwargs.get("num_res_blocks", 1))
    groups = kwargs.get("groups", 8)
    theirs, their_widths = match_diffusers(n_params(ours), widths, layers, groups, args.size)

    benches = [
        Bench("dnnl UNet", ours, lambda m, x, t: m(x, t), args.batch_size, args.size, args.seed),
        Bench("diffusers UNet2DModel", theirs, lambda m, x, t: m(x, t).sample, args.batch_size, args.size, args.seed),
    ]
    for b in benches:
        for _ in range(args.warmup):
            b.step()
    for r in range(args.rounds):
        for b in (benches if r % 2 == 0 else benches[::-1]):
            b.timed(args.steps)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{b.name} {b.rates[-1]:.1f} img/s" for b in benches),
              flush=True)

    ours_rate, theirs_rate = (statistics.median(b.rates) for b in benches)
    # Rounds alternate the two models step by step, so both see the same load on a shared machine; the
    # headline is total images over total time for each. Per-round ratios and best rounds are kept too.
    round_ratios = [a / b for a, b in zip(benches[0].rates, benches[1].rates)]
    totals = [args.steps * args.rounds * args.batch_size / sum(b.seconds) for b in benches]
    ratio = totals[0] / totals[1]
    import diffusers

    result = {
        "ours": {"model": "dnnl.models.ddpm.UNet (quick preset)", "kwargs": kwargs, "channels": list(widths),
                 "parameters": n_params(ours), "images_per_s": round(ours_rate, 2),
                 "rounds_images_per_s": [round(v, 2) for v in benches[0].rates]},
        "diffusers": {"model": "diffusers.UNet2DModel", "block_out_channels": list(their_widths),
                      "layers_per_block": layers, "norm_num_groups": groups,
                      "down/up blocks": "DownBlock2D/UpBlock2D, attention in the mid block only",
                      "parameters": n_params(theirs), "images_per_s": round(theirs_rate, 2),
                      "rounds_images_per_s": [round(v, 2) for v in benches[1].rates]},
        "ratio": round(ratio, 3),
        "ratio_definition": "(ours total images / total seconds) / (diffusers total images / total seconds), "
                            "rounds alternating between the models",
        "total_images_per_s": {"ours": round(totals[0], 2), "diffusers": round(totals[1], 2)},
        "median_round_ratio": round(statistics.median(round_ratios), 3),
        "ratio_of_best_rounds": round(max(benches[0].rates) / max(benches[1].rates), 3),
        "ratio_of_median_rounds": round(ours_rate / theirs_rate, 3),
        "target_ratio": 1.5,
        "batch_size": args.batch_size, "image_size": f"{args.size}x{args.size}, 1 channel",
        "step": "q_sample + forward + MSE + backward + AdamW, float32",
        "timing": f"{args.warmup} warm-up steps each, then {args.rounds} alternating rounds of {args.steps} step(s)",
        "device": str(device), "torch_threads": torch.get_num_threads(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "machine": f"{cpu_name()}, {os.cpu_count()} cores visible",
        "torch": torch.__version__, "diffusers_version": diffusers.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Training throughput on CPU",
        "",
        f"Batch {args.batch_size}, {args.size}×{args.size} single-channel images, float32, "
        f"{torch.get_num_threads()} torch threads; one step = q_sample, forward, MSE, backward, AdamW.",
        "",
        "| model | parameters | images/s (total) | images/s (best round) |",
        "|---|---:|---:|---:|",
        f"| dnnl `UNet` (quick preset, channels {widths}) | {n_params(ours):,} | {totals[0]:.1f} | "
        f"{max(benches[0].rates):.1f} |",
        f"| diffusers `UNet2DModel` (block_out_channels {their_widths}) | {n_params(theirs):,} | {totals[1]:.1f} | "
        f"{max(benches[1].rates):.1f} |",
        "",
        f"Ratio: **{ratio:.2f}×** (total images/s, {args.rounds} alternating rounds of {args.steps} step(s); "
        f"median per-round ratio {statistics.median(round_ratios):.2f}, best rounds "
        f"{max(benches[0].rates) / max(benches[1].rates):.2f}; target ≥ 1.5×). "
        f"Machine: {result['machine']}, shared with other jobs (1-min load average at the end "
        f"{result['load_average_1min_at_end']}); "
        f"torch {torch.__version__}, diffusers {diffusers.__version__}; {result['date']}.",
        "",
        "Rerun: `python benchmarks/throughput.py`.",
        "",
    ]
    (RESULTS / "throughput.md").write_text("\n".join(md))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
