"""Sampling speed (images/s): ``dnnl.models.ddpm.sample`` against diffusers' ``DDPMPipeline``.

    python benchmarks/sampling_speed.py [--batch-size 64] [--strided 50]
    python benchmarks/sampling_speed.py --smoke

Three rows, each timed for the full 1000-step chain (Algorithm 2) and a ``--strided``-step chain:
our sampler with our shipped network; our sampler with a ``UNet2DModel`` of the same parameter count;
and ``DDPMPipeline`` with that same ``UNet2DModel``. The last two share one network, so they compare
the samplers alone; the first against the last compares what a reader of either package runs.
Weights do not change the speed, so the UNet2DModel keeps its random initial weights.
Runs on ``dnnl.get_device()``; on a GPU each chain ends with ``torch.cuda.synchronize()`` before the
clock is read, all three run in fp32 (as ``sample`` and the pipeline do by default), and the result goes
to ``sampling_speed_cuda.json``. Writes benchmarks/results/sampling_speed.json on a CPU.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import device_tag, machine, provenance, save_result, synchronize  # noqa: E402  (benchmarks/_machine.py)
from _models import DiffusersEps, match_diffusers, n_params  # noqa: E402
import dnnl  # noqa: E402
from dnnl.models.ddpm import load_pretrained, sample  # noqa: E402
from dnnl.models.ddpm.pretrained import pretrained_schedule  # noqa: E402



def timed(fn, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--strided", type=int, default=50, help="steps of the strided chain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the script runs, measures nothing")
    args = parser.parse_args(argv)
    full_steps, batch = 1000, args.batch_size
    if args.smoke:
        full_steps, batch, args.strided = 4, 2, 2
    print(machine(), flush=True)
    from diffusers import DDPMPipeline, DDPMScheduler

    device = dnnl.get_device()
    ours = load_pretrained(device=device)
    schedule = pretrained_schedule()
    dnnl.set_seed(args.seed)
    theirs, widths = match_diffusers(ours)
    theirs.eval().to(device)
    wrapped = DiffusersEps(theirs).eval()
    scheduler = DDPMScheduler(num_train_timesteps=schedule.T, beta_schedule="linear", clip_sample=True)
    pipe = DDPMPipeline(unet=theirs, scheduler=scheduler).to(device)
    pipe.set_progress_bar_config(disable=True)

    def ours_run(model, steps):
        gen = torch.Generator(device).manual_seed(args.seed)  # noise drawn where the model runs
        return lambda: sample(model, schedule, (batch, 1, 28, 28), steps=None if steps == schedule.T else steps,
                              generator=gen, progress=False)

    def pipe_run(steps):
        gen = torch.Generator(device).manual_seed(args.seed)  # noise drawn where the model runs
        return lambda: pipe(batch_size=batch, num_inference_steps=steps, generator=gen, output_type="pt")

    rows = {}
    for steps in (args.strided, full_steps):
        runs = {"dnnl sample + dnnl UNet (shipped)": ours_run(ours, steps),
                "dnnl sample + diffusers UNet2DModel": ours_run(wrapped, steps),
                "diffusers DDPMPipeline + UNet2DModel": pipe_run(steps)}
        for name, fn in runs.items():
            if steps == args.strided:
                fn()  # warm-up
            seconds = timed(fn, device)
            rows.setdefault(name, {})[f"{steps}_steps"] = {"seconds": round(seconds, 2),
                                                           "images_per_s": round(batch / seconds, 3)}
            print(f"{steps:5d} steps, {name}: {batch / seconds:.2f} img/s", flush=True)
    key = f"{full_steps}_steps"
    ratio = {f"{s}_steps": round(rows["dnnl sample + dnnl UNet (shipped)"][f"{s}_steps"]["images_per_s"]
                                 / rows["diffusers DDPMPipeline + UNet2DModel"][f"{s}_steps"]["images_per_s"], 3)
             for s in (args.strided, full_steps)}
    same_model = {f"{s}_steps": round(rows["dnnl sample + diffusers UNet2DModel"][f"{s}_steps"]["images_per_s"]
                                      / rows["diffusers DDPMPipeline + UNet2DModel"][f"{s}_steps"]["images_per_s"], 3)
                  for s in (args.strided, full_steps)}
    import diffusers

    result = {
        "rows": rows,
        "ratio_dnnl_over_pipeline": ratio,
        "ratio_same_model_sampler_only": same_model,
        "parameters": {"dnnl UNet": n_params(ours), "diffusers UNet2DModel": n_params(theirs),
                       "UNet2DModel block_out_channels": list(widths)},
        "batch_size": batch,
        "strided": f"{args.strided} steps, 'leading' spacing as DDPMScheduler.set_timesteps",
        "headline": key,
        "smoke": args.smoke,
        "device": str(device),
        **provenance(), "diffusers_version": diffusers.__version__,
        "command": "python benchmarks/sampling_speed.py",
    }
    return save_result(f"sampling_speed{device_tag(device)}.json", result, write=not args.smoke)


if __name__ == "__main__":
    main()
