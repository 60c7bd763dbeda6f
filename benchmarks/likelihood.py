"""Bits/dim of the shipped checkpoint on MNIST test images: the full T-step variational bound.

    python benchmarks/likelihood.py [--n 256] [--batch-size 256]
    python benchmarks/likelihood.py --smoke

Every term of L_T + Σ_t L_{t-1} + L_0 (``dnnl.models.ddpm.vlb_terms``, one fresh x_t per term and image)
for the first ``--n`` test images, with the standard error of the mean over images. The terms are the
chapter 3 ones: the decoder L_0 is the discretized Gaussian with the exact normal CDF. The bound is an
upper bound on the negative log-likelihood, so lower is better. Writes benchmarks/results/likelihood.json.
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

from _machine import machine, save_result  # noqa: E402  (benchmarks/_machine.py)
import dnnl  # noqa: E402
from dnnl.data import mnist_tensors  # noqa: E402
from dnnl.models.ddpm import load_pretrained, vlb_terms  # noqa: E402
from dnnl.models.ddpm.pretrained import pretrained_info, pretrained_schedule  # noqa: E402



def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="test images (the first n)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="MNIST folder (default: $DNNL_DATA, then the cache)")
    parser.add_argument("--smoke", action="store_true", help="two images: proves the script runs, measures nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n = 2
    print(machine(), flush=True)
    device = dnnl.get_device()
    model = load_pretrained(device=device)
    schedule = pretrained_schedule().to(device)
    images = mnist_tensors("test", root=args.root)[0][: args.n].to(device)
    gen = torch.Generator(device=device).manual_seed(args.seed)

    totals, priors, decoders, kls = [], [], [], []
    start = time.perf_counter()
    for lo in range(0, args.n, args.batch_size):
        terms = vlb_terms(schedule, model, images[lo: lo + args.batch_size], generator=gen, progress=True)
        totals.append(terms["total_bpd"].cpu())
        priors.append(terms["prior_bpd"].cpu())
        decoders.append(terms["terms_bpd"][:, 0].cpu())
        kls.append(terms["terms_bpd"][:, 1:].sum(dim=1).cpu())
    seconds = time.perf_counter() - start
    total, prior, decoder, kl = (torch.cat(v) for v in (totals, priors, decoders, kls))
    se = total.std().item() / math.sqrt(len(total)) if len(total) > 1 else float("nan")
    info = pretrained_info()
    result = {
        "bits_per_dim": round(total.mean().item(), 4),
        "standard_error": round(se, 4),
        "terms_bits_per_dim": {"L_T (prior)": round(prior.mean().item(), 6),
                               "sum of KL terms L_1..L_{T-1}": round(kl.mean().item(), 4),
                               "L_0 (decoder)": round(decoder.mean().item(), 4)},
        "target": 1.5,
        "n_images": args.n,
        "images": f"the first {args.n} MNIST test images, dequantised to 256 levels in [-1, 1]",
        "checkpoint": f"{info.get('name', 'ddpm_mnist_quick')} ({info.get('steps')} training steps)",
        "estimator": f"all T={schedule.T} terms, one fresh x_t per term and image, seed {args.seed}; "
                     "standard error over images",
        "seconds": round(seconds, 1),
        "smoke": args.smoke,
        "machine": machine(),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python benchmarks/likelihood.py" + ("" if args.n == 256 else f" --n {args.n}"),
    }
    return save_result("likelihood.json", result, write=not args.smoke)


if __name__ == "__main__":
    main()
