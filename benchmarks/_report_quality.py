"""The README's sample-quality sections: the shipped checkpoint, the equal-budget comparison, the recipe ablation."""
from __future__ import annotations

from _fmt import _mark, _missing, _pct, _provenance


def _shipped(shipped: dict, record: dict) -> tuple[str, str]:
    q = shipped["quality"]
    n = q["n_samples"]
    row = (f"| shipped checkpoint (`load_pretrained()`) | {record['steps']:,} steps of batch "
           f"{record['config']['batch_size']}, {record['wall_time_s'] / 60:.0f} min | {q['fd']:.2f} | "
           f"{q['real_vs_real_fd'][f'n={n}']:.2f} | {_pct(q['confidence'])} |")
    note = (f"Shipped checkpoint ({n:,} samples, {q['sampler']}): FD {q['fd_over_real_vs_real_same_n']:.2f}× "
            f"real-vs-real (target ≤ 3×: {_mark(q['targets']['fd_within_3x_of_real_vs_real'])}), "
            f"{_pct(q['confidence'])} confident (target ≥ 90 %: "
            f"{_mark(q['targets']['confidence_at_least_0.9'])}). Training ({record['machine']}): "
            f"`{record['command']}`" + (f" ({record['note']})" if record.get("note") else "")
            + f". Scoring ({shipped['timing']['machine']}): `python benchmarks/evaluate_pretrained.py`.")
    return row, note


def _budget_note(budget: dict) -> str:
    runs, ours, goal = budget["runs"], budget["runs"]["dnnl"], budget["targets_dnnl"]
    recipe = ", ".join(f"{k} {v}" for k, v in budget["recipe"].items()
                       if k in ("batch_size", "lr", "warmup", "ema_decay", "grad_clip", "min_snr_gamma"))
    theirs = runs["diffusers"]
    met_time = ours["wall_time_s"] <= 60 * goal["minutes"]
    met_fd = ours["fd_over_real_vs_real"] <= goal["fd_over_real_vs_real"]
    met_conf = ours["confidence"] >= goal["confidence"]
    if "probe_images_per_sec" in ours:
        fixed = (f"fixed before training from each model's measured speed ({ours['probe_images_per_sec']:.0f} and "
                 f"{theirs['probe_images_per_sec']:.0f} images/s in a short probe)")
    else:
        fixed = (f"the quick preset's own for dnnl; for UNet2DModel fixed before training from its measured speed "
                 f"({theirs['probe_images_per_sec']:.0f} images/s in a short probe)")
    text = (f"Equal budget ({budget['budget']}; dnnl and UNet2DModel trained by `dnnl.models.ddpm.train` with the "
            f"same recipe ({recipe}) and a cosine decay over their own steps, {fixed}; {budget['sampler']}; "
            f"{budget['n_samples']:,} samples each). "
            f"**dnnl**: {ours['wall_time_s'] / 60:.1f} min of training, FD {ours['fd_over_real_vs_real']:.2f}× "
            f"real-vs-real and {_pct(ours['confidence'])} confident (goal within {goal['minutes']} min, ≤ "
            f"{goal['fd_over_real_vs_real']:g}× and ≥ {_pct(goal['confidence'])}: "
            f"{_mark(met_time and met_fd and met_conf)}). FD ratio dnnl/UNet2DModel with the same recipe: "
            f"**{budget['fd_ratio_dnnl_over_diffusers']:.2f}** (target ≤ {budget['target_fd_ratio']}: "
            f"{_mark(budget['fd_ratio_dnnl_over_diffusers'] <= budget['target_fd_ratio'])}).")
    if "diffusers_tutorial" in runs:
        tut = runs["diffusers_tutorial"]
        text += (f" Against UNet2DModel trained with diffusers' own tutorial recipe for the same time "
                 f"(`benchmarks/_tutorial.py`: {tut['recipe'].split(': ', 1)[1]}; {tut['steps']:,} steps): FD "
                 f"ratio **{budget['fd_ratio_dnnl_over_diffusers_tutorial']:.2f}**.")
    return text + " " + _provenance(budget)


def section_quality(shipped: dict | None, record: dict | None, budget: dict | None) -> list[str]:
    out = ["### Sample quality", ""]
    rows = ["| model | training | FD | real-vs-real FD (same n) | confident (max-prob > 0.9) |",
            "|---|---|---:|---:|---:|"]
    notes = []
    if shipped is not None and record is not None:
        row, note = _shipped(shipped, record)
        rows.append(row)
        notes.append(note)
    else:
        notes += _missing("train_pretrained.py` then `python benchmarks/evaluate_pretrained.py")
    if budget is not None:
        calib = budget["real_vs_real"]
        for run in budget["runs"].values():
            rows.append(f"| {run['model']} | {run['steps']:,} steps of batch {run['batch_size']}, "
                        f"{run['wall_time_s'] / 60:.1f} min | {run['fd']:.2f} | {calib['fd']:.2f} | "
                        f"{_pct(run['confidence'])} |")
        notes.append(_budget_note(budget))
    else:
        notes += _missing("quality_budget.py")
    return out + rows + [""] + [n for note in notes for n in (note, "")]


def section_recipe(ablation: dict | None) -> list[str]:
    """What each lever bought at a fixed training time (``cpu_ablation.py``)."""
    out = ["### What each training lever buys (CPU)", ""]
    if ablation is None:
        return out + _missing("cpu_ablation.py")
    rows, base = ablation["rows"], ablation["rows"].get("baseline")
    p = ablation["preset"]
    loss = "L_simple" if p["min_snr_gamma"] is None else f"min-SNR-{p['min_snr_gamma']:g}"
    out += [f"Each row changes one thing in the baseline (the quick preset's network, channels "
            f"{tuple(p['channels'])}, batch {p['batch_size']}, {loss}, lr {p['lr']:g}, EMA {p['ema_decay']:g}, "
            f"{p['schedule']} schedule) and trains for about **{ablation['minutes']:g} minutes** on this "
            f"machine, its steps fixed before training: the baseline's from a short speed probe; a change that "
            f"leaves a step's cost alone trains the same steps; a change of batch is probed back to back with "
            f"the baseline and its steps scaled by the speed ratio (the training column shows the real time). "
            f"Then each draws "
            f"{ablation['n_samples']:,} samples from the same starting noise with {ablation['sampling_steps']} "
            f"strided steps. Real-vs-real FD at that n: {ablation['real_vs_real']['fd']:.2f}.", "",
            "| row | change | steps × batch | training | FD | × real-vs-real | confident | FD vs baseline |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        change = ", ".join(f"{k} = {v}" for k, v in r["changes"].items()) or "none"
        if r["sampler"].split(",")[0] != "ddpm":
            change = f"scored with {r['sampler']}"
        if r["weights"] == "raw":
            change = "scored with the raw weights (no EMA)"
        vs = f"{r['fd'] / base['fd']:.2f}×" if base else "n/a"
        out.append(f"| `{name}` | {change} | {r['steps']:,} × {r['batch_size']} | {r['wall_time_s'] / 60:.1f} min | "
                   f"{r['fd']:.2f} | "
                   f"{r['fd_over_real_vs_real']:.2f} | {_pct(r['confidence'])} | {vs} |")
    dates = sorted(r["date"] for r in rows.values())
    out += ["", f"{ablation['machine']}; rows measured one after another with no other heavy job running, "
            f"{dates[0]} to {dates[-1]}. Rerun: `{ablation['command']}`.", ""]
    return out
