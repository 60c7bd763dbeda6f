"""Train the shipped checkpoint: the quick preset on MNIST with the package's own loop, then export it.

    python benchmarks/train_pretrained.py                 # train (or resume) runs/quick to 12000 steps, export
    python benchmarks/train_pretrained.py --export-only   # export an existing runs/quick/checkpoint.pt

Writes ``dnnl/models/ddpm/weights/ddpm_mnist_quick.pt`` (the EMA weights as a plain fp32 state dict,
fp16 above 10 MB; loads with ``torch.load(weights_only=True)``) and ``ddpm_mnist_quick.json`` (config,
steps, seed, wall time, images/s, machine, final loss). Sample-quality numbers are added to the JSON
afterwards by ``benchmarks/evaluate_pretrained.py``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import machine, provenance, write_json  # noqa: E402  (benchmarks/_machine.py)
from dnnl.models.ddpm.checkpoint import CHECKPOINT_NAME, atomic_save, load_checkpoint  # noqa: E402
from dnnl.models.ddpm.train import TrainConfig, train  # noqa: E402

WEIGHTS_DIR = REPO / "dnnl" / "models" / "ddpm" / "weights"
MAX_FP32_BYTES = 10 * 2**20


def _relative(path: str) -> str:
    """A path inside the repository as a relative one, so the record names no local folders."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return path


def export(run_dir: Path, name: str, weights_dir: Path, note: str | None = None) -> dict:
    """Copy the EMA weights of ``run_dir/checkpoint.pt`` to ``weights_dir/<name>.pt`` and write its JSON record."""
    state = load_checkpoint(run_dir / CHECKPOINT_NAME, map_location="cpu")
    config = TrainConfig(**state["config"])
    ema = {k: v.float().contiguous() for k, v in state["ema"].items()}
    nbytes = sum(v.numel() * v.element_size() for v in ema.values())
    dtype = "float32"
    if nbytes > MAX_FP32_BYTES:
        ema, dtype = {k: v.half() for k, v in ema.items()}, "float16"
    weights = atomic_save(ema, weights_dir / f"{name}.pt")  # a plain state dict, as load_pretrained reads it

    losses, steps = state["losses"], state["step"]
    images = steps * config.batch_size * state["world_size"]
    tail = losses[-100:]
    record = {
        "name": name,
        "model": config.model_kwargs(),
        "config": {**state["config"], "out_dir": _relative(str(run_dir))},
        "steps": steps,
        "seed": config.seed,
        "images_seen": images,
        "wall_time_s": round(state["wall_time"], 1),
        "images_per_sec": round(images / state["wall_time"], 1),
        "final_loss": round(sum(tail) / len(tail), 5),
        "final_loss_note": f"mean L_simple over the last {len(tail)} steps",
        "parameters": sum(v.numel() for v in ema.values()),
        "dtype": dtype,
        **provenance(),
        "command": f"python benchmarks/train_pretrained.py --steps {config.steps} --seed {config.seed}"
                   + (f" --batch-size {config.batch_size}" if config.batch_size != TrainConfig.quick().batch_size else ""),
    }
    if note:
        record["note"] = note
    write_json(weights.with_suffix(".json"), record)
    return record


def config_for(args) -> TrainConfig:
    """The run's config: the quick preset with the shipped checkpoint's own loss and schedule."""
    overrides = {k: v for k, v in dict(steps=args.steps, seed=args.seed, data_root=args.data_root,
                                       batch_size=args.batch_size).items()
                 if v is not None}
    # the shipped checkpoint was trained on L_simple, the linear schedule and self-attention at 7×7, before
    # the quick preset weighted its loss, adopted the cosine schedule and left attention out
    return TrainConfig.quick(out_dir=str(args.out), sample_every=args.sample_every, min_snr_gamma=None,
                             schedule="linear", attention=True, **overrides)


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """The options the training scripts share: the data, export only, the progress bar, a note for the record."""
    parser.add_argument("--data-root", help="folder that holds MNIST/raw/ (default: $DNNL_DATA or the cache)")
    parser.add_argument("--export-only", action="store_true", help="skip training; export <out>/checkpoint.pt")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--note", help="a remark stored in the JSON record, e.g. how busy the machine was")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "runs" / "quick"), help="training folder (checkpoint.pt)")
    parser.add_argument("--name", default="ddpm_mnist_quick", help="name of the exported weights")
    parser.add_argument("--weights-dir", default=str(WEIGHTS_DIR))
    parser.add_argument("--steps", type=int, default=12_000,
                        help="steps for the shipped model (the quick preset's own default is shorter)")
    parser.add_argument("--seed", type=int, help="override the quick preset's seed")
    parser.add_argument("--batch-size", type=int, help="override the quick preset's batch (on a GPU a larger batch "
                        "costs far less than proportionally more time per step)")
    parser.add_argument("--sample-every", type=int, default=1500, help="preview grids in <out>/samples/")
    add_run_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    print(machine(), flush=True)
    run_dir = Path(args.out)
    if not args.export_only:
        train(config_for(args), resume=True, progress=not args.no_progress)
    record = export(run_dir, args.name, Path(args.weights_dir), args.note)
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
