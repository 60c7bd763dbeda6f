"""Write the README's "Measured numbers" section from the JSON files in benchmarks/results/.

    python benchmarks/report.py           # rewrite the section between the markers in README.md
    python benchmarks/report.py --check   # exit 1 if README.md is not what the results say (a test runs this)

Nothing in that section is typed by hand: every number is read from a result file that a script in
``benchmarks/`` wrote, and a result that is missing is reported as not measured.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
README = REPO / "README.md"
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
sys.path.insert(0, str(REPO))  # booktools, from the checkout
sys.path.insert(0, str(REPO / "benchmarks"))

from _fmt import _mark, _missing, _pct, _provenance  # noqa: E402
from _report_quality import section_quality, section_recipe  # noqa: E402
from booktools import page_paths  # noqa: E402


def _load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def _compile_payback(rows: list[dict]) -> list[str]:
    """How long a run must train before torch.compile's first-step compilation is paid back by its speed-up."""
    if len(rows) < 2 or "first_step_s (compilation)" not in rows[-1]:
        return []
    gain, cost = rows[-1]["images_per_s"] / rows[-2]["images_per_s"], rows[-1]["first_step_s (compilation)"]
    if gain <= 1:
        return ["", f"torch.compile ran at {gain:.2f}× the row above it, so its {cost:.0f} s of compilation never "
                    f"pays back here."]
    minutes = cost / (1 - 1 / gain) / 60
    verdict = ("longer than the quick preset's 15-minute budget, so the preset does not compile on a CPU"
               if minutes > 15 else "within the quick preset's 15-minute budget")
    return ["", f"torch.compile ran at {gain:.2f}× the row above it: its {cost:.0f} s of compilation pays back "
                f"after {minutes:.0f} min of training, {verdict}."]


def section_throughput(r: dict | None) -> list[str]:
    out = ["### Training throughput (CPU)", ""]
    if r is None:
        return out + _missing("throughput.py")
    out += [f"One training step (q_sample, forward, MSE, backward, fused AdamW), {r['image_size']}, float32. "
            f"{r['timing']}.", "",
            "| size, batch | model | parameters | images/s | GFLOP/image (fwd+bwd) | achieved GFLOP/s |",
            "|---|---|---:|---:|---:|---:|"]
    for size, c in r["comparisons"].items():
        d, h = c["dnnl"], c["diffusers"]
        plain = ", no attention" if d.get("attention") is False else ""  # older records: attention in both
        out.append(f"| {size}, {c['batch_size']} | dnnl `UNet` {tuple(d['channels'])}{plain} | {d['parameters']:,} | "
                   f"{d['images_per_s']:.1f} | {d['gflops_per_image']:.3f} | {d['achieved_gflops']:.1f} |")
        plain = ", no attention" if h.get("mid_block_attention") is False else ""
        out.append(f"| {size}, {c['batch_size']} | diffusers `UNet2DModel` {tuple(h['block_out_channels'])}{plain} | "
                   f"{h['parameters']:,} | {h['images_per_s']:.1f} | {h['gflops_per_image']:.3f} | |")
    peak = r["matmul_peak_gflops"]
    ratios = ", ".join(f"{size} {c['ratio']:.2f}×" for size, c in r["comparisons"].items())
    out += ["", f"Ratio ours/diffusers: {ratios} (target ≥ {r['target_ratio']}× for the quick size: "
            f"{_mark(r['ratio'] >= r['target_ratio'])}). Utilisation of the measured fp32 matmul peak "
            f"({peak['fp32']:.0f} GFLOP/s; bf16 {peak['bf16']:.1f} GFLOP/s, so {r['bf16_autocast'].split(':')[0]}): "
            f"{_pct(r['utilisation'])} (target ≥ {_pct(r['target_utilisation'])}: "
            f"{_mark(r['utilisation'] >= r['target_utilisation'])}).", "",
            "What each change bought (quick size; each row adds one change to the row above):", "",
            "| change | images/s | vs first row |", "|---|---:|---:|"]
    for row in r["ablation_quick"]:
        extra = (f" (first step, compiling: {row['first_step_s (compilation)']:.0f} s)"
                 if "first_step_s (compilation)" in row else "")
        out.append(f"| {row['change']}{extra} | {row['images_per_s']:.1f} | {row['speed-up_vs_first_row']:.2f}× |")
    out += _compile_payback(r["ablation_quick"])
    out += ["", f"diffusers `UNet2DModel` given channels_last as well: {r['diffusers_with_channels_last']:.1f} "
            f"images/s. {r['machine']}; diffusers {r['diffusers_version']}; {r['date']}. "
            f"Rerun: `{r['command']}`.", ""]
    return out


