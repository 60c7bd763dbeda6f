"""Training throughput (images/s) of dnnl's U-Nets against diffusers' UNet2DModel of the same size.

    python benchmarks/throughput.py                  # quick and full U-Nets, plus the ablation of the quick one
    python benchmarks/throughput.py --compile        # also time torch.compile (slow to compile on a CPU)
    python benchmarks/throughput.py --smoke          # tiny sizes: proves the script runs, measures nothing

On a GPU (``dnnl.get_device()`` finds one, or ``DNNL_DEVICE=cuda``) the same script times both models
the way the training loop runs there: bf16 autocast and TF32, the batches drawn on the GPU, the clock
read after ``torch.cuda.synchronize()``; it also records the peak GPU memory of each model and writes
``throughput_cuda.json`` (the CPU run writes ``throughput.json``).

One training step is ``dnnl.models.ddpm.train_step``, the step the training loop runs: random t and ε,
x_t, MSE to ε, backward, gradient clipping, AdamW (fused, the same optimizer for both models), float32. Both
models see 28×28 MNIST-sized batches (UNet2DModel takes 28×28 as it is: its three levels run 28 -> 14 -> 7,
like ours). ``UNet2DModel`` is configured to ours' parameter count (``benchmarks/_models.py``) and runs as
diffusers ships it; ours runs as our training loop runs it (channels_last). After warm-up, the two take turns
for ``--windows`` timed windows of ``--steps`` steps (the order flips every window), so a busy machine slows
both alike; rates are medians over the windows.

Also measured in the same run: model FLOPs per image (forward + backward, ``torch.utils.flop_counter``),
the machine's fp32 matmul peak (a large ``torch.mm``), the achieved FLOP/s as a share of that peak, the
bf16 matmul speed (bf16 autocast only pays where it beats fp32; on such a CPU the training step under bf16
autocast is timed too), and an ablation that adds our speed-ups one at a time. Writes
benchmarks/results/throughput.json.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import device_tag, machine, provenance, save_result, synchronize  # noqa: E402  (benchmarks/_machine.py)
from _models import DiffusersEps, match_diffusers, n_params  # noqa: E402
import dnnl  # noqa: E402
from dnnl.models.ddpm import NoiseSchedule, train_step  # noqa: E402
from dnnl.models.ddpm import unet as unet_module  # noqa: E402
from dnnl.models.ddpm.train import TrainConfig  # noqa: E402

GRAD_CLIP = TrainConfig.quick().grad_clip  # what the training loop clips to


class UpsampleThenConv(unet_module.Upsample):
    """The textbook order of an upsampling block (nearest, then a 3x3 conv), for the ablation only."""

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def old_upsampling(model: torch.nn.Module) -> torch.nn.Module:
    for m in model.modules():
        if type(m) is unet_module.Upsample:
            m.__class__ = UpsampleThenConv
    return model


class Bench:
    """One model, its optimizer and a fixed stream of batches."""

    def __init__(self, name, model, batch_size, size, seed, *, channels_last=False, fused=True, compile=False,
                 bf16=False, device=torch.device("cpu")):
        self.name, self.batch_size, self.size, self.channels_last = name, batch_size, size, channels_last
        self.device, self.cuda = device, device.type == "cuda"
        self.autocast = torch.bfloat16 if self.cuda or bf16 else None
        model = model.train().to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.net = torch.compile(model) if compile else model
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused or None)
        self.schedule = NoiseSchedule.linear(1000).to(device) if self.cuda else NoiseSchedule.linear(1000)
        self.gen = torch.Generator(device).manual_seed(seed)
        self.rates: list[float] = []
        self.peak_memory_mb: float | None = None

    def batch(self):
        x0 = torch.rand(self.batch_size, 1, self.size, self.size, generator=self.gen, device=self.device) * 2 - 1
        return x0.contiguous(memory_format=torch.channels_last) if self.channels_last else x0

    def step(self):
        # the training loop's step and precision: bf16 autocast on CUDA, plain fp32 elsewhere (unless bf16)
        train_step(self.net, self.schedule, self.batch(), self.opt, generator=self.gen, grad_clip=GRAD_CLIP,
                   autocast_dtype=self.autocast)

    def timed(self, steps):
        synchronize(self.device)
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        synchronize(self.device)
        self.rates.append(steps * self.batch_size / (time.perf_counter() - start))
        if self.cuda:
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
            self.peak_memory_mb = max(self.peak_memory_mb or 0.0, round(peak, 1))

    def flops_per_image(self) -> float:
        """Forward + backward FLOPs of one step, per image (the optimizer's few FLOPs are not counted)."""
        with FlopCounterMode(display=False) as counter:
            self.step()
        return counter.get_total_flops() / self.batch_size

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


def race(benches: list[Bench], warmup: int, windows: int, steps: int, label: str) -> None:
    """Warm every bench up, then time them in alternating windows."""
    for b in benches:
        for _ in range(warmup):
            b.step()
    for w in range(windows):
        for b in (benches if w % 2 == 0 else benches[::-1]):
            b.timed(steps)
        print(f"{label} window {w + 1}/{windows}: " + ", ".join(f"{b.name} {b.rates[-1]:.1f} img/s" for b in benches),
              flush=True)


def matmul_gflops(dtype: torch.dtype, n: int, repeats: int = 5, device=torch.device("cpu")) -> float:
    """Median GFLOP/s of an n×n @ n×n product in ``dtype`` (random operands, clock read after a sync)."""
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    torch.mm(a, b)
    synchronize(device)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def _bf16_note(cuda: bool, autocast: Bench | None, fp32: Bench) -> str:
    """What bf16 autocast does here: used on CUDA; on a CPU, timed against the fp32 step where bf16 matmul wins."""
    if cuda:
        return "used for both models, as the training loop does on CUDA"
    if autocast is None:
        return "not used: bf16 matmul is slower than fp32 on this CPU"
    ratio = _bf16_ratio(autocast, fp32)
    return (f"bf16 matmul is faster than fp32 here, and a training step under bf16 autocast ran at {ratio:.2f}× "
            f"the fp32 step, {autocast.rate:.1f} against {fp32.rate:.1f} images/s"
            + (", so the CPU path stays fp32" if ratio < 1 else "; the training loop keeps fp32 on the CPU"))


def _bf16_ratio(autocast: Bench | None, fp32: Bench) -> float | None:
    """The bf16-autocast step's images/s over the fp32 step's, as recorded (None where it was not timed)."""
    return round(autocast.rate / fp32.rate, 3) if autocast else None


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=None, help="default: the quick preset's batch")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed window (default: 2 on a CPU, 20 on a GPU)")
    parser.add_argument("--windows", type=int, default=12, help="timed windows per model (quick size)")
    parser.add_argument("--full-windows", type=int, default=3, help="timed windows per model (full size)")
    parser.add_argument("--full-batch-size", type=int, default=None,
                        help="batch of the full-size pair (default: 32 on a CPU, where the full U-Net takes seconds "
                             "per step; the quick batch on a GPU)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: 3 on a CPU, 10 on a GPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile", action="store_true", help="add torch.compile to the ablation")
    parser.add_argument("--skip-full", action="store_true", help="only the quick-size models")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the script runs, measures nothing")
    args = parser.parse_args(argv)
    device = dnnl.get_device()
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    quick_cfg = TrainConfig.quick()
    batch = args.batch_size or quick_cfg.batch_size
    args.steps = args.steps or (20 if cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (10 if cuda else 3)
    args.full_batch_size = args.full_batch_size or (batch if cuda else 32)
    full_steps = args.steps if cuda else 1
    mm_n = 8192 if cuda else 2048
    if args.smoke:
        batch, args.steps, args.windows, args.full_windows, args.warmup, mm_n = 4, 1, 2, 1, 1, 256
        args.full_batch_size, full_steps = 2, 1
    size = 28
    print(machine(), flush=True)

    fp32 = matmul_gflops(torch.float32, mm_n, device=device)
    bf16 = matmul_gflops(torch.bfloat16, mm_n if cuda else mm_n // 2, repeats=5 if cuda else 2, device=device)
    peak = bf16 if cuda else fp32  # the peak of the precision the training loop uses on this device
    print(f"matmul: fp32{' (TF32)' if cuda else ''} {fp32:.1f} GFLOP/s, bf16 {bf16:.1f} GFLOP/s", flush=True)

    def ours(cfg):
        dnnl.set_seed(args.seed)
        return cfg.build_model()

    def theirs(cfg):
        dnnl.set_seed(args.seed)
        model, widths = match_diffusers(cfg.build_model(), size, dropout=cfg.dropout)
        return DiffusersEps(model), widths

    sizes = {"quick": quick_cfg} if args.skip_full else {"quick": quick_cfg, "full": TrainConfig.full()}
    comparisons = {}
    for label, cfg in sizes.items():
        windows = args.windows if label == "quick" else args.full_windows
        b = batch if label == "quick" else args.full_batch_size
        steps = args.steps if label == "quick" else full_steps
        model_b, widths = theirs(cfg)
        pair = [Bench("dnnl UNet", ours(cfg), b, size, args.seed, channels_last=True, device=device),
                Bench("diffusers UNet2DModel", model_b, b, size, args.seed, device=device)]
        race(pair, args.warmup if label == "quick" or cuda else 1, windows, steps, label)
        flops = pair[0].flops_per_image()
        comparisons[label] = {
            "dnnl": {"channels": list(cfg.channels), "num_res_blocks": cfg.num_res_blocks, "attention": cfg.attention,
                     "parameters": n_params(pair[0].model), "images_per_s": round(pair[0].rate, 2),
                     "window_rates": [round(r, 1) for r in pair[0].rates], "gflops_per_image": round(flops / 1e9, 4),
                     "achieved_gflops": round(flops * pair[0].rate / 1e9, 2),
                     f"utilisation_of_{'bf16' if cuda else 'fp32'}_peak": round(flops * pair[0].rate / 1e9 / peak, 3),
                     "peak_memory_mb": pair[0].peak_memory_mb},
            "diffusers": {"block_out_channels": list(widths), "layers_per_block": cfg.num_res_blocks,
                          "mid_block_attention": cfg.attention,  # match_diffusers follows ours
                          "parameters": n_params(pair[1].model), "images_per_s": round(pair[1].rate, 2),
                          "window_rates": [round(r, 1) for r in pair[1].rates],
                          "gflops_per_image": round(pair[1].flops_per_image() / 1e9, 4),
                          "peak_memory_mb": pair[1].peak_memory_mb},
            "ratio": round(pair[0].rate / pair[1].rate, 3),
            "batch_size": b, "dropout": cfg.dropout,
            "window_ratios": [round(a / b, 3) for a, b in zip(pair[0].rates, pair[1].rates)],
        }
        print(f"{label}: ratio {comparisons[label]['ratio']:.2f}", flush=True)

    # Ablation of the quick size: each row adds one change to the row above.
    steps_added = [
        ("textbook order (upsample, then conv); default AdamW; contiguous", dict(old=True, fused=False, cl=False)),
        ("+ conv before upsampling (a quarter of the FLOPs there)", dict(old=False, fused=False, cl=False)),
        ("+ fused AdamW", dict(old=False, fused=True, cl=False)),
        ("+ channels_last (the training loop's setting)", dict(old=False, fused=True, cl=True)),
    ]
    if args.compile:
        steps_added.append(("+ torch.compile", dict(old=False, fused=True, cl=True, compile=True)))
    ablation = []
    for i, (what, opts) in enumerate(steps_added):
        model = ours(quick_cfg)
        if opts["old"]:
            model = old_upsampling(model)
        ablation.append(Bench(what, model, batch, size, args.seed, channels_last=opts["cl"], fused=opts["fused"],
                              compile=opts.get("compile", False), device=device))
    model_b, _ = theirs(quick_cfg)
    their_cl = Bench("diffusers UNet2DModel + channels_last", model_b, batch, size, args.seed, channels_last=True,
                     device=device)
    # where the CPU's bf16 matmul beats fp32, time the training step under bf16 autocast too (vs channels_last)
    autocast = (Bench("dnnl UNet + bf16 autocast", ours(quick_cfg), batch, size, args.seed, channels_last=True,
                      bf16=True, device=device) if not cuda and bf16 > fp32 else None)
    compile_s = None
    if args.compile:
        start = time.perf_counter()
        ablation[-1].step()
        compile_s = time.perf_counter() - start
    race(ablation + [their_cl] + ([autocast] if autocast else []), args.warmup, args.windows, args.steps, "ablation")
    flops_old = ablation[0].flops_per_image()
    base = ablation[0].rate
    rows = [{"change": b.name, "images_per_s": round(b.rate, 2), "speed-up_vs_first_row": round(b.rate / base, 3)}
            for b in ablation]
    rows[0]["gflops_per_image"] = round(flops_old / 1e9, 4)
    loop_step = ablation[3]  # "+ channels_last": the training loop's own fp32 step
    if compile_s is not None:
        rows[-1]["first_step_s (compilation)"] = round(compile_s, 1)

    import diffusers

    result = {
        "comparisons": comparisons,
        "ratio": comparisons["quick"]["ratio"],
        "target_ratio": 1.5,
        "utilisation": comparisons["quick"]["dnnl"][f"utilisation_of_{'bf16' if cuda else 'fp32'}_peak"],
        "utilisation_of": f"the {'bf16' if cuda else 'fp32'} matmul peak measured in this run",
        "target_utilisation": 0.6,
        "matmul_peak_gflops": {"fp32": round(fp32, 1), "bf16": round(bf16, 1), "n": mm_n,
                               **({"fp32_note": "TF32 tensor cores (allow_tf32, as the training loop)"} if cuda else {})},
        "bf16_autocast": _bf16_note(cuda, autocast, loop_step),
        "bf16_autocast_vs_fp32": _bf16_ratio(autocast, loop_step),
        "ablation_quick": rows,
        "diffusers_with_channels_last": round(their_cl.rate, 2),
        "batch_size": batch, "image_size": f"{size}x{size}, 1 channel (no padding: UNet2DModel takes 28x28)",
        "step": "dnnl.models.ddpm.train_step: q_sample + forward + MSE + backward + clip + AdamW (fused for both), "
                + ("bf16 autocast + TF32 on the GPU" if cuda else "float32"),
        "device": str(device),
        "timing": f"{args.warmup} warm-up steps each, then windows of {args.steps} step(s) alternating between "
                  f"the models; images/s = median over windows",
        "smoke": args.smoke,
        **provenance(), "diffusers_version": diffusers.__version__,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "command": "python benchmarks/throughput.py" + (" --compile" if args.compile else ""),
    }
    return save_result(f"throughput{device_tag(device)}.json", result, write=not args.smoke)


if __name__ == "__main__":
    main()
