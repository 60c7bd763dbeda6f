"""The README's sample-quality sections: the shipped checkpoint, the equal-budget comparison, the recipe ablation."""
from __future__ import annotations

from _fmt import _mark, _missing, _pct, _provenance
from dnnl.models.ddpm import TrainConfig
from dnnl.models.ddpm.train import ema_decay_at


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
                       if k in ("schedule", "batch_size", "lr", "warmup", "ema_decay", "grad_clip", "min_snr_gamma"))
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


def _budget_rows(budget: dict, label: str = "") -> list[str]:
    calib = budget["real_vs_real"]
    return [f"| {run['model']}{label} | {run['steps']:,} steps of batch {run['batch_size']}, "
            f"{run['wall_time_s'] / 60:.1f} min | {run['fd']:.2f} | {calib['fd']:.2f} | {_pct(run['confidence'])} |"
            for run in budget["runs"].values()]


def _candidate_note(candidate: dict, budget: dict | None) -> str:
    """The candidate's changes to the preset: those the preset has adopted since, and those it has not."""
    preset = budget["recipe"] if budget else {}
    changes = candidate["recipe_changes"]
    words = lambda keys: ", ".join(f"{k} = {changes[k]}" for k in keys)  # noqa: E731
    adopted = [k for k in changes if k in preset and preset[k] == changes[k]]
    rest = [k for k in changes if k not in adopted]
    since = (f"; measured before the preset adopted {words(adopted)}, which it set as well" if adopted else "")
    if not rest:
        return (f"The rows marked *candidate* measured, on an earlier run, the recipe the preset has adopted since "
                f"({words(adopted)}); the rows above it measure the preset as it ships. " + _budget_note(candidate))
    return (f"**Candidate recipe** (the rows marked *candidate*: the quick preset with {words(rest) or 'nothing'}, "
            f"which the 5-minute ablation below favoured, not adopted by the preset{since}). "
            + _budget_note(candidate))


def _goal_note(goal_run: dict, budget: dict | None, minutes: float) -> str:
    """A run that spends the goal's time on the preset's recipe, instead of stopping at the preset's steps."""
    own = f" instead of the preset's own {budget['runs']['dnnl']['steps']:,} steps" if budget else ""
    return (f"**The goal's time** (the rows marked *{minutes:g} min*: the quick preset's recipe, each model "
            f"trained for {minutes:g} minutes{own}, so that the run uses the time the goal allows). "
            + _budget_note(goal_run))


def section_quality(shipped: dict | None, record: dict | None, budget: dict | None,
                    candidate: dict | None = None, goal_run: dict | None = None) -> list[str]:
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
        rows += _budget_rows(budget)
        notes.append(_budget_note(budget))
    else:
        notes += _missing("quality_budget.py")
    if goal_run is not None:
        minutes = goal_run["runs"]["dnnl"]["budget_s"] / 60
        rows += _budget_rows(goal_run, f" (*{minutes:g} min*)")
        notes.append(_goal_note(goal_run, budget, minutes))
    if candidate is not None:
        rows += _budget_rows(candidate, " (*candidate*)")
        notes.append(_candidate_note(candidate, budget))
    return out + rows + [""] + [n for note in notes for n in (note, "")]


def _parent(name: str, r: dict, rows: dict) -> tuple[str | None, dict | None]:
    """The row a row is compared with, by name and record (rows saved before "parent" existed: the baseline)."""
    pname = None if name == "baseline" else r.get("parent", "baseline")
    return pname, rows.get(pname) if pname else None


def _diff(r: dict, parent: dict | None) -> dict:
    """The settings a row changes in its parent."""
    was = parent["changes"] if parent else {}
    return {k: v for k, v in r["changes"].items() if k not in was or was[k] != v}


def _change(r: dict, parent: dict | None) -> str:
    """What a row changes in its parent row, in words."""
    if r["sampler"].split(",")[0] != "ddpm":
        return f"scored with {r['sampler']}"
    if r["weights"] == "raw":
        return "scored with the raw weights (no EMA)"
    return ", ".join(f"{k} = {tuple(v) if isinstance(v, list) else v}" for k, v in _diff(r, parent).items()) or "none"


def _ships(ablation: dict) -> str | None:
    """The row that trained the quick preset as it ships now (every recorded setting equal, and every setting
    in which the preset differs from TrainConfig's defaults recorded), if any."""
    quick, default = TrainConfig.quick().to_dict(), TrainConfig().to_dict()
    own = {k for k in quick if quick[k] != default[k]} - {"preset", "out_dir", "steps", "decay_steps"}
    for name, r in ablation["rows"].items():
        config = {**ablation["preset"], **r["changes"]}
        if not own <= config.keys():
            continue
        trained_and_scored_alike = r.get("reuses") is None and r["sampler"].startswith("ddpm") and r["weights"] == "ema"
        if trained_and_scored_alike and all(quick[k] == v for k, v in config.items()):
            return name
    return None


