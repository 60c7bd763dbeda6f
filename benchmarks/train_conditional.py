"""Train the shipped conditional checkpoint (chapter 7): a label-conditioned fine-tune of the unconditional one.

    python benchmarks/train_conditional.py --steps 1200 --out runs/cond         # stage 1, from ddpm_mnist_quick
    python benchmarks/train_conditional.py --steps 6000 --out runs/cond2 \
        --init-from runs/cond/checkpoint.pt                                       # stage 2, from stage 1's EMA
    python benchmarks/train_conditional.py --steps 6000 --out runs/cond2 --until 3000  # a stretch; rerun resumes
    python benchmarks/train_conditional.py --export-only --out runs/cond2         # export runs/cond2/checkpoint.pt
    python benchmarks/train_conditional.py --smoke --out DIR --weights-dir DIR2   # a few steps, for the tests

Each stage is the package's own ``train()`` with ``TrainConfig(num_classes=10, p_uncond=0.1)``. Stage 1
starts from the shipped unconditional checkpoint (``init_from``; its label embedding starts at zero, so
step 0 is the unconditional model). A later stage starts from an earlier stage's checkpoint (its EMA
weights, label embedding included) with a fresh optimizer and learning-rate curve; the record lists every
stage (``stages``) and sums their steps and wall time. ``--steps`` fixes a stage and its cosine
learning-rate decay; ``--until`` stops a stretch early, and the next command resumes bit-identically (on
a CPU), so a stage can be split into short stretches on a shared machine. Each stretch's wall time is
added to the record (``segments``).

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
from train_pretrained import WEIGHTS_DIR, _relative, add_run_args, export  # noqa: E402
from dnnl.models.ddpm.checkpoint import CHECKPOINT_NAME, load_checkpoint  # noqa: E402
from dnnl.models.ddpm.train import TrainConfig, TrainingInterrupted, train  # noqa: E402

NAME = "ddpm_mnist_cond"
INIT = WEIGHTS_DIR / "ddpm_mnist_quick.pt"
# A fine-tune: half the quick preset's peak learning rate for the loaded weights, and ten times that for the new
# label embedding (from zero at lr 5e-4 it grew to norms of 0.04 in 600 steps, against time embeddings of norm
# 1.4-4.7, and the samples ignored the label); a short warm-up, the quick preset's EMA.
# min_snr_gamma=None, the linear schedule and attention: the shipped stages were trained on L_simple and the
# schedule and network of the unconditional checkpoint they start from, before the quick preset weighted its loss,
# adopted the cosine schedule and left attention out
RECIPE = dict(batch_size=128, lr=1e-3, label_lr_scale=10.0, warmup=100, ema_decay=0.999, num_classes=10,
              p_uncond=0.1, seed=0, checkpoint_every=200, log_every=50, min_snr_gamma=None, schedule="linear",
              attention=True)


def config_for(args) -> TrainConfig:
    until = min(args.until or args.steps, args.steps)
    init = args.init_from or str(INIT)
    extra = dict(subset=256, batch_size=16, checkpoint_every=2, log_every=1) if args.smoke else {}
    return TrainConfig.quick(**{**RECIPE, **extra}, steps=until, decay_steps=args.steps, out_dir=str(args.out),
                             init_from=init, data_root=args.data_root, sample_every=0)


def _segments(run_dir: Path) -> list[dict]:
    path = run_dir / "segments.json"
    return json.loads(path.read_text()) if path.exists() else []


def _stage(run_dir: Path) -> dict:
    """One stage: where it started, its steps, learning rates, wall time and stretches."""
    state = load_checkpoint(run_dir / CHECKPOINT_NAME, map_location="cpu")
    c, segments = state["config"], _segments(run_dir)
    stage = {"run": _relative(str(run_dir)), "init_from": _relative(c["init_from"]), "steps": state["step"],
             "decay_steps": c["decay_steps"], "lr": c["lr"], "label_lr_scale": c.get("label_lr_scale", 1.0),
             "wall_time_s": round(state["wall_time"], 1),
             "segments": [{k: v for k, v in s.items() if k != "machine"} for s in segments],
             "machines": sorted({s["machine"] for s in segments if s.get("machine")})}
    if (run_dir / "note.txt").exists():
        stage["note"] = (run_dir / "note.txt").read_text()
    return stage


def _stages(run_dir: Path) -> list[dict]:
    """The stages that made ``run_dir``'s checkpoint, oldest first: back through each ``init_from`` that is
    an earlier stage's training checkpoint."""
    stages = [_stage(run_dir)]
    while True:
        init = Path(stages[0]["init_from"])
        init = init if init.is_absolute() else REPO / init
        if init.name != CHECKPOINT_NAME or len(stages) > 10:
            return stages
        stages.insert(0, _stage(init.parent))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "runs" / "cond"), help="training folder (checkpoint.pt)")
    parser.add_argument("--weights-dir", default=str(WEIGHTS_DIR))
    parser.add_argument("--steps", type=int, default=1800, help="steps of the whole run (the LR decays to 0 there)")
    parser.add_argument("--until", type=int, help="stop this stretch at this step (resume later)")
    parser.add_argument("--init-from", help="weights to start from (default: the shipped ddpm_mnist_quick.pt)")
    parser.add_argument("--smoke", action="store_true", help="4 steps of batch 16 on 256 images (tests)")
    add_run_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
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
    if args.note:  # kept with the run, so that a later stage's record still carries it
        (run_dir / "note.txt").write_text(args.note)
    record = export(run_dir, NAME, Path(args.weights_dir), args.note)
    stages = _stages(run_dir)
    done = all(stage["steps"] >= stage["decay_steps"] for stage in stages)
    steps = sum(stage["steps"] for stage in stages)
    wall = sum(stage["wall_time_s"] for stage in stages)
    record["config"]["init_from"] = _relative(record["config"]["init_from"])
    record.update({
        "steps": steps, "images_seen": steps * record["config"]["batch_size"], "wall_time_s": round(wall, 1),
        "images_per_sec": round(steps * record["config"]["batch_size"] / wall, 1),
        "init_from": stages[0]["init_from"],
        "init_note": "fine-tuned from the shipped unconditional checkpoint ddpm_mnist_quick (12,000 steps); the "
                     "label embedding (11 vectors: digits 0-9 and 'no label') started at zero, so training began "
                     "at the unconditional model" + (
                         "; each later stage started from the EMA weights of the stage before it, with a fresh "
                         "optimizer and learning-rate curve" if len(stages) > 1 else ""),
        "status": "final" if done else f"interim: stage {len(stages)} at step {stages[-1]['steps']} of "
                                       f"{stages[-1]['decay_steps']}",
        "stages": stages,
        "segments": [seg for stage in stages for seg in stage["segments"]],
        "command": " && ".join(f"python benchmarks/train_conditional.py --steps {stage['decay_steps']} --out "
                               f"{stage['run']}" + ("" if i == 0 else f" --init-from {stage['init_from']}")
                               for i, stage in enumerate(stages))
                   + " [--until STEP for each stretch]" + (" --smoke" if args.smoke else ""),
        **provenance(),
    })
    trained_on = set()
    for stage in stages:  # the machines go to the record's "machine", not into each stage
        trained_on.update(stage.pop("machines"))
    if trained_on:  # the machines that trained it, not the one that exported it
        record["machine"] = "; ".join(sorted(trained_on))
    write_json(Path(args.weights_dir) / f"{NAME}.json", record)
    print(json.dumps(record, indent=2))
    return record


if __name__ == "__main__":
    main()