def _sampling_table(r: dict, digits: int) -> tuple[list[str], str]:
    """The images/s table of a sampling_speed result, and its dnnl/DDPMPipeline ratios as one phrase."""
    steps = list(next(iter(r["rows"].values())).keys())
    rows = ["| sampler + network | " + " | ".join(s.replace("_", " ") for s in steps) + " |",
            "|---|" + "---:|" * len(steps)]
    for name, row in r["rows"].items():
        rows.append(f"| {name} | " + " | ".join(f"{row[s]['images_per_s']:.{digits}f}" for s in steps) + " |")
    ratio = ", ".join(f"{k.replace('_', ' ')} {v:.2f}×" for k, v in r["ratio_dnnl_over_pipeline"].items())
    return rows, f"dnnl over `DDPMPipeline`: {ratio}"


def section_sampling(r: dict | None) -> list[str]:
    out = ["### Sampling speed", ""]
    if r is None:
        return out + _missing("sampling_speed.py")
    rows, ratio = _sampling_table(r, 2)
    same = ", ".join(f"{k.replace('_', ' ')} {v:.2f}×" for k, v in r["ratio_same_model_sampler_only"].items())
    return out + [f"Images/s, batch {r['batch_size']}, CPU.", ""] + rows + [
        "", f"{ratio}; the samplers alone (same UNet2DModel): {same}. " + _provenance(r), ""]


def section_likelihood(r: dict | None, learned: dict | None = None) -> list[str]:
    out = ["### Likelihood", ""]
    if r is None:
        return out + _missing("likelihood.py")
    t = r["terms_bits_per_dim"]
    out += [f"Shipped checkpoint ({r['checkpoint']}), {r['images']}: **{r['bits_per_dim']:.3f} ± "
            f"{r['standard_error']:.3f} bits/dim** (the full variational bound; {r['estimator']}). Terms: "
            + ", ".join(f"{k} {v:g}" for k, v in t.items())
            + f". Target ≤ {r['target']}: {_mark(r['bits_per_dim'] <= r['target'])}. {r['seconds']:.0f} s on "
            + _provenance(r), ""]
    b = r.get("best_fixed_variances")
    if b:
        widths = ", ".join(f"{k} {v:.3f}" for k, v in b["decoder_L0_by_width"].items())
        out += [f"With the best fixed variances of chapter 3 (`optimal_variances`), estimated on "
                f"{b['calibration']}, on the same draws: {b['bits_per_dim']:.3f} ± {b['standard_error']:.3f} "
                f"bits/dim, a gain of {b['gain_over_fixed']:.4f} ± {b['gain_standard_error']:.4f} (σ*²/β̃ at most "
                f"{b['largest sigma*^2 / beta_tilde']:.2f}, at paper step {b['at paper step']}; median "
                f"{b['median sigma*^2 / beta_tilde']:.4f}). The decoder L_0 on those training images for other "
                f"widths than the fixed σ_1 (bits/dim): {widths}.", ""]
    return out + _learned_likelihood(learned)