def _recipe_row(name: str, r: dict, rows: dict, ships: str | None = None) -> str:
    pname, parent = _parent(name, r, rows)
    vs = f"{r['fd'] / parent['fd']:.2f}× `{pname}`" if parent else ("reference" if pname is None else "n/a")
    mark = " (**ships**)" if name == ships else ""
    return (f"| `{name}`{mark} | {_change(r, parent)} | {r['steps']:,} × {r['batch_size']} | "
            f"{r['wall_time_s'] / 60:.1f} min | {r['fd']:.2f} | {r['fd_over_real_vs_real']:.2f} | "
            f"{_pct(r['confidence'])} | {vs} |")


def _ema_notes(rows: dict) -> list[str]:
    """How far an EMA row's average differs from its parent's: the warm-up keeps both the same at first."""
    notes = []
    for name, r in rows.items():
        parent = _parent(name, r, rows)[1]
        if not (parent and "ema_decay" in _diff(r, parent) and r.get("ema_decay_at_end") is not None):
            continue
        warm_up = f"over {r['steps']:,} steps the EMA's warm-up, min(decay, (1 + n)/(10 + n)),"
        if r["ema_decay_at_end"] == parent.get("ema_decay_at_end"):
            notes.append(f"`{name}`: {warm_up} stays below both decays (it ends at {r['ema_decay_at_end']:g}), so "
                         f"the two runs keep the same EMA and score the same; the decay only matters in longer runs.")
            continue
        low = min(r["ema_decay_at_end"], parent["ema_decay_at_end"])
        reach = next(n for n in range(r["steps"] + 1) if ema_decay_at(n, low) >= low)
        notes.append(f"`{name}`: {warm_up} reaches the lower decay, {low:g}, after {reach:,} updates and ends at "
                     f"{max(r['ema_decay_at_end'], parent['ema_decay_at_end']):g} for the other, so the two "
                     f"averages differ over the last {r['steps'] - reach:,} steps only.")
    return [line for note in notes for line in ("", note)]


def _copied(name: str, r: dict, rows: dict) -> bool:
    """Whether a row trains its parent's steps, set by no probe of its own (a cost-free change, or a reuse)."""
    parent = _parent(name, r, rows)[1]
    return (parent is not None and not r.get("speed_probe")
            and (r["steps"], r["batch_size"]) == (parent["steps"], parent["batch_size"]))


def _seed_and_speed_notes(ablation: dict) -> list[str]:
    """What a seed row says about single-seed differences, and why some rows trained for less time."""
    rows, notes = ablation["rows"], []
    for name, r in rows.items():
        pname, parent = _parent(name, r, rows)
        if parent and set(_diff(r, parent)) == {"seed"}:
            notes.append(f"`{name}`: the recipe of `{pname}` with another seed (other initial weights and batches, "
                         f"the same scoring noise) scores {r['fd'] / parent['fd']:.2f}× its FD, so differences of "
                         f"that size between single-seed rows are within seed noise.")
    probed = {name: r["speed_probe"] for name, r in rows.items() if r.get("speed_probe")}
    if probed:
        pairs = "; ".join(f"`{n}` " + ", ".join(f"{q['ratio']:.2f}" for q in p["pairs"]) + f" (median {p['ratio']:.2f})"
                          for n, p in probed.items())
        spread = [q["ratio"] for p in probed.values() for q in p["pairs"]]
        lengths = "/".join(str(n) for n in sorted({p["probe_steps"] for p in probed.values()}))
        # a row with a parent, no probe kept and steps of its own: set by one pair, before probes were kept
        one_pair = [n for n, r in rows.items() if _parent(n, r, rows)[1] is not None and not r.get("speed_probe")
                    and not _copied(n, r, rows)]
        notes.append(f"Speed probes, the row's images/s over its parent's in each pair of back-to-back probes: "
                     f"{pairs}. Single pairs ranged from {min(spread):.2f} to {max(spread):.2f}: "
                     f"a {lengths}-step probe on this machine is that noisy, which is why the median of three "
                     f"sets the steps" + ("; the other rows that change a step's cost were set from one pair."
                                          if one_pair else "."))
    budget = 60 * ablation["minutes"]
    ticks = lambda names: ", ".join(f"`{n}`" for n in names)  # noqa: E731
    timed = {n: r for n, r in rows.items() if not r.get("retrained_alike")}  # a retrained reuse: its row's steps
    faster = [n for n, r in timed.items() if r["wall_time_s"] < 0.8 * budget]
    slower = [n for n, r in timed.items() if r["wall_time_s"] > 1.2 * budget and not _copied(n, r, rows)]
    slower_copied = [n for n, r in timed.items() if r["wall_time_s"] > 1.2 * budget and _copied(n, r, rows)]
    if faster:
        notes.append(f"{ticks(faster)} ran their steps in less time than the budget, this machine running faster "
                     f"than when their steps were set; the steps came from the rows they are compared with, as "
                     f"above, so the comparison holds.")
    if slower_copied:
        notes.append(f"{ticks(slower_copied)} ran their steps in more time than the budget, this machine running "
                     f"slower than when their steps were set; they train the same steps as the rows they are "
                     f"compared with, so the comparison holds.")
    if slower:
        notes.append(f"{ticks(slower)} ran their steps in more time than the budget: this machine ran slower than "
                     f"in the speed probe that set them, so the comparison holds only as far as that probe's "
                     f"speed ratio does.")
    return [line for note in notes for line in ("", note)]


