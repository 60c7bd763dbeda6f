"""Fine-tune the shipped checkpoint to learn its reverse variances with L_hybrid, then export it (chapter 3).

    python benchmarks/train_hybrid.py                  # train (or resume) runs/hybrid, export ddpm_mnist_hybrid
    python benchmarks/train_hybrid.py --export-only    # export an existing runs/hybrid/checkpoint.pt

The run starts from ``ddpm_mnist_quick`` (linear schedule, L_simple, attention at 7x7) with a second output
map v, zero at first (``TrainConfig(learn_variance=True, init_from=...)``), and trains both with L_hybrid
= L_simple + λ L_vlb (Eq. @eq-l-hybrid), λ = 0.001 as in Nichol & Dhariwal; a quarter of each batch sits at
t = 0 (``decoder_share``), importance-weighted, so the decoder L_0 is learnt in a short run.
Writes ``dnnl/models/ddpm/weights/ddpm_mnist_hybrid.pt`` and its ``.json`` record; bits/dim come from
``python benchmarks/likelihood.py --model ddpm_mnist_hybrid``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import machine, write_json  # noqa: E402  (benchmarks/_machine.py)
from train_pretrained import WEIGHTS_DIR, add_run_args, export  # noqa: E402
from dnnl.models.ddpm.train import TrainConfig, train  # noqa: E402


def config_for(args) -> TrainConfig:
    """The quick preset with the shipped checkpoint's loss, schedule and network, plus the variance map v."""
    return TrainConfig.quick(out_dir=str(args.out), min_snr_gamma=None, schedule="linear", attention=True,
                             learn_variance=True, vlb_weight=1e-3, decoder_share=args.decoder_share,
                             init_from=str(WEIGHTS_DIR / "ddpm_mnist_quick.pt"), steps=args.steps,
                             batch_size=args.batch_size, lr=args.lr, seed=args.seed, data_root=args.data_root,
                             sample_every=0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "runs" / "hybrid"), help="training folder (checkpoint.pt)")
    parser.add_argument("--weights-dir", default=str(WEIGHTS_DIR), help="where to export (it starts from the "
                        "shipped ddpm_mnist_quick either way)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (cosine decay to 0)")
    parser.add_argument("--decoder-share", type=float, default=0.25, help="probability of t = 0 in a batch")
    parser.add_argument("--seed", type=int, default=0)
    add_run_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    print(machine(), flush=True)
    config = config_for(args)
    if not args.export_only:
        train(config, resume=True, progress=not args.no_progress)
    record = export(Path(args.out), "ddpm_mnist_hybrid", Path(args.weights_dir), args.note)
    record.update(
        final_loss_note=record["final_loss_note"].replace("L_simple", "L_hybrid (L_simple + 0.001 L_vlb, "
                                                          "importance-weighted)"),
        init_from="ddpm_mnist_quick (12,000 steps of L_simple); v started at zero",
        command=f"python benchmarks/train_hybrid.py --steps {config.steps} --batch-size {config.batch_size} "
                f"--lr {config.lr:g} --decoder-share {config.decoder_share:g} --seed {config.seed}",
    )
    record["config"]["init_from"] = "dnnl/models/ddpm/weights/ddpm_mnist_quick.pt"
    write_json(Path(args.weights_dir) / "ddpm_mnist_hybrid.json", record)
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
