"""Sample quality at an equal training budget: dnnl's U-Net against diffusers' UNet2DModel on CPU.

    python benchmarks/quality_budget.py                # ours: the quick preset; diffusers: the same wall time
    python benchmarks/quality_budget.py --minutes 30   # both trained for 30 minutes
    python benchmarks/quality_budget.py --minutes 15 --set min_snr_gamma=5 --tutorial   # a changed recipe, and
                                                       # UNet2DModel with diffusers' tutorial recipe as a third row
    python benchmarks/quality_budget.py --smoke        # a tiny run that only proves the script works

Both networks train with the package's own loop (``dnnl.models.ddpm.train``) and the same recipe: the
quick preset's batch, AdamW, warm-up, cosine decay, gradient clipping, EMA, data order and noise. Only
the network differs: ours, or a ``UNet2DModel`` with a parameter count matched to ours (see
``benchmarks/_models.py``). By default ours runs the quick preset exactly and diffusers gets the wall
time ours took; with ``--minutes M`` each runs as many steps as fit in M minutes by its own measured speed
(the learning rate decays over those steps). Each then draws ``--n`` samples with the same
``--steps``-step strided DDPM chain and the same noise, scored by ``dnnl.metrics`` with the real-vs-real
calibration at the same n. Runs resume from ``runs/budget/<name>/`` if interrupted, with the steps that their
first probe fixed (kept in ``probe.json``).
Both train and sample on ``dnnl.get_device()``. Writes benchmarks/results/quality_budget.json and a sample
grid per model (``quality_budget_cuda.json`` and ``quality_budget_cuda_<name>.png`` on a GPU, where the
training loop uses bf16 autocast; give ``--minutes`` there, since the quick preset takes seconds).
``--save-as NAME`` writes NAME.json instead, so a recipe that the preset has not adopted (``--set``) is
measured beside the preset's own result rather than over it; ``--minutes 14 --save-as quality_budget_goal``
keeps the preset's recipe trained for the time its 15-minute goal allows, beside the preset's own steps.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import (RESULTS, device_tag, machine, provenance, save_result,  # noqa: E402  (benchmarks/_machine.py)
                      write_json)
from _models import DiffusersEps, match_diffusers, n_params  # noqa: E402
from _tutorial import train_tutorial, tutorial_schedule  # noqa: E402
import dnnl  # noqa: E402
from dnnl import metrics  # noqa: E402
from dnnl.data import mnist_tensors  # noqa: E402
from dnnl.models.ddpm import sample  # noqa: E402
from dnnl.plot import save_grid  # noqa: E402
from dnnl.models.ddpm.train import TrainConfig, load_checkpoint, train  # noqa: E402



def measured_rate(config: TrainConfig, build, steps: int, warmup: int = 5) -> float:
    """Images/s of ``steps`` training steps of a fresh network after ``warmup`` steps (a throw-away run)."""
    probe = dict(config.to_dict(), decay_steps=None,
                 out_dir=str(Path(config.out_dir).with_name(Path(config.out_dir).name + "-probe")))
    shutil.rmtree(probe["out_dir"], ignore_errors=True)
    train(TrainConfig(**dict(probe, steps=warmup, checkpoint_every=warmup)), progress=False, model=build())
    stretch = TrainConfig(**dict(probe, steps=warmup + steps, checkpoint_every=warmup + steps))
    return train(stretch, resume=True, progress=False, model=build()).images_per_sec


def kept_rate(config: TrainConfig, build, steps: int) -> float:
    """The run's probe images/s, measured once and kept in its folder (``probe.json``), so that a resumed run
    keeps the steps it started with instead of a new probe's."""
    path = Path(config.out_dir) / "probe.json"
    if path.exists():
        return json.loads(path.read_text())["images_per_sec"]
    rate = measured_rate(config, build, steps)
    write_json(path, {"images_per_sec": rate, "probe_steps": steps})
    return rate


def train_one(name: str, config: TrainConfig, build) -> tuple[torch.nn.Module, dict]:
    result = train(config, resume=True, progress=True, model=build())
    state = load_checkpoint(result.checkpoint)
    record = {"steps": result.steps, "batch_size": config.batch_size, "wall_time_s": round(state["wall_time"], 3),
              "images_per_sec": round(result.steps * config.batch_size / state["wall_time"], 1),
              "final_loss": round(sum(result.losses[-100:]) / len(result.losses[-100:]), 5),
              "run_dir": str(Path(config.out_dir).relative_to(REPO)) if Path(config.out_dir).is_relative_to(REPO)
              else config.out_dir}
    print(f"{name}: {record}", flush=True)
    return result.ema_model, record


