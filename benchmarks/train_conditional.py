"""Train the shipped conditional checkpoint (chapter 7): a label-conditioned fine-tune of the unconditional one.

    python benchmarks/train_conditional.py --steps 4000 --until 1400   # train (or resume) runs/cond to step 1400
    python benchmarks/train_conditional.py --steps 4000                # ... and on to 4000, then export
    python benchmarks/train_conditional.py --export-only               # export runs/cond/checkpoint.pt
    python benchmarks/train_conditional.py --smoke --out DIR --weights-dir DIR2   # a few steps, for the tests

The run is the package's own ``train()`` with ``TrainConfig(num_classes=10, p_uncond=0.1)``, started from the
shipped unconditional checkpoint (``init_from``; its label embedding starts at zero, so step 0 is the
unconditional model). ``--steps`` fixes the whole run and its cosine learning-rate decay; ``--until`` stops
a stretch early, and the next command resumes bit-identically (on a CPU), so the run can be split into
short stretches on a shared machine. Each stretch's wall time is added to the record (``segments``).

Writes ``dnnl/models/ddpm/weights/ddpm_mnist_cond.{pt,json}``; the quality numbers are added by
``benchmarks/evaluate_conditional.py``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import machine, provenance, utc_now, write_json  # noqa: E402  (benchmarks/_machine.py)
from train_pretrained import WEIGHTS_DIR, _relative, export  # noqa: E402
from dnnl.models.ddpm.checkpoint import CHECKPOINT_NAME, load_checkpoint  # noqa: E402
from dnnl.models.ddpm.train import TrainConfig, TrainingInterrupted, train  # noqa: E402

NAME = "ddpm_mnist_cond"
INIT = WEIGHTS_DIR / "ddpm_mnist_quick.pt"
# A fine-tune: half the quick preset's peak learning rate for the loaded weights, and ten times that for the new
# label embedding (from zero at lr 5e-4 it grew to norms of 0.04 in 600 steps, against time embeddings of norm
# 1.4-4.7, and the samples ignored the label); a short warm-up, the quick preset's EMA.
RECIPE = dict(batch_size=128, lr=1e-3, label_lr_scale=10.0, warmup=100, ema_decay=0.999, num_classes=10,
              p_uncond=0.1, seed=0, checkpoint_every=200, log_every=50)


def config_for(args) -> TrainConfig:
    until = min(args.until or args.steps, args.steps)
    init = args.init_from or str(INIT)
    extra = dict(subset=256, batch_size=16, checkpoint_every=2, log_every=1) if args.smoke else {}
    return TrainConfig.quick(**{**RECIPE, **extra}, steps=until, decay_steps=args.steps, out_dir=str(args.out),
                             init_from=init, data_root=args.data_root, sample_every=0)


def _segments(run_dir: Path) -> list[dict]:
    path = run_dir / "segments.json"
    return json.loads(path.read_text()) if path.exists() else []


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "runs" / "cond"), help="training folder (checkpoint.pt)")
    parser.add_argument("--weights-dir", default=str(WEIGHTS_DIR))
    parser.add_argument("--steps", type=int, default=1800, help="steps of the whole run (the LR decays to 0 there)")
    parser.add_argument("--until", type=int, help="stop this stretch at this step (resume later)")
    parser.add_argument("--init-from", help="weights to start from (default: the shipped ddpm_mnist_quick.pt)")
    parser.add_argument("--data-root", help="folder that holds MNIST/raw/ (default: $DNNL_DATA or the cache)")
    parser.add_argument("--export-only", action="store_true", help="skip training; export <out>/checkpoint.pt")
    parser.add_argument("--smoke", action="store_true", help="4 steps of batch 16 on 256 images (tests)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--note", help="a remark stored in the JSON record")
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.until = 4, args.until or 4
    print(machine(), flush=True)

    run_dir = Path(args.out)
    if not args.export_only:
        config = config_for(args)
        start = time.perf_counter()
        try:
            reached = train(config, resume=True, progress=not args.no_progress).steps
        except TrainingInterrupted as err:  # SIGTERM (say from `timeout`) saved a checkpoint: record and export it
            print(err, flush=True)
            reached = load_checkpoint(run_dir / CHECKPOINT_NAME, map_location="cpu")["step"]
        segments = _segments(run_dir) + [{"until_step": reached, "wall_s": round(time.perf_counter() - start, 1),
                                          "finished": utc_now(), "machine": machine()}]
        write_json(run_dir / "segments.json", segments)  # a JSON object per stretch, kept in the run folder
    record = export(run_dir, NAME, Path(args.weights_dir), args.note)
    state = load_checkpoint(run_dir / CHECKPOINT_NAME, map_location="cpu")
    done = state["step"] >= state["config"]["decay_steps"]
    record["config"]["init_from"] = _relative(state["config"]["init_from"])
    record.update({
        "init_from": record["config"]["init_from"],
        "init_note": "fine-tuned from the shipped unconditional checkpoint ddpm_mnist_quick (12,000 steps); the "
                     "label embedding (11 vectors: digits 0-9 and 'no label') started at zero, so training began "
                     "at the unconditional model",
        "status": "final" if done else f"interim: step {state['step']} of {state['config']['decay_steps']}",
        "segments": [{k: v for k, v in s.items() if k != "machine"} for s in _segments(run_dir)],
        "command": (f"python benchmarks/train_conditional.py --steps {state['config']['decay_steps']} "
                    "[--until STEP for each stretch]" + (" --smoke" if args.smoke else "")),
        **provenance(),
    })
    write_json(Path(args.weights_dir) / f"{NAME}.json", record)
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
