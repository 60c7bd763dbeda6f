"""Zero host–device syncs on CUDA: one ``train_step`` and one sampling step under
``torch.cuda.set_sync_debug_mode("error")``, then the images/s of training and of sampling.

    python benchmarks/gpu_sync_check.py              # on a machine with CUDA; prints JSON
    python benchmarks/gpu_sync_check.py --save       # also writes benchmarks/results/gpu_sync_check.json

The steps run the way the package runs them on a GPU: the shipped U-Net in channels_last with the fused
AdamW and bf16 autocast (fp16 with a GradScaler where bf16 is missing), the schedule and a generator on the
GPU. The arguments are checked once at the door (``sample()`` checks, then its loop calls private helpers),
so each step itself must make no sync: any sync inside one raises, and the script reports where.
For information it also counts the syncs of one whole ``sample()`` call, door included.
Without CUDA it says so and exits cleanly.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import provenance, save_result  # noqa: E402  (benchmarks/_machine.py)


def _no_sync(label: str, fn) -> dict:
    """Run ``fn`` with every host–device sync an error; report whether one happened and where."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fn()
        return {"syncs": 0}
    except RuntimeError as err:
        where = [f"{f.filename.split('/')[-1]}:{f.lineno} {f.name}" for f in traceback.extract_tb(err.__traceback__)]
        return {"syncs": "at least 1", "error": str(err).splitlines()[0][:300], "where": where[-4:]}
    finally:
        torch.cuda.set_sync_debug_mode(0)
        torch.cuda.synchronize()
        print(f"{label}: checked", flush=True)


def _count_syncs(fn) -> int:
    """How many host–device syncs ``fn`` makes (each one is a warning in "warn" mode)."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught)


def _rate(fn, n_images: int, repeats: int) -> float:
    fn()  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return n_images * repeats / (time.perf_counter() - start)


def _steps(args):
    """One training step and one DDPM/DDIM sampling step of the shipped U-Net on CUDA, ready to call."""
    from dnnl.models.ddpm import (NoiseSchedule, load_pretrained, pretrained_schedule, sample, timesteps_for,
                                  train_step)
    from dnnl.models.ddpm._env import precision  # what the training loop picks for a device

    sampler = importlib.import_module("dnnl.models.ddpm.sample")  # the module, for its private loop pieces
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    model = load_pretrained(device=device).to(memory_format=torch.channels_last)
    schedule = pretrained_schedule().to(device)
    gen = torch.Generator(device).manual_seed(0)
    x0 = (torch.rand(args.batch, 1, 28, 28, device=device, generator=gen) * 2 - 1).contiguous(
        memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    autocast_dtype, scaler = precision(device)

    def one_train_step():
        model.train()
        train_step(model, schedule, x0, optimizer, generator=gen, grad_clip=1.0, scaler=scaler,
                   autocast_dtype=autocast_dtype)

    timesteps = timesteps_for(schedule.T, args.steps)
    chain = NoiseSchedule.respaced(schedule, timesteps).to(device)
    first = int(timesteps[0])  # the chain's first step is its index steps - 1
    x = torch.randn(args.batch, 1, 28, 28, device=device, generator=gen)

    def one_sampling_step(ddim: bool):
        def run():
            model.eval()
            with torch.no_grad():
                eps = sampler._eps(model, x, first)
                sampler._reverse_step(chain, eps, x, args.steps - 1, ddim=ddim, clip=True, generator=gen)
        return run

    def whole_sample():
        model.eval()
        sample(model, schedule, (args.batch, 1, 28, 28), steps=args.steps, generator=gen, progress=False)

    precision = str(autocast_dtype).replace("torch.", "") if autocast_dtype else "float32"
    return one_train_step, one_sampling_step(False), one_sampling_step(True), whole_sample, precision


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256, help="images per training step and per sampling call")
    parser.add_argument("--steps", type=int, default=50, help="sampling steps for the images/s of sampling")
    parser.add_argument("--repeats", type=int, default=20, help="timed training steps")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/gpu_sync_check.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_sync_check: no CUDA device on this machine, so there is nothing to check; "
              "run it where torch.cuda.is_available() is True.")
        return 0
    train_one, ddpm_step, ddim_step, whole_sample, precision = _steps(args)
    for warm_up in (train_one, ddpm_step, ddim_step):  # lazy CUDA init, cuDNN autotuning, first allocations
        warm_up()
    result = {**provenance(), "precision": precision, "batch": args.batch,
              "train_step": _no_sync("train_step", train_one),
              "ddpm_sampling_step": _no_sync("DDPM sampling step", ddpm_step),
              "ddim_sampling_step": _no_sync("DDIM sampling step", ddim_step),
              "syncs_in_one_sample_call": _count_syncs(whole_sample),
              "train_images_per_s": round(_rate(train_one, args.batch, args.repeats), 1),
              f"sample_images_per_s_{args.steps}_steps": round(_rate(whole_sample, args.batch, 3), 1)}
    result["sync_free"] = all(result[k]["syncs"] == 0 for k in ("train_step", "ddpm_sampling_step",
                                                                "ddim_sampling_step"))
    save_result("gpu_sync_check.json", result, write=args.save)
    return 0 if result["sync_free"] else 1


if __name__ == "__main__":
    sys.exit(main())