def _override(text: str) -> tuple[str, object]:
    """``--set KEY=VALUE``: VALUE read as JSON (5, 0.004, null, "cosine") or else as a plain string."""
    key, sep, value = text.partition("=")
    if not sep or key not in TrainConfig.__dataclass_fields__:
        raise argparse.ArgumentTypeError(f"--set takes KEY=VALUE with KEY a TrainConfig field (got {text!r})")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=None,
                        help="train each model this long (default: ours = quick preset, diffusers = its time)")
    parser.add_argument("--set", dest="changes", type=_override, nargs="+", default=[], metavar="KEY=VALUE",
                        help="change the recipe of both models, for example min_snr_gamma=5 batch_size=64")
    parser.add_argument("--tutorial", action="store_true",
                        help="also train UNet2DModel with diffusers' tutorial recipe for the same time")
    parser.add_argument("--save-as", default="quality_budget", metavar="NAME",
                        help="results name: benchmarks/results/NAME.json and its sample grids (for example "
                             "quality_budget_candidate for a recipe the preset has not adopted)")
    parser.add_argument("--n", type=int, default=1000, help="samples per model")
    parser.add_argument("--steps", type=int, default=100, help="strided sampling steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None,
                        help="run folders (default: runs/budget, or runs/budget/NAME with --save-as NAME)")
    parser.add_argument("--root", default=None, help="MNIST folder (default: $DNNL_DATA, then the cache)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the script runs, measures nothing")
    return parser


def _train_all(args, base: TrainConfig, device) -> tuple[dict, dict, tuple]:
    """Train ours, the matched UNet2DModel with our loop and, with --tutorial, with diffusers' recipe."""
    ours_probe = base.build_model()
    theirs_probe, widths = match_diffusers(ours_probe)
    builders = {
        "dnnl": lambda: (dnnl.set_seed(args.seed), base.build_model())[1],
        "diffusers": lambda: (dnnl.set_seed(args.seed), DiffusersEps(match_diffusers(ours_probe)[0]))[1],
    }
    probe_steps = 3 if args.smoke else (30 if device.type == "cpu" else 300)  # a GPU step takes milliseconds
    runs, models = {}, {}
    budget_s = None if args.minutes is None else args.minutes * 60
    for name in ("dnnl", "diffusers"):
        if budget_s is None and name == "dnnl":
            config = TrainConfig(**{**base.to_dict(), "out_dir": str(Path(args.out) / name)})
        else:
            rate = kept_rate(TrainConfig(**{**base.to_dict(), "out_dir": str(Path(args.out) / name)}),
                             builders[name], probe_steps)
            seconds = budget_s if budget_s is not None else runs["dnnl"]["wall_time_s"]
            steps = max(1, int(seconds * rate / base.batch_size))
            config = TrainConfig(**{**base.to_dict(), "steps": steps, "decay_steps": steps,
                                    "out_dir": str(Path(args.out) / name)})
            print(f"{name}: {rate:.0f} img/s in a {probe_steps}-step probe -> {steps} steps for {seconds:.0f} s",
                  flush=True)
        models[name], runs[name] = train_one(name, config, builders[name])
        if name == "diffusers" or budget_s is not None:
            runs[name].update(budget_s=round(seconds, 1), probe_images_per_sec=round(rate, 1),
                              steps_note="steps = budget × probe images/s ÷ batch, fixed before training")
    if args.tutorial:
        seconds = budget_s if budget_s is not None else runs["dnnl"]["wall_time_s"]
        images = mnist_tensors("train", root=args.root)[0][:base.subset]
        dnnl.set_seed(args.seed)
        unet, runs["diffusers_tutorial"] = train_tutorial(match_diffusers(ours_probe)[0], images, seconds,
                                                          seed=args.seed, probe_steps=probe_steps)
        models["diffusers_tutorial"] = DiffusersEps(unet)
        print(f"diffusers_tutorial: {runs['diffusers_tutorial']}", flush=True)
    changed = "".join(f", {k} {v}" for k, v in args.changes)
    plain = "" if ours_probe.attention or "attention" in dict(args.changes) else ", no attention"
    runs["dnnl"]["model"] = f"dnnl UNet, quick preset{changed}, channels {tuple(ours_probe.channels)}{plain}"
    runs["dnnl"]["parameters"] = n_params(ours_probe)
    for name in runs.keys() - {"dnnl"}:
        how = ("diffusers' tutorial recipe" if name == "diffusers_tutorial"
               else "attention in the mid block" if ours_probe.attention else "no attention, as ours")
        runs[name]["model"] = f"diffusers UNet2DModel, block_out_channels {widths}, {how}"
        runs[name]["parameters"] = n_params(theirs_probe)
    return runs, models, widths