def _learned_likelihood(r: dict | None) -> list[str]:
    """The L_hybrid checkpoint's bound with its own variances, beside the checkpoint it started from."""
    if r is None:
        return ["Learned variances (L_hybrid, chapter 3): not measured yet; run `python benchmarks/likelihood.py "
                "--model ddpm_mnist_hybrid`.", ""]
    b, t = r["against_the_checkpoint_it_started_from"], r["terms_bits_per_dim"]
    return [f"**Learned variances** ({r['checkpoint']}, L_hybrid, chapter 3; {r['images']}): **{r['bits_per_dim']:.3f} ± "
            f"{r['standard_error']:.3f} bits/dim** with its own per-pixel variances (target ≤ {r['target']}: "
            f"{_mark(r['bits_per_dim'] <= r['target'])}). Terms: " + ", ".join(f"{k} {v:g}" for k, v in t.items())
            + f". On the same draws, {b['checkpoint']}, which it started from, scores {b['bits_per_dim']:.3f}: a gain "
            f"of {b['gain']:.3f} ± {b['gain_standard_error']:.3f} bits/dim, {b['decoder_gain']:.3f} of it in the "
            f"decoder L_0 and {b['kl_gain']:.3f} in the KL terms. {r['seconds']:.0f} s for the learned bound on "
            + _provenance(r), ""]


def section_gpu(throughput: dict | None, full: dict | None, sampling: dict | None, budget: dict | None) -> list[str]:
    """The GPU runs of the same scripts (``*_cuda.json``); absent where no GPU was lent."""
    out = ["### On a GPU", ""]
    if not any((throughput, full, sampling, budget)):
        return out + ["Not measured yet: run the benchmark scripts on a machine with a CUDA GPU "
                      "(they write `*_cuda.json`).", ""]
    if full is not None:
        p = full["preset"]
        reached = (f"reached after {full['steps_to_target']:,} steps, **{full['time_to_target_s']:.0f} s** of training"
                   if full["reached"] else f"not reached in {full['final']['step']:,} steps")
        out += [f"**Full preset** (`TrainConfig.full()`: channels {tuple(p['channels'])}, {full['parameters']:,} "
                f"parameters, batch {p['batch_size']}, {full['precision']}): **{full['images_per_s']:,.0f} images/s** "
                f"({full['images_per_s_note']}), peak GPU memory **{full['peak_memory_mb']:,.0f} MB**. FD target "
                f"({full['target']}, FD ≤ {full['target_fd']:.2f}): {reached}; there FD {full['final']['fd']:.2f}, "
                f"{_pct(full['final']['confidence'])} confident ({full['sampler']}). " + _provenance(full), ""]
    if throughput is not None:
        rows = ["| size, batch | dnnl images/s | diffusers images/s | ratio | dnnl peak memory | "
                "dnnl share of the bf16 matmul peak |", "|---|---:|---:|---:|---:|---:|"]
        for size, c in throughput["comparisons"].items():
            d = c["dnnl"]
            rows.append(f"| {size}, {c['batch_size']} | {d['images_per_s']:,.0f} | {c['diffusers']['images_per_s']:,.0f} "
                        f"| {c['ratio']:.2f}× | {d['peak_memory_mb']:,.0f} MB | {_pct(d['utilisation_of_bf16_peak'])} |")
        peak = throughput["matmul_peak_gflops"]
        out += ["**Training throughput**, the same script (`throughput.py`) with bf16 autocast and TF32 for both "
                f"models; {throughput['timing']}.", ""] + rows + [
                "", f"The bf16 matmul peak measured in the same run is {peak['bf16'] / 1000:,.0f} TFLOP/s. At "
                "these shares of it the networks are far too small to keep such a GPU busy: a step's time goes "
                "to kernel launches and Python rather than arithmetic. " + _provenance(throughput), ""]
    if sampling is not None:
        rows, ratio = _sampling_table(sampling, 1)
        out += [f"**Sampling speed** (`sampling_speed.py`), images/s, batch {sampling['batch_size']}, fp32:", ""]
        out += rows + ["", f"{ratio}. " + _provenance(sampling), ""]
    if budget is not None:
        runs = budget["runs"]
        detail = "; ".join(f"{r['model'].split(',')[0]}: {r['steps']:,} steps in {r['wall_time_s']:.0f} s, FD "
                           f"{r['fd']:.2f}, {_pct(r['confidence'])} confident" for r in runs.values())
        out += [f"**Quality at equal budget** (`quality_budget.py`, {budget['budget']}, {budget['sampler']}, "
                f"{budget['n_samples']:,} samples; real-vs-real FD {budget['real_vs_real']['fd']:.2f}): {detail}. "
                f"FD ratio dnnl/diffusers {budget['fd_ratio_dnnl_over_diffusers']:.2f} (target ≤ "
                f"{budget['target_fd_ratio']}: {_mark(budget['fd_ratio_dnnl_over_diffusers'] <= budget['target_fd_ratio'])}"
                "). " + _provenance(budget), ""]
    return out


