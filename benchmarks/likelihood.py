"""Bits/dim of the shipped checkpoint on MNIST test images: the full T-step variational bound.

    python benchmarks/likelihood.py [--n 256] [--batch-size 256] [--calibration 128]
    python benchmarks/likelihood.py --model ddpm_mnist_hybrid     # the learned variances of L_hybrid
    python benchmarks/likelihood.py --smoke

Every term of L_T + Σ_t L_{t-1} + L_0 (``dnnl.models.ddpm.vlb_terms``, one fresh x_t per term and image)
for the first ``--n`` test images, with the standard error of the mean over images. The terms are the
chapter 3 ones: the decoder L_0 is the discretized Gaussian with the exact normal CDF. The bound is an
upper bound on the negative log-likelihood, so lower is better.

Then the same bound, on the same draws, with the best fixed variances of Eq. @eq-optimal-variance
(``optimal_variances``, estimated on the first ``--calibration`` training images), and a scan of the decoder
width σ_1 on those training images, to show how much each of the two could still buy.
Writes benchmarks/results/likelihood.json.

``--model ddpm_mnist_hybrid`` scores the checkpoint fine-tuned with L_hybrid (``benchmarks/train_hybrid.py``)
with its own per-pixel variances, beside the checkpoint it started from on the same draws, and writes
benchmarks/results/likelihood_hybrid.json.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import machine, provenance, save_result  # noqa: E402  (benchmarks/_machine.py)
import dnnl  # noqa: E402
from dnnl.data import mnist_tensors  # noqa: E402
from dnnl.models.ddpm import (discretized_gaussian_log_likelihood, load_pretrained, optimal_variances,  # noqa: E402
                              p_mean_variance, q_sample, vlb_terms)
from dnnl.models.ddpm.pretrained import pretrained_info, pretrained_schedule  # noqa: E402

DECODER_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def standard_error(x: torch.Tensor) -> float:
    """Standard error of the mean of per-image values (NaN for a single image)."""
    return x.std().item() / math.sqrt(len(x)) if len(x) > 1 else float("nan")


def bound(schedule, model, images, batch_size, seed, variances=None, learned=False):
    """Per-image total, prior, decoder and summed-KL terms in bits/dim; the draws depend only on ``seed``."""
    gen = torch.Generator(device=images.device).manual_seed(seed)
    parts = {"total": [], "prior": [], "decoder": [], "kl": []}
    for lo in range(0, len(images), batch_size):
        terms = vlb_terms(schedule, model, images[lo: lo + batch_size], generator=gen, variances=variances,
                          learned_variance=learned, progress=True)
        parts["total"].append(terms["total_bpd"].cpu())
        parts["prior"].append(terms["prior_bpd"].cpu())
        parts["decoder"].append(terms["terms_bpd"][:, 0].cpu())
        parts["kl"].append(terms["terms_bpd"][:, 1:].sum(dim=1).cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


def decoder_scan(schedule, model, images, seed) -> dict[str, float]:
    """L_0 in bits/dim on ``images`` for decoder widths σ = k·σ_1 (σ_1 the fixed width of Eq. @eq-decoder)."""
    gen = torch.Generator(device=images.device).manual_seed(seed)
    t = torch.zeros(len(images), dtype=torch.long, device=images.device)
    with torch.no_grad():
        xt = q_sample(schedule, images, t, generator=gen)
        mean, _, log_variance = p_mean_variance(schedule, model(xt, t), xt, t)
    out = {}
    for k in DECODER_SCALES:
        nll = -discretized_gaussian_log_likelihood(images, mean, 0.5 * log_variance + math.log(k))
        out[f"{k:g} x sigma_1"] = round(nll.mean().item() / math.log(2), 4)
    return out


def _terms(parts: dict) -> dict:
    return {"L_T (prior)": round(parts["prior"].mean().item(), 6),
            "sum of KL terms L_1..L_{T-1}": round(parts["kl"].mean().item(), 4),
            "L_0 (decoder)": round(parts["decoder"].mean().item(), 4)}


def learned_against_base(schedule, base_name, images, args, device, learned_parts) -> dict:
    """The ε-only checkpoint a learned-variance one started from, on the same draws, and the paired gain."""
    base = bound(schedule, load_pretrained(base_name, device=device), images, args.batch_size, args.seed)
    gain = base["total"] - learned_parts["total"]
    return {"checkpoint": base_name, "bits_per_dim": round(base["total"].mean().item(), 4),
            "standard_error": round(standard_error(base["total"]), 4), "terms_bits_per_dim": _terms(base),
            "gain": round(gain.mean().item(), 4), "gain_standard_error": round(standard_error(gain), 4),
            "decoder_gain": round((base["decoder"] - learned_parts["decoder"]).mean().item(), 4),
            "kl_gain": round((base["kl"] - learned_parts["kl"]).mean().item(), 4)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="test images (the first n)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration", type=int, default=128,
                        help="training images for the best fixed variances (0: skip that part)")
    parser.add_argument("--root", default=None, help="MNIST folder (default: $DNNL_DATA, then the cache)")
    parser.add_argument("--model", default="ddpm_mnist_quick", help="shipped checkpoint to score")
    parser.add_argument("--smoke", action="store_true", help="two images: proves the script runs, measures nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.calibration = 2, 2
    print(machine(), flush=True)
    device = dnnl.get_device()
    model = load_pretrained(args.model, device=device)
    learned = model.out_channels == 2 * model.in_channels  # ε and v: its own variances
    schedule = pretrained_schedule(args.model).to(device)
    images = mnist_tensors("test", root=args.root)[0][: args.n].to(device)

    start = time.perf_counter()
    fixed = bound(schedule, model, images, args.batch_size, args.seed, learned=learned)
    seconds = time.perf_counter() - start
    total = fixed["total"]

    best, base = None, None
    if learned:
        base = learned_against_base(schedule, "ddpm_mnist_quick", images, args, device, fixed)
    elif args.calibration:
        calib = mnist_tensors("train", root=args.root)[0][: args.calibration].to(device)
        variances = optimal_variances(schedule, model, calib, progress=True,
                                      generator=torch.Generator(device=device).manual_seed(args.seed + 1))
        tuned = bound(schedule, model, images, args.batch_size, args.seed, variances=variances)  # same draws
        gain = fixed["total"] - tuned["total"]
        ratio = (variances[1:] / schedule.posterior_variance[1:]).cpu()
        best = {
            "bits_per_dim": round(tuned["total"].mean().item(), 4),
            "standard_error": round(standard_error(tuned["total"]), 4),
            "gain_over_fixed": round(gain.mean().item(), 4),
            "gain_standard_error": round(standard_error(gain), 4),
            "sum of KL terms": round(tuned["kl"].mean().item(), 4),
            "calibration": f"the first {args.calibration} MNIST training images, one x_t per image and step",
            "largest sigma*^2 / beta_tilde": round(ratio.max().item(), 3),
            "at paper step": int(ratio.argmax()) + 2,
            "median sigma*^2 / beta_tilde": round(ratio.median().item(), 4),
            "decoder_L0_by_width": decoder_scan(schedule, model, calib, args.seed + 2),
        }
    info = pretrained_info(args.model)
    result = {
        "bits_per_dim": round(total.mean().item(), 4),
        "standard_error": round(standard_error(total), 4),
        "terms_bits_per_dim": _terms(fixed),
        "target": 1.5,
        "n_images": args.n,
        "images": f"the first {args.n} MNIST test images, dequantised to 256 levels in [-1, 1]",
        "checkpoint": f"{info.get('name', 'ddpm_mnist_quick')} ({info.get('steps')} training steps)",
        "estimator": f"all T={schedule.T} terms, one fresh x_t per term and image, seed {args.seed}; "
                     "standard error over images",
        "variances": "learned per pixel (L_hybrid)" if learned else "fixed: beta_tilde (log clipped at t = 0)",
        "best_fixed_variances": best,
        **({"against_the_checkpoint_it_started_from": base} if base else {}),
        "seconds": round(seconds, 1),
        "smoke": args.smoke,
        **provenance(),
        "command": "python benchmarks/likelihood.py" + ("" if args.n == 256 else f" --n {args.n}")
                   + ("" if args.calibration == 128 or learned else f" --calibration {args.calibration}")
                   + ("" if args.model == "ddpm_mnist_quick" else f" --model {args.model}"),
    }
    name = "likelihood.json" if args.model == "ddpm_mnist_quick" else f"likelihood_{args.model.removeprefix('ddpm_mnist_')}.json"
    return save_result(name, result, write=not args.smoke)


if __name__ == "__main__":
    main()
