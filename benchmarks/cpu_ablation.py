"""What each training lever buys at a fixed wall time: one change to the quick preset per row.

    python benchmarks/cpu_ablation.py --minutes 5                      # every row, 5 minutes of training each
    python benchmarks/cpu_ablation.py --minutes 5 --only batch_64      # one row (the others are kept)
    python benchmarks/cpu_ablation.py --minutes 14 --from preset_cosine_no_attention \
        --only preset_cosine_no_attention preset_cosine_no_attention_deep   # a longer budget, from the preset
    python benchmarks/cpu_ablation.py --smoke                          # tiny sizes: proves the script runs

Every row trains the quick preset's network with ``dnnl.models.ddpm.train`` for the same wall time on this
machine, with its steps fixed before training (the cosine decay runs over them): the baseline's are minutes ×
its probe images/s ÷ batch; a change that leaves a step's cost alone trains the same steps as the row it is
compared with (its parent); a change of batch or network scales them by its speed over the parent's, the
median of three pairs of back-to-back probes in alternating order (rows measured before that used one pair).
Each row then draws ``--n`` samples from the same starting noise with a ``--steps``-step sampler, scored with
the shipped metric (``dnnl.metrics``) against the real-vs-real floor at the same n. Each row differs from its
parent in one thing only (``VARIANTS``). The first block starts from ``baseline``, the quick preset before it
adopted batch 64 and min-SNR-5; the second from ``preset``, the quick preset with those two, before it adopted
the cosine schedule of ``preset_cosine`` and left out attention (``preset_cosine_no_attention``, the row it
ships as); the third block changes that row. ``ddim_scoring`` scores the baseline's network with another
sampler, ``no_ema`` scores its raw weights instead of their EMA, and ``fixed_large_scoring`` scores the shipped
row's network with the DDPM step's larger variance, σ² = β instead of β̃. A seed row trains from other initial
weights and batches (the scoring noise stays), to show how far one seed's differences hold. Runs resume from
``runs/ablation/<minutes>m/<row>/``; a scoring row whose run folder is gone retrains it and records whether it
ended at the reused row's loss (``retrained_alike``).
Results merge into benchmarks/results/cpu_ablation.json (5 minutes a row; another budget has a file of its
own, ``cpu_ablation_<minutes>min.json``), one row per name with its own date and load, saved after each row,
so rows can be measured one at a time. ``--from ROW`` starts a series at ROW instead of the baseline: its steps
come from a probe, as the baseline's do, so a longer budget need not retrain the rows that led to the preset.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import NamedTuple

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import RESULTS, machine, provenance, save_result, write_json  # noqa: E402  (benchmarks/_machine.py)
from quality_budget import measured_rate, score_samples, train_one  # noqa: E402
import dnnl  # noqa: E402
from dnnl import metrics  # noqa: E402
from dnnl.models.ddpm.train import CHECKPOINT_NAME, TrainConfig, ema_decay_at, load_checkpoint  # noqa: E402


class Row(NamedTuple):
    """One row: its changes to ``BASELINE``, the sampler that scores it, the row whose training it reuses, the
    weights that are scored (the EMA's or the raw ones), the row it is compared with (one change apart), and the
    DDPM sampler's σ² (``sample``'s ``variance_type``: β̃ or β of the chain)."""
    changes: dict
    sampler: str = "ddpm"
    reuses: str | None = None
    weights: str = "ema"
    parent: str | None = "baseline"
    variance: str = "fixed_small"


_PRESET = {"batch_size": 64, "min_snr_gamma": 5.0}  # what the quick preset adopted from the first block
_SHIPS = {**_PRESET, "schedule": "cosine", "attention": False}  # the quick preset as it ships
_SHIPS_AS = "preset_cosine_no_attention"  # ... and the row that measured it
VARIANTS: dict[str, Row] = {
    # first block: one change each to the quick preset as it was (batch 128, L_simple)
    "baseline": Row({}, parent=None),
    "ddim_scoring": Row({}, "ddim", "baseline"),
    "no_ema": Row({}, reuses="baseline", weights="raw"),
    "min_snr_5": Row({"min_snr_gamma": 5.0}),
    "batch_64": Row({"batch_size": 64}),
    "lr_4e-3": Row({"lr": 4e-3}),
    # second block: one change each to the quick preset after the first block (batch 64, min-SNR-5, linear);
    # it then adopted preset_cosine, and ships as that row
    "preset": Row(_PRESET, parent="batch_64"),
    "preset_batch_32": Row({**_PRESET, "batch_size": 32}, parent="preset"),
    "preset_lr_4e-3": Row({**_PRESET, "lr": 4e-3}, parent="preset"),
    "preset_wide": Row({**_PRESET, "channels": [24, 48, 96]}, parent="preset"),
    "preset_deep": Row({**_PRESET, "num_res_blocks": 2}, parent="preset"),
    "preset_no_attention": Row({**_PRESET, "attention": False}, parent="preset"),
    "preset_cosine": Row({**_PRESET, "schedule": "cosine"}, parent="preset"),
    "preset_ema_0.995": Row({**_PRESET, "ema_decay": 0.995}, parent="preset"),
    # the preset as it ships: how much of preset_cosine's gain a second seed keeps, and a shorter T
    "preset_seed_1": Row({**_PRESET, "seed": 1}, parent="preset"),
    "preset_cosine_seed_1": Row({**_PRESET, "schedule": "cosine", "seed": 1}, parent="preset_seed_1"),
    "preset_cosine_T_500": Row({**_PRESET, "schedule": "cosine", "T": 500}, parent="preset_cosine"),
    _SHIPS_AS: Row(_SHIPS, parent="preset_cosine"),
    "preset_cosine_no_attention_seed_1": Row({**_SHIPS, "seed": 1}, parent="preset_cosine_seed_1"),
    # the preset as it ships, trained on L_simple: does min-SNR-5, adopted on the linear schedule, still pay?
    "preset_cosine_no_attention_l_simple": Row({**_SHIPS, "min_snr_gamma": None}, parent=_SHIPS_AS),
    "preset_cosine_no_attention_min_snr_2": Row({**_SHIPS, "min_snr_gamma": 2.0}, parent=_SHIPS_AS),
    # the network that ships, scored with the larger of the two fixed variances, σ² = β
    "fixed_large_scoring": Row(_SHIPS, reuses=_SHIPS_AS, parent=_SHIPS_AS, variance="fixed_large"),
    # width against depth for the preset as it ships, each for the same wall time, and a lower learning rate
    "preset_cosine_no_attention_wide": Row({**_SHIPS, "channels": [24, 48, 96]}, parent=_SHIPS_AS),
    "preset_cosine_no_attention_deep": Row({**_SHIPS, "num_res_blocks": 2}, parent=_SHIPS_AS),
    "preset_cosine_no_attention_lr_1e-3": Row({**_SHIPS, "lr": 1e-3}, parent=_SHIPS_AS),
    # a faster EMA, which differs from 0.999 only once its warm-up passes 0.995 (after 1,790 steps), and a
    # narrower network that trains more steps in the same time
    "preset_cosine_no_attention_ema_0.995": Row({**_SHIPS, "ema_decay": 0.995}, parent=_SHIPS_AS),
    "preset_cosine_no_attention_narrow": Row({**_SHIPS, "channels": [8, 16, 32]}, parent=_SHIPS_AS),
    # the seed noise of a longer run (seed 1 of this recipe is compared with another parent above), the two
    # changes that scored a little better at 14 minutes taken together, and a smaller batch
    "preset_cosine_no_attention_seed_2": Row({**_SHIPS, "seed": 2}, parent=_SHIPS_AS),
    "preset_cosine_no_attention_min_snr_2_lr_1e-3": Row({**_SHIPS, "min_snr_gamma": 2.0, "lr": 1e-3},
                                                        parent="preset_cosine_no_attention_min_snr_2"),
    "preset_cosine_no_attention_batch_32": Row({**_SHIPS, "batch_size": 32}, parent=_SHIPS_AS),
}
DEFAULT_MINUTES = 5.0


def out_name(minutes: float) -> str:
    """The results file of a budget: the 5-minute series in cpu_ablation.json, another beside it."""
    return "cpu_ablation.json" if minutes == DEFAULT_MINUTES else f"cpu_ablation_{minutes:g}min.json"


# the quick preset before the levers it adopted (batch 64, min-SNR-5, the cosine schedule, no attention): the rows'
# common start
BASELINE = {"batch_size": 128, "min_snr_gamma": None, "schedule": "linear", "attention": True}
COST_KEYS = ("batch_size", "channels", "num_res_blocks", "attention")  # changes that change a step's cost
PROBE_ROUNDS = 3  # pairs of back-to-back speed probes for a change of cost
# the common start's settings kept in the record: every field a row changes, so a row's recipe can be read back
RECORDED = ("channels", "num_res_blocks", "attention", "batch_size", "lr", "warmup", "ema_decay", "T", "schedule",
            "min_snr_gamma", "seed")


def _config(name: str, args, base: TrainConfig) -> TrainConfig:
    row = VARIANTS[name]
    return TrainConfig(**{**base.to_dict(), **row.changes, "out_dir": str(Path(args.out) / (row.reuses or name))})


def _build(config: TrainConfig, seed: int):
    return lambda: (dnnl.set_seed(seed), config.build_model())[1]


def _budget_steps(name: str, args, base: TrainConfig, config: TrainConfig, rows: dict) -> tuple[float, int, dict]:
    """The row's training steps for the budget, the images/s they assume, and its speed probe (or None).

    The baseline's come from a probe. A row that reuses another's training, or differs from its parent in
    nothing that changes a step's cost (loss weighting, learning rate, schedule, EMA), gets that row's steps,
    so no probe's noise separates the two. A change of cost (batch, network) is probed against the parent
    (``speed_ratio``), and its steps scale with the speed ratio.
    """
    row, probe_steps = VARIANTS[name], 3 if args.smoke else 30
    if row.parent is None or name == args.start:
        rate = measured_rate(config, _build(config, args.seed), probe_steps)
        return rate, max(1, int(args.minutes * 60 * rate / config.batch_size)), None
    ref_name = row.reuses or row.parent
    if ref_name not in rows:
        raise SystemExit(f"row {name!r} is measured against {ref_name!r}: measure {ref_name!r} first")
    ref, parent = rows[ref_name], _config(ref_name, args, base)
    if row.reuses is not None or all(getattr(config, k) == getattr(parent, k) for k in COST_KEYS):
        return ref["probe_images_per_sec"], ref["steps"], None
    probe = speed_ratio(config, parent, args.seed, probe_steps, rounds=1 if args.smoke else PROBE_ROUNDS)
    steps = max(1, round(ref["steps"] * parent.batch_size / config.batch_size * probe["ratio"]))
    return ref["probe_images_per_sec"] * probe["ratio"], steps, probe


def speed_ratio(config: TrainConfig, parent: TrainConfig, seed: int, probe_steps: int, rounds: int) -> dict:
    """The row's images/s over its parent's: ``rounds`` pairs of probes, the order alternating (parent first,
    then the row first, ...) so a drift of the machine's speed falls on both, and the median of the pairs'
    ratios, so one disturbed probe does not set the steps. Kept in the row's folder (``speed_probe.json``):
    a resumed row keeps the steps it started with."""
    path = Path(config.out_dir) / "speed_probe.json"
    if path.exists():
        return json.loads(path.read_text())
    pairs = []
    for i in range(rounds):
        order = [(parent, "parent"), (config, "row")][:: 1 if i % 2 == 0 else -1]
        rates = {who: measured_rate(c, _build(c, seed), probe_steps) for c, who in order}
        pairs.append({**{k: round(v, 1) for k, v in rates.items()}, "ratio": round(rates["row"] / rates["parent"], 4)})
        print(f"  speed probe {i + 1}/{rounds}: row/parent {pairs[-1]['ratio']:.3f}", flush=True)
    probe = {"ratio": statistics.median(p["ratio"] for p in pairs), "probe_steps": probe_steps, "pairs": pairs}
    write_json(path, probe)
    return probe


def run_row(name: str, args, base: TrainConfig, rows: dict) -> dict:
    """Train (or reuse) the row's network for the budget, then sample and score it."""
    row = VARIANTS[name]
    config = _config(name, args, base)
    load = os.getloadavg()[0]
    rate, steps, probe = _budget_steps(name, args, base, config, rows)
    config = TrainConfig(**{**config.to_dict(), "steps": steps, "decay_steps": steps})
    build = _build(config, config.seed)  # a seed row draws other initial weights and batches, the same test noise
    print(f"{name}: {rate:.0f} img/s -> {steps} steps", flush=True)
    retrained = row.reuses is not None and not (Path(config.out_dir) / CHECKPOINT_NAME).exists()
    model, record = train_one(name, config, build)
    if row.weights == "raw":  # the network the optimizer trained, without the EMA
        model = build()
        model.load_state_dict(load_checkpoint(Path(config.out_dir) / CHECKPOINT_NAME)["model"])
    noise = torch.randn((args.n, 1, 28, 28), generator=torch.Generator().manual_seed(args.seed))
    _, scores = score_samples(model, config.build_schedule(), noise, steps=args.steps, seed=args.seed,
                              method=row.sampler, reference=args.reference, floor_fd=args.calib["fd"], progress=False,
                              variance_type=row.variance)
    if retrained:  # the reused run's folder was gone: retrained from scratch, it must be the run it reuses
        record["retrained_alike"] = record["final_loss"] == rows[row.reuses]["final_loss"]
    sampler = row.sampler + (" with σ² = β" if row.variance == "fixed_large" else "")
    record.update(changes=row.changes, sampler=f"{sampler}, {args.steps} strided steps", weights=row.weights,
                  probe_images_per_sec=round(rate, 1), **scores, load_before=round(load, 2), reuses=row.reuses,
                  parent=None if name == args.start else row.parent, speed_probe=probe,
                  ema_decay_at_end=round(ema_decay_at(steps, config.ema_decay), 5),
                  **provenance())
    print(f"{name}: FD {record['fd']} ({record['fd_over_real_vs_real']}x real), "
          f"{100 * record['confidence']:.1f} % confident", flush=True)
    return record


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES, help="training wall time of every row")
    parser.add_argument("--from", dest="start", choices=list(VARIANTS), default="baseline",
                        help="the row the series starts from: its steps come from a speed probe (default: baseline)")
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=None, help="rows to (re)measure")
    parser.add_argument("--n", type=int, default=1000, help="samples per row")
    parser.add_argument("--steps", type=int, default=100, help="strided sampling steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="run folders (default: runs/ablation/<minutes>m)")
    parser.add_argument("--root", default=None, help="MNIST folder (default: $DNNL_DATA, then the cache)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: proves the script runs, measures nothing")
    args = parser.parse_args(argv)
    stray = [n for n in args.only or [] if not descends(n, args.start)]
    if stray:
        parser.error(f"--only {' '.join(stray)}: not compared, one change at a time, with --from {args.start}")
    if dnnl.get_device().type != "cpu":
        parser.error("this ablation is for the CPU; on a GPU use quality_budget.py --minutes")
    print(machine(), flush=True)
    args.out = args.out or str(REPO / "runs" / "ablation" / f"{args.minutes:g}m")
    base = TrainConfig.quick(**BASELINE, seed=args.seed, data_root=args.root, log_every=50)
    if args.smoke:
        base = TrainConfig.quick(**{**BASELINE, "batch_size": 8}, seed=args.seed, data_root=args.root, steps=3,
                                 subset=64, warmup=1, log_every=1)
        args.n, args.steps, args.minutes = min(args.n, 16), min(args.steps, 2), min(args.minutes, 0.02)
    args.reference = metrics.reference_features("test", args.root)  # features once, not per row
    args.calib = metrics.real_vs_real(args.n, root=args.root, seed=args.seed)
    out = out_name(args.minutes)
    old = {} if args.smoke or not (RESULTS / out).exists() else json.loads((RESULTS / out).read_text())
    kept = (old.get("minutes"), old.get("n_samples"), old.get("sampling_steps"), old.get("start", "baseline"))
    rows = dict(old.get("rows", {})) if kept == (args.minutes, args.n, args.steps, args.start) else {}
    for name in args.only or [n for n in VARIANTS if descends(n, args.start)]:
        rows[name] = run_row(name, args, base, rows)
        result = _result(args, base, rows)  # saved after every row: an interrupted series keeps what it measured
        save_result(out, result, write=not args.smoke, echo=False)
    return save_result(out, result, write=not args.smoke)


def descends(name: str, start: str) -> bool:
    """Whether a row is ``start`` or is compared, one change at a time, with a row that descends from it."""
    while name is not None and name != start:
        name = VARIANTS[name].parent
    return name == start


def _result(args, base: TrainConfig, rows: dict) -> dict:
    return {
        "minutes": args.minutes, "n_samples": args.n, "sampling_steps": args.steps, "start": args.start,
        "preset": {k: v for k, v in base.to_dict().items() if k in RECORDED},
        "real_vs_real": {"fd": round(args.calib["fd"], 3), "confidence": round(args.calib["confidence"], 4),
                         "n": args.n},
        "rows": {name: rows[name] for name in VARIANTS if name in rows},
        "smoke": args.smoke,
        "command": f"python benchmarks/cpu_ablation.py --minutes {args.minutes:g}"
                   + ("" if args.start == "baseline" else f" --from {args.start}"),
        **provenance(),
    }


if __name__ == "__main__":
    main()