def book_pages() -> list[str]:
    """The pages ``book_time.py`` executes (``booktools.page_paths``), by name."""
    return [p.stem for p in page_paths(REPO)]


def section_book(r: dict | None, pages: list[str] | None = None) -> list[str]:
    """The book's execution time; pages of the book the record lacks are named, and no total is claimed."""
    out = ["### Executing the book", ""]
    if r is None:
        return out + _missing("book_time.py")
    timed = ", ".join(f"{k} {v:.0f} s" for k, v in r["pages_seconds"].items())
    lacking = [p for p in (pages or book_pages()) if p not in r["pages_seconds"]]
    if lacking:
        return out + [f"Pages in {r['mode']}: {timed}. Not measured: {', '.join(lacking)} (the book has gained "
                      "pages since this record), so no total for the book is given. " + _provenance(r), ""]
    out += [f"Every page in {r['mode']}: **{r['total_minutes']:.1f} minutes** in all (target ≤ {r['target_minutes']}: "
            f"{_mark(r['total_minutes'] <= r['target_minutes'])}): {timed}. " + _provenance(r), ""]
    return out


def section_metric() -> list[str]:
    info_path = REPO / "dnnl" / "weights" / "mnist_classifier.json"
    out = ["### The metric", ""]
    if not info_path.exists():
        return out + _missing("train_classifier.py")
    info = json.loads(info_path.read_text())
    return out + [f"FD and confidence use `dnnl.metrics`: a {info['parameters']:,}-parameter MNIST classifier with "
                  f"an extra \"not a digit\" class ({_pct(info['test_accuracy'])} test accuracy), trained by "
                  f"`python benchmarks/{Path(info['script']).name}`; the FD uses its 128-d penultimate features, "
                  "so nothing is downloaded.", ""]