def score_samples(model, schedule, noise: torch.Tensor, *, steps: int, seed: int, reference: torch.Tensor,
                  floor_fd: float, method: str = "ddpm", progress: bool = True,
                  variance_type: str = "fixed_small") -> tuple[torch.Tensor, dict]:
    """Sample from ``noise`` with a ``steps``-step chain and score it: (images, {sampling_s, fd, confidence, ...}).

    ``floor_fd`` is the real-vs-real FD at the same n, which ``fd_over_real_vs_real`` divides by.
    """
    start = time.perf_counter()
    images = sample(model, schedule, noise.shape, steps=steps, method=method, noise=noise, batch_size=125,
                    generator=torch.Generator().manual_seed(seed), progress=progress,
                    variance_type=variance_type).images
    seconds = round(time.perf_counter() - start, 1)
    q = metrics.sample_quality(images, reference=reference)
    return images, {"sampling_s": seconds, "fd": round(q["fd"], 3), "confidence": round(q["confidence"], 4),
                    "fd_over_real_vs_real": round(q["fd"] / floor_fd, 3)}


def _score(args, runs: dict, models: dict, base: TrainConfig, tag: str) -> dict:
    """Every model sampled from the same starting noise, each with the schedule it trained on, and scored against
    the real-vs-real floor at that n."""
    reference = metrics.reference_features("test", args.root)  # features once, not per network
    calib = metrics.real_vs_real(args.n, root=args.root, seed=args.seed)
    noise = torch.randn((args.n, 1, 28, 28), generator=torch.Generator().manual_seed(args.seed))
    for name, model in models.items():
        # our loop trains both networks on the recipe's schedule; diffusers' tutorial on DDPMScheduler's linear one
        kind, schedule = (("linear", tutorial_schedule()) if name == "diffusers_tutorial" else
                          (base.schedule, base.build_schedule()))
        images, scores = score_samples(model, schedule, noise, steps=args.steps, seed=args.seed, reference=reference,
                                       floor_fd=calib["fd"])
        runs[name].update(scores, schedule=kind)
        if not args.smoke:
            save_grid(images[:64], RESULTS / f"{args.save_as}{tag}_{name}.png", nrow=8)
    return calib


def main(argv=None) -> dict:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.save_as.replace("_", "").replace("-", "").isalnum():
        parser.error(f"--save-as takes a plain file name of letters, digits, '_' and '-' (got {args.save_as!r})")
    default_out = REPO / "runs" / "budget"
    args.out = args.out or str(default_out if args.save_as == "quality_budget" else default_out / args.save_as)
    print(machine(), flush=True)
    torch.manual_seed(args.seed)
    device = dnnl.get_device()
    tag = device_tag(device)
    changes = dict(args.changes)
    base = TrainConfig.quick(**{"seed": args.seed, "data_root": args.root, "log_every": 50, **changes})
    if args.smoke:
        base = TrainConfig.quick(**{"seed": args.seed, "data_root": args.root, "steps": 3, "batch_size": 8,
                                    "subset": 64, "warmup": 1, "log_every": 1, **changes})
        args.n, args.steps = min(args.n, 16), min(args.steps, 2)
    runs, models, widths = _train_all(args, base, device)
    calib = _score(args, runs, models, base, tag)
    ours = runs["dnnl"]
    result = {
        "budget": ("the wall time of the dnnl quick preset" if args.minutes is None else f"{args.minutes:g} minutes each"),
        "recipe": {k: v for k, v in base.to_dict().items() if k in ("batch_size", "lr", "warmup", "weight_decay",
                                                                    "grad_clip", "ema_decay", "seed", "T", "schedule",
                                                                    "min_snr_gamma")},
        "recipe_changes": changes,
        "recipe_note": "dnnl and diffusers trained by dnnl.models.ddpm.train with this recipe and a cosine decay over "
                       "their steps" + ("; diffusers_tutorial with diffusers' tutorial recipe" if args.tutorial else ""),
        "sampler": f"DDPM, {args.steps} strided steps of T={base.T}, x0 clipped, the same starting noise, seed {args.seed}",
        "n_samples": args.n,
        "real_vs_real": {"fd": round(calib["fd"], 3), "confidence": round(calib["confidence"], 4), "n": args.n},
        "runs": runs,
        "fd_ratio_dnnl_over_diffusers": round(ours["fd"] / runs["diffusers"]["fd"], 3),
        "target_fd_ratio": 0.6,
        "targets_dnnl": {"minutes": 15, "fd_over_real_vs_real": 2.0, "confidence": 0.85},
        "smoke": args.smoke,
        "device": str(device),
        **provenance(),
        "torch_threads": torch.get_num_threads(),
        "command": "python benchmarks/quality_budget.py" + ("" if args.minutes is None else f" --minutes {args.minutes:g}")
                   + ("" if not changes else " --set " + " ".join(f"{k}={json.dumps(v)}" for k, v in changes.items()))
                   + (" --tutorial" if args.tutorial else "")
                   + ("" if args.save_as == "quality_budget" else f" --save-as {args.save_as}"),
    }
    if args.tutorial:
        result["fd_ratio_dnnl_over_diffusers_tutorial"] = round(ours["fd"] / runs["diffusers_tutorial"]["fd"], 3)
    return save_result(f"{args.save_as}{tag}.json", result, write=not args.smoke)


if __name__ == "__main__":
    main()