def _reuse_notes(rows: dict) -> list[str]:
    """Where a scoring row retrained the run it reuses (its folder was gone): whether it is the same network."""
    notes = []
    for name, r in rows.items():
        if "retrained_alike" not in r:
            continue
        ref = rows[r["reuses"]]
        same = (f"ended at the same loss ({r['final_loss']:g}), so it scores the same network" if r["retrained_alike"]
                else f"ended at another loss ({r['final_loss']:g} against {ref['final_loss']:g}), so it scores "
                     f"another network than `{r['reuses']}` did, and the two rows do not compare")
        notes.append(f"`{name}`: `{r['reuses']}`'s run was retrained from scratch for its {r['steps']:,} steps "
                     f"(the run folder was not kept) and {same}.")
    return [line for note in notes for line in ("", note)]


def section_recipe(ablation: dict | None, longer: tuple[dict, ...] = ()) -> list[str]:
    """What each lever bought at a fixed training time (``cpu_ablation.py``), then any series of a longer budget."""
    out = ["### What each training lever buys (CPU)", ""]
    if ablation is None:
        return out + _missing("cpu_ablation.py")
    rows, p, ships = ablation["rows"], ablation["preset"], _ships(ablation)
    loss = "L_simple" if p["min_snr_gamma"] is None else f"min-SNR-{p['min_snr_gamma']:g}"
    later = [n for n, r in rows.items() if ships and _parent(n, r, rows)[0] == ships]
    shipped = (f" The quick preset ships as `{ships}` (marked **ships**)" +
               (f"; the rows compared with it ({', '.join(f'`{n}`' for n in later)}) change the preset as it "
                f"ships." if later else ".") if ships else " No row trains the quick preset as it ships now.")
    out += [f"Each row trains for about **{ablation['minutes']:g} minutes** on this machine and changes one "
            f"thing in the row it is compared with. The first block starts from the `baseline`, the quick "
            f"preset as it was (channels {tuple(p['channels'])}, batch {p['batch_size']}, {loss}, lr "
            f"{p['lr']:g}, EMA {p['ema_decay']:g}, {p['schedule']} schedule); the second from `preset`, the "
            f"quick preset after the first block, which took the two levers that paid there (batch 64 and "
            f"min-SNR-5).{shipped} Steps are fixed before training: the baseline's from a short speed probe; a change "
            f"that leaves a step's cost alone trains the same steps as the row it is compared with; a change "
            f"of batch or network is probed back to back with that row and its steps scaled by the speed "
            f"ratio (the median of three pairs of probes where the notes list them; the training column shows "
            f"the real time). Then each draws "
            f"{ablation['n_samples']:,} samples from the same starting noise with {ablation['sampling_steps']} "
            f"strided steps. Real-vs-real FD at that n: {ablation['real_vs_real']['fd']:.2f}.", ""]
    out += _recipe_table(ablation, ships)
    for series in longer:
        ships = _ships(series)
        out += _longer_intro(series, ships) + _recipe_table(series, ships)
    return out


def _longer_intro(series: dict, ships: str | None) -> list[str]:
    """The paragraph before a series of another budget, which starts from a row of the 5-minute table."""
    start = series.get("start", "baseline")
    what = ", the quick preset as it ships," if start == ships else ","
    return [f"**{series['minutes']:g} minutes a row**: the same measurement over a longer run, starting from "
            f"`{start}`{what} whose steps come from a short speed probe, as the baseline's do above; each other "
            f"row changes one thing in it and gets its steps as above. {series['n_samples']:,} samples each, "
            f"{series['sampling_steps']} strided steps; real-vs-real FD at that n: "
            f"{series['real_vs_real']['fd']:.2f}.", ""]


def _recipe_table(ablation: dict, ships: str | None) -> list[str]:
    """One series' table, its notes and where and when it ran."""
    rows = ablation["rows"]
    out = ["| row | change | steps × batch | training | FD | × real-vs-real | confident | FD vs |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    out += [_recipe_row(name, r, rows, ships) for name, r in rows.items()]
    out += _ema_notes(rows) + _reuse_notes(rows)
    out += _seed_and_speed_notes(ablation)
    dates = sorted(r["date"] for r in rows.values())
    out += ["", f"{ablation['machine']}; rows measured one after another with no other heavy job running, "
            f"{dates[0]} to {dates[-1]}. Rerun: `{ablation['command']}`.", ""]
    return out