def section_guidance(record: dict | None, targets: dict | None, sweep: dict | None) -> list[str]:
    """Chapter 7: the shipped conditional checkpoint, its targets and the guidance sweep."""
    out = ["### Conditioning and classifier-free guidance (chapter 7)", ""]
    if record is None:
        return out + _missing("train_conditional.py` then `python benchmarks/evaluate_conditional.py")
    c = record["config"]
    stages = record["stages"]
    parts = []
    for i, st in enumerate(stages):
        walls = ", ".join(f"{s['wall_s'] / 60:.1f}" for s in st["segments"])
        parts.append(f"- Stage {i + 1}: {st['steps']:,} steps (lr {st['lr']:g}, the label embedding at "
                     f"{st['label_lr_scale']:g}× that), {st['wall_time_s'] / 60:.1f} min in {len(st['segments'])} "
                     f"stretch(es) ({walls} min)" + (f"; {st['note']}." if st.get("note") else "."))
    out += [f"Shipped conditional checkpoint `load_pretrained(\"{record['name']}\")` ({record['status']}): "
            f"{record['steps']:,} steps of batch {c['batch_size']} in all (EMA {c['ema_decay']}, label dropout p_uncond = "
            f"{c['p_uncond']}), {record['wall_time_s'] / 60:.1f} min of training on {record['machine']}, "
            f"in {len(stages)} stage(s). It starts from `{record['init_from']}`: {record['init_note']}.", "",
            *parts, "", f"Rerun: `{record['command']}`.", ""]
    if targets is None or targets.get("targets") is None:
        out += ["**Targets: not measured yet** (≥ 97 % classified as the requested digit at the default w, 200 "
                "samples per digit; at w = 0 a confident share at least the unconditional checkpoint's and an FD to all "
                "test digits within 1.2× of it). Measure them with `python benchmarks/evaluate_conditional.py --w 2 "
                "--per-digit 200 --out conditional_targets.json`, then `python benchmarks/evaluate_conditional.py "
                "--w 0 --per-digit 100 --with-unconditional --merge --out conditional_targets.json`.", ""]
    else:
        t, base = targets["targets"], targets["unconditional"]
        out += [f"**Targets** ({targets['sampler']}; {t['per_digit']} samples per digit at the default w, "
                f"{t['per_digit_w0']} at w = 0; guidance weight w in the convention ε̃ = (1 + w) ε(x, t, y) − "
                "w ε(x, t, ∅), so w = 0 is the conditional model):", "",
                "| target | measured | |", "|---|---:|---|",
                f"| classified as the requested digit at the default w = {t['default_w']:g}: ≥ "
                f"{_pct(t['accuracy_target'])} | {_pct(t['accuracy_at_default_w'])} | {_mark(t['accuracy_met'])} |",
                f"| confident share at w = 0 ≥ the unconditional checkpoint's ({_pct(t['confidence_unconditional'])} "
                f"in the same run) | {_pct(t['confidence_w0'])} | {_mark(t['confidence_met'])} |",
                f"| FD to all test digits at w = 0 ≤ {t['fd_ratio_target']}× the unconditional checkpoint's "
                f"({t['fd_all_unconditional_n1000']:.2f}, same run, n = {base['n']:,}) | {t['fd_all_w0_n1000']:.2f} "
                f"(n = 1,000: 100 of each digit; {t['fd_ratio']:.2f}×) | {_mark(t['fd_met'])} |",
                "", f"The unconditional checkpoint's recorded quality ({base['recorded']['n_samples']:,} samples, "
                f"scored on another machine) is FD {base['recorded']['fd']:.2f} and {_pct(base['recorded']['confidence'])} "
                f"confident. {targets['machine']}; {targets['date']}. Rerun: "
                + "; ".join(f"`{cmd}`" for cmd in targets["commands"]) + ".", ""]
    if sweep is None:
        return out + ["The guidance sweep is not measured yet: `python benchmarks/evaluate_conditional.py --w 0 0.5 1 2 "
                      "4 8 --per-digit 20 --out conditional_sweep.json`.", ""]
    per = next(iter(sweep["runs"].values()))["n"] // 10
    rv = next(iter(sweep["real_vs_real"].values()))
    out += [f"**The trade-off** ({per} samples per digit, fewer than the targets, {sweep['sampler']}; the same starting "
            "noise for every w):", "",
            "| w | classified as requested | confident | FD to the test digits of that class (mean) | FD to all "
            "test digits | diversity: mean pairwise distance, pixels | ... features |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sweep["runs"].values():
        out.append(f"| {r['w']:g} | {_pct(r['accuracy'])} | {_pct(r['confidence'])} | {r['fd_class_mean']:.2f} | "
                   f"{r['fd_all']:.2f} | {r['diversity_pixels']:.2f} | {r['diversity_features']:.2f} |")
    out.append(f"| held-out real digits, {per} per digit | {_pct(rv['accuracy'])} | {_pct(rv['confidence'])} | "
               f"{rv['fd_class_mean']:.2f} | {rv['fd_all']:.2f} | {rv['diversity_pixels']:.2f} | "
               f"{rv['diversity_features']:.2f} |")
    out += ["", f"With {per} samples per digit in a 128-d feature space the per-class FD is biased upwards; the "
            "last row is what real digits reach at the same n. " + f"{sweep['machine']}; {sweep['date']}. Rerun: "
            + "; ".join(f"`{cmd}`" for cmd in sweep["commands"]) + ".", ""]
    return out


def _threads_of(lines: list[str | None]) -> str:
    """'1 thread, OMP_WAIT_POLICY=PASSIVE' from the runtime_info lines of the copies (distinct ones joined)."""
    found = []
    for line in lines:
        m = re.match(r"torch threads (\d+) \((.*); (OMP_WAIT_POLICY[^)]*|torch was imported[^)]*)\)", line or "")
        text = f"{m.group(1)} thread(s), {m.group(3)}" if m else "not reported"
        if text not in found:
            found.append(text)
    return "; ".join(found)


def section_threads(contention: dict | None, profile: dict | None, loop_cuda: dict | None) -> list[str]:
    """Several kernels on few cores (contention.py), where a CPU step's time goes (profile_step.py), and the
    GPU loop against its bare step (loop_vs_step.py)."""
    out = ["### Several kernels on few cores", ""]
    if contention is None:
        out += _missing("contention.py")
    else:
        c, names = contention, {"dnnl": "`import dnnl` choosing", "torch": "torch's defaults (`DNNL_THREADS=torch`)"}
        out += [f"Quick-mode executions of `{c['chapter']}` on {c['cpus_usable']} CPUs (`contention.py`): one copy "
                f"alone on the idle machine, and {c['copies']} started together. Ideal for {c['copies']}: "
                f"{c['copies']} × the shorter single run = {c['ideal_s']:,.0f} s. Each row gives the threads and wait "
                "policy the copies reported in their first line, as `import dnnl` chose them; while `train` and "
                "`sample` run, a count chosen from the load then moves with it every 2 s.", "",
                "| run | threads, wait policy | wall time | ratio to the ideal |", "|---|---|---:|---:|"]
        for name, p in c["policies"].items():
            out.append(f"| one copy alone, {names[name]} | {_threads_of([p['single_threads']])} | "
                       f"{p['single_s']:,.0f} s | |")
        for name, p in c["policies"].items():
            together = p.get("concurrent")
            if together is None:
                continue
            wall = (f"{together['wall_s']:,.0f} s" if together["wall_s"] else
                    f"> {together['stopped_after_s']:,.0f} s (stopped)")
            ratio = f"{'> ' if p['ratio_is_lower_bound'] else ''}{p['ratio_to_ideal']:.2f}×"
            out.append(f"| {c['copies']} copies at once, {names[name]} | "
                       f"{_threads_of([x['threads'] for x in together['copies']])} | {wall} | {ratio} |")
        verdict = f"Goal ≤ 1.3× with dnnl's choice: {_mark(c['goal_met'])}. " if "goal_met" in c else ""
        alone = {_threads_of([p["single_threads"]]): p["single_s"] for p in c["policies"].values()}
        passive = alone.get(f"{c['cpus_usable']} thread(s), OMP_WAIT_POLICY=PASSIVE")
        default = alone.get(f"{c['cpus_usable']} thread(s), OMP_WAIT_POLICY unset")
        if passive and default:
            verdict += (f"A passive wait policy on all {c['cpus_usable']} CPUs made one copy alone take "
                        f"{passive / default:.2f}× as long as libgomp's default (threads wake up late for each "
                        "parallel region), so `import dnnl` sets it only when it gives torch fewer threads than "
                        "CPUs; on an idle machine torch keeps its defaults. ")
        elif "single_dnnl_over_torch" in c:
            verdict += (f"Alone on the idle machine, dnnl's choice took {c['single_dnnl_over_torch']:.2f}× as long as "
                        "torch's defaults (the goal: a single chapter does not get slower). ")
        out += ["", verdict + _provenance(c), ""]
    out += ["### Where a CPU training step's time goes", ""]
    if profile is None:
        out += _missing("profile_step.py")
    else:
        m = profile["model"]
        out += [f"`profile_step.py`: one `train_step` of the quick preset (channels {tuple(m['channels'])}, "
                f"{m['parameters']:,} parameters, batch {profile['batch_size']}) on {profile['torch_threads']} "
                f"torch threads: {profile['ms_per_step']:,.0f} ms per step without the profiler. Shares of the "
                f"operators' {profile['clock']} over {profile['profiled_steps']} profiled steps (forward and "
                "backward together):", "", "| operators | share | main operators |", "|---|---:|---|"]
        for group, g in profile["groups"].items():
            out.append(f"| {group} | {_pct(g['share'])} | {', '.join(f'`{o}`' for o in g['top_ops'][:3])} |")
        out += ["", _provenance(profile), ""]
    out += ["### The training loop against its bare step (GPU)", ""]
    if loop_cuda is None:
        return out + ["Not measured yet: run `python benchmarks/loop_vs_step.py` on a machine with a CUDA GPU "
                      "(it writes `loop_vs_step_cuda.json`).", ""]
    rows = [f"| {name}, batch {s['batch_size']} | {s['loop']['images_per_s']:,.0f} | {s['bare_step']['images_per_s']:,.0f} "
            f"| {s['loop_over_step']:.2f}× | {s['loop']['peak_memory_mb']:,.0f} MB |" for name, s in loop_cuda["sizes"].items()]
    return out + ["| size | loop images/s | bare step images/s | loop / step | loop peak memory |",
                  "|---|---:|---:|---:|---:|"] + rows + [
        "", f"Goal: {loop_cuda['goal']}: {_mark(loop_cuda['goal_met'])}. " + _provenance(loop_cuda), ""]


def _record(name: str) -> dict | None:
    path = REPO / "dnnl" / "models" / "ddpm" / "weights" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _longer_ablations() -> tuple[dict, ...]:
    """The ablation series of other budgets than 5 minutes (``cpu_ablation.py --minutes M``), shortest first."""
    series = [_load(p.name) for p in RESULTS.glob("cpu_ablation_*min.json")]
    return tuple(sorted(series, key=lambda r: r["minutes"]))


def render() -> str:
    lines = [START, "", "Generated by `python benchmarks/report.py` from `benchmarks/results/*.json`; "
             "every number comes from the script named beside it, with the machine it ran on.", ""]
    lines += section_quality(_load("pretrained_quality.json"),
                             json.loads((REPO / "dnnl/models/ddpm/weights/ddpm_mnist_quick.json").read_text()),
                             _load("quality_budget.json"), _load("quality_budget_candidate.json"),
                             _load("quality_budget_goal.json"))
    lines += section_recipe(_load("cpu_ablation.json"), _longer_ablations())
    lines += section_guidance(_record("ddpm_mnist_cond"), _load("conditional_targets.json"),
                              _load("conditional_sweep.json"))
    lines += section_throughput(_load("throughput.json"))
    lines += section_sampling(_load("sampling_speed.json"))
    lines += section_likelihood(_load("likelihood.json"), _load("likelihood_hybrid.json"))
    lines += section_book(_load("book_time.json"))
    lines += section_threads(_load("contention.json"), _load("profile_step.json"), _load("loop_vs_step_cuda.json"))
    lines += section_gpu(_load("throughput_cuda.json"), _load("full_preset_cuda.json"),
                         _load("sampling_speed_cuda.json"), _load("quality_budget_cuda.json"))
    lines += section_metric()
    lines.append(END)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when README.md is stale")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"README.md has no {START} ... {END} block to fill", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = head + render() + tail
    if args.check:
        if new != text:
            print("README.md's measured numbers differ from benchmarks/results/; run python benchmarks/report.py",
                  file=sys.stderr)
            return 1
        print("README.md matches benchmarks/results/")
        return 0
    README.write_text(new, encoding="utf-8")
    print(f"wrote the measured numbers into {README.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
