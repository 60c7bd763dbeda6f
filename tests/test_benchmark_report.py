"""The README's benchmark sections: generated from benchmarks/results/, and saying what each result means.

These read the results (or small made-up ones) and render the report; they measure nothing.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_helpers import bench_module  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def test_report_compile_payback():
    report = bench_module("report")
    rows = [{"images_per_s": 200.0}, {"images_per_s": 210.0, "first_step_s (compilation)": 100.0}]
    # 210/200 = 1.05: 100 s / (1 - 1/1.05) = 2100 s = 35 min
    assert "pays back after 35 min of training, longer than" in "".join(report._compile_payback(rows))
    rows[1]["images_per_s"] = 400.0  # 2x: 200 s = 3 min
    assert "after 3 min of training, within" in "".join(report._compile_payback(rows))
    rows[1]["images_per_s"] = 190.0
    assert "never pays back" in "".join(report._compile_payback(rows))
    assert report._compile_payback(rows[:1]) == []


def test_report_recipe_section():
    _report_quality = bench_module("_report_quality")
    assert "Not measured yet" in "\n".join(_report_quality.section_recipe(None))
    preset = {"min_snr_gamma": 5.0, "batch_size": 64}
    row = dict(changes={}, sampler="ddpm, 100 strided steps", weights="ema", steps=544, batch_size=128, fd=100.0,
               wall_time_s=297.0,
               fd_over_real_vs_real=12.6, confidence=0.5, date="2026-12-01 19:31 UTC")
    r = {"preset": {"channels": [16, 32, 64], "batch_size": 128, "min_snr_gamma": None, "lr": 0.002,
                    "ema_decay": 0.999, "schedule": "linear", "attention": True}, "minutes": 5, "n_samples": 1000, "sampling_steps": 100, "real_vs_real": {"fd": 7.92}, "machine": "m",
         "command": "c", "rows": {"baseline": row, "min_snr_5": dict(row, changes={"min_snr_gamma": 5.0}, fd=80.0),
                                  "no_ema": dict(row, weights="raw", fd=150.0),
                                  "preset": dict(row, changes=preset, parent="min_snr_5", fd=60.0),
                                  "preset_wide": dict(row, changes={**preset, "channels": [24, 48, 96]},
                                                      parent="preset", fd=45.0)}}
    text = "\n".join(_report_quality.section_recipe(r))
    assert "| `baseline` | none | 544 × 128 | 5.0 min | 100.00 | 12.60 | 50.0 % | reference |" in text
    assert ("| `min_snr_5` | min_snr_gamma = 5.0 | 544 × 128 | 5.0 min | 80.00 | 12.60 | 50.0 % | 0.80× `baseline` |"
            in text)
    # a second-block row names only what it changes in its parent, and is compared with that parent
    assert "| `preset` | batch_size = 64 | 544 × 128 | 5.0 min | 60.00 | 12.60 | 50.0 % | 0.75× `min_snr_5` |" in text
    assert "| `preset_wide` | channels = (24, 48, 96) |" in text and "| 0.75× `preset` |" in text
    assert "raw weights (no EMA)" in text and "1.50× `baseline`" in text and "**5 minutes**" in text
    # no row trained the quick preset as it ships (it also took the cosine schedule): the report says so
    assert "No row trains the quick preset as it ships now." in text and "(**ships**)" not in text
    # the row that did is marked, and only that row
    r["rows"]["preset_cosine"] = dict(row, changes={**preset, "schedule": "cosine"}, parent="preset", fd=45.0)
    shipped = {**preset, "schedule": "cosine", "attention": False}
    r["rows"]["preset_cosine_no_attention"] = dict(row, changes=shipped, parent="preset_cosine", fd=40.0)
    r["rows"]["preset_lr"] = dict(row, changes={**preset, "lr": 4e-3}, parent="preset", fd=70.0)
    text = "\n".join(_report_quality.section_recipe(r))
    assert "| `preset_cosine_no_attention` (**ships**) | attention = False |" in text
    assert text.count("(**ships**)") == 1 and "The quick preset ships as `preset_cosine_no_attention`" in text
    # a record that leaves out a setting the preset has of its own cannot be the preset as it ships
    del r["preset"]["attention"]
    r["rows"]["preset_cosine_no_attention"]["changes"] = {**preset, "schedule": "cosine"}
    assert "(**ships**)" not in "\n".join(_report_quality.section_recipe(r))
    r["preset"]["attention"] = True
    r["rows"]["preset_cosine_no_attention"]["changes"] = shipped
    # a seed row sizes single-seed noise; a row that took less time for its parent's steps says why
    r["rows"]["preset_seed_1"] = dict(row, changes={**preset, "seed": 1}, parent="preset", fd=54.0,
                                      wall_time_s=180.0)
    text = "\n".join(_report_quality.section_recipe(r))
    assert "`preset_seed_1`: the recipe of `preset` with another seed" in text and "scores 0.90× its FD" in text
    assert "`preset_seed_1` ran their steps in less time than the budget" in text
    assert "Speed probes" not in text and "in more time than the budget" not in text
    # a row set by three probe pairs lists them, and one that overran the budget says its comparison rests on them
    pairs = [{"parent": 100.0, "row": 151.0, "ratio": 1.51}, {"parent": 100.0, "row": 73.0, "ratio": 0.73},
             {"parent": 100.0, "row": 111.0, "ratio": 1.11}]
    r["rows"]["preset_wide"].update(speed_probe={"ratio": 1.11, "probe_steps": 30, "pairs": pairs}, wall_time_s=380.0)
    text = "\n".join(_report_quality.section_recipe(r))
    assert "`preset_wide` 1.51, 0.73, 1.11 (median 1.11)" in text and "ranged from 0.73 to 1.51" in text
    assert "`preset_wide` ran their steps in more time than the budget" in text
    assert "holds only as far as that probe's speed ratio does" in text
    # a scoring row that retrained the run it reuses says whether it scored the same network, and its time,
    # the reused row's steps, is not a budget overrun
    r["rows"]["fixed_large_scoring"] = dict(row, changes=shipped, parent="preset_cosine_no_attention", fd=44.0,
                                            sampler="ddpm with σ² = β, 100 strided steps", final_loss=0.0262,
                                            reuses="preset_cosine_no_attention", retrained_alike=True,
                                            wall_time_s=430.0)
    r["rows"]["preset_cosine_no_attention"]["final_loss"] = 0.0262
    text = "\n".join(_report_quality.section_recipe(r))
    assert "| `fixed_large_scoring` | scored with ddpm with σ² = β, 100 strided steps |" in text
    assert "| 1.10× `preset_cosine_no_attention` |" in text
    assert "ended at the same loss (0.0262), so it scores the same network" in text
    assert "the rows compared with it (`fixed_large_scoring`) change the preset as it ships." in text
    assert "`fixed_large_scoring` ran their steps" not in text
    r["rows"]["fixed_large_scoring"].update(retrained_alike=False, final_loss=0.0301)
    text = "\n".join(_report_quality.section_recipe(r))
    assert "ended at another loss (0.0301 against 0.0262)" in text and "the two rows do not compare" in text
    # it trained its parent's steps, so a slower machine does not put the comparison in doubt
    assert "`fixed_large_scoring` ran their steps in more time than the budget, this machine running slower" in text
    assert "they train the same steps as the rows they are compared with, so the comparison holds" in text
    assert "`preset_wide` ran their steps in more time than the budget: this machine ran slower" in text


def test_report_recipe_section_adds_a_longer_series_after_the_five_minute_table():
    """A series of another budget gets its own table after the 5-minute one; its first row is the reference."""
    _report_quality = bench_module("_report_quality")
    preset = {"channels": [16, 32, 64], "batch_size": 128, "min_snr_gamma": None, "lr": 0.002, "ema_decay": 0.999,
              "schedule": "linear", "attention": True}
    row = dict(changes={}, sampler="ddpm, 100 strided steps", weights="ema", steps=544, batch_size=128, fd=100.0,
               wall_time_s=297.0, fd_over_real_vs_real=12.6, confidence=0.5, date="2026-12-01 19:31 UTC")
    five = {"preset": preset, "minutes": 5, "n_samples": 1000, "sampling_steps": 100, "real_vs_real": {"fd": 7.92},
            "machine": "m", "command": "c5", "rows": {"baseline": row}}
    ships = {"batch_size": 64, "min_snr_gamma": 5.0, "schedule": "cosine", "attention": False}
    longer = {**five, "minutes": 14, "start": "preset_cosine_no_attention", "command": "c14",
              "rows": {"preset_cosine_no_attention": dict(row, changes=ships, parent=None, steps=7000,
                                                          batch_size=64, wall_time_s=840.0, fd=18.0),
                       "preset_cosine_no_attention_deep": dict(row, changes={**ships, "num_res_blocks": 2},
                                                               parent="preset_cosine_no_attention", steps=4700,
                                                               batch_size=64, wall_time_s=850.0, fd=16.2)}}
    text = "\n".join(_report_quality.section_recipe(five, (longer,)))
    assert text.index("Rerun: `c5`") < text.index("**14 minutes a row**") < text.index("Rerun: `c14`")
    assert "starting from `preset_cosine_no_attention`, the quick preset as it ships, whose steps" in text
    assert ("| `preset_cosine_no_attention` (**ships**) | batch_size = 64, min_snr_gamma = 5.0, schedule = cosine, "
            "attention = False | 7,000 × 64 | 14.0 min | 18.00 |") in text
    assert "| `preset_cosine_no_attention_deep` | num_res_blocks = 2 | 4,700 × 64 |" in text
    assert "| 0.90× `preset_cosine_no_attention` |" in text and text.count("| reference |") == 2
    # its rows are timed against its own budget, not the five minutes of the first table
    assert "ran their steps in more time than the budget" not in text
    # a series whose every change of cost was set by three probe pairs does not speak of rows set from one
    pairs = [{"parent": 100.0, "row": 66.0, "ratio": 0.66}] * 3
    longer["rows"]["preset_cosine_no_attention_deep"]["speed_probe"] = {"ratio": 0.66, "probe_steps": 30,
                                                                        "pairs": pairs}
    text = "\n".join(_report_quality.section_recipe(five, (longer,)))
    assert "which is why the median of three sets the steps." in text and "set from one pair" not in text


def test_report_recipe_section_says_how_far_an_ema_row_differs_from_its_parent():
    """The EMA warm-up hides a lower decay in a short run; a longer one says over how many steps the two differ."""
    _report_quality = bench_module("_report_quality")
    preset = {"channels": [16, 32, 64], "batch_size": 64, "min_snr_gamma": 5.0, "lr": 0.002, "ema_decay": 0.999,
              "schedule": "cosine", "attention": False}
    row = dict(changes={}, sampler="ddpm, 100 strided steps", weights="ema", steps=1183, batch_size=64, fd=76.0,
               wall_time_s=300.0, fd_over_real_vs_real=9.6, confidence=0.5, date="2026-12-01 19:31 UTC",
               ema_decay_at_end=0.99246)
    r = {"preset": preset, "minutes": 5, "n_samples": 1000, "sampling_steps": 100, "real_vs_real": {"fd": 7.92},
         "machine": "m", "command": "c", "rows": {"baseline": row, "ema": dict(row, changes={"ema_decay": 0.995})}}
    text = "\n".join(_report_quality.section_recipe(r))
    assert "`ema`: over 1,183 steps the EMA's warm-up" in text
    assert "stays below both decays (it ends at 0.99246)" in text
    # 4,147 steps: the warm-up passes 0.995 after 1,790 updates, while 0.999 is never reached
    longer = dict(row, steps=4147, ema_decay_at_end=0.99783)
    r["rows"] = {"baseline": longer, "ema": dict(longer, changes={"ema_decay": 0.995}, ema_decay_at_end=0.995)}
    text = "\n".join(_report_quality.section_recipe(r))
    assert ("`ema`: over 4,147 steps the EMA's warm-up, min(decay, (1 + n)/(10 + n)), reaches the lower decay, "
            "0.995, after 1,790 updates and ends at 0.99783 for the other, so the two averages differ over the last "
            "2,357 steps only.") in text
    assert "stays below both decays" not in text


def test_report_quality_section_marks_the_cpu_goals():
    _report_quality = bench_module("_report_quality")
    one = dict(steps=3200, batch_size=64, wall_time_s=870.0, fd=14.0, confidence=0.86, fd_over_real_vs_real=1.77,
               model="dnnl UNet")
    budget = {"budget": "the wall time of the dnnl quick preset", "recipe": {"batch_size": 64, "min_snr_gamma": 5.0},
              "sampler": "DDPM", "n_samples": 1000, "real_vs_real": {"fd": 7.92}, "target_fd_ratio": 0.6,
              "targets_dnnl": {"minutes": 15, "fd_over_real_vs_real": 2.0, "confidence": 0.85},
              "fd_ratio_dnnl_over_diffusers": 0.5, "fd_ratio_dnnl_over_diffusers_tutorial": 0.25,
              "machine": "m", "date": "d", "command": "c",
              "runs": {"dnnl": one, "diffusers": dict(one, fd=28.0, probe_images_per_sec=170.0, model="UNet2DModel"),
                       "diffusers_tutorial": dict(one, fd=56.0, steps=9000, batch_size=16, model="tutorial",
                                                  recipe="diffusers tutorial: AdamW lr 0.0001, no EMA")}}
    text = "\n".join(_report_quality.section_quality(None, None, budget))
    assert "goal within 15 min, ≤ 2× and ≥ 85.0 %: met" in text and "(target ≤ 0.6: met)" in text
    assert "ratio **0.25**" in text and "AdamW lr 0.0001, no EMA; 9,000 steps" in text
    slow = dict(budget, runs=dict(budget["runs"], dnnl=dict(one, wall_time_s=901.0)))
    assert "≥ 85.0 %: **not met**" in "\n".join(_report_quality.section_quality(None, None, slow))
    # a candidate recipe (quality_budget.py --save-as quality_budget_candidate) is shown beside, not over, the preset
    candidate = dict(budget, recipe_changes={"schedule": "cosine"}, runs={"dnnl": dict(one, fd=12.0),
                                                                          "diffusers": budget["runs"]["diffusers"]})
    text = "\n".join(_report_quality.section_quality(None, None, budget, candidate))
    assert "| dnnl UNet | 3,200 steps of batch 64, 14.5 min | 14.00 |" in text
    assert "| dnnl UNet (*candidate*) | 3,200 steps of batch 64, 14.5 min | 12.00 |" in text
    assert "**Candidate recipe** (the rows marked *candidate*: the quick preset with schedule = cosine" in text
    # once the preset adopts one of a candidate's changes, the note names only the others as the candidate's
    adopted = dict(budget, recipe=dict(budget["recipe"], schedule="cosine"))
    both = dict(candidate, recipe_changes={"schedule": "cosine", "attention": False})
    text = "\n".join(_report_quality.section_quality(None, None, adopted, both))
    assert "the quick preset with attention = False, which the 5-minute ablation" in text
    assert "measured before the preset adopted schedule = cosine, which it set as well" in text
    # a run that spends the goal's time on the preset's recipe is shown beside the preset's own steps
    goal_run = dict(budget, budget="14 minutes each",
                    runs={k: dict(v, budget_s=840.0, probe_images_per_sec=500.0) for k, v in budget["runs"].items()})
    text = "\n".join(_report_quality.section_quality(None, None, budget, None, goal_run))
    assert "| dnnl UNet (*14 min*) | 3,200 steps of batch 64, 14.5 min |" in text
    assert "each model trained for 14 minutes instead of the preset's own 3,200 steps" in text
    assert "(500 and 500 images/s in a short probe)" in text
    # once it has adopted them all, the candidate is not called one the preset has not adopted
    adopted = dict(budget, recipe=dict(budget["recipe"], schedule="cosine", attention=False))
    text = "\n".join(_report_quality.section_quality(None, None, adopted, both))
    assert "the quick preset with nothing" not in text and "not adopted by the preset" not in text
    assert "the recipe the preset has adopted since (schedule = cosine, attention = False)" in text


def test_readme_numbers_are_generated_from_the_results():
    proc = subprocess.run([sys.executable, str(BENCH / "report.py"), "--check"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def test_report_gpu_section():
    report = bench_module("report")
    assert "Not measured yet" in "\n".join(report.section_gpu(None, None, None, None))
    full = {"preset": {"channels": [64, 128, 256], "batch_size": 128}, "parameters": 10, "precision": "bf16",
            "images_per_s": 3740.2, "images_per_s_note": "median", "peak_memory_mb": 1727.6, "target": "FD <= 3x",
            "target_fd": 23.77, "reached": False, "steps_to_target": None, "time_to_target_s": None,
            "final": {"step": 4000, "fd": 30.5, "confidence": 0.5}, "sampler": "DDPM", "machine": "m", "date": "d",
            "command": "c"}
    text = "\n".join(report.section_gpu(None, full, None, None))
    assert "3,740 images/s" in text and "1,728 MB" in text and "not reached in 4,000 steps" in text
    text = "\n".join(report.section_gpu(None, dict(full, reached=True, steps_to_target=2000, time_to_target_s=64.7),
                                         None, None))
    assert "reached after 2,000 steps, **65 s**" in text


def test_the_quick_preset_as_it_ships_was_measured_by_an_ablation_row():
    """A change to TrainConfig.quick() needs its own row in benchmarks/cpu_ablation.py, measured."""
    _report_quality = bench_module("_report_quality")
    ablation = json.loads((ROOT / "benchmarks" / "results" / "cpu_ablation.json").read_text())
    assert _report_quality._ships(ablation) is not None, "no cpu_ablation row trains the quick preset as it ships"


def test_the_book_time_section_names_pages_its_record_lacks():
    """A record made before the book gained pages must not be reported as the time of every page."""
    report = bench_module("report")
    record = {"pages_seconds": {"index": 2.0, "01-forward": 11.0}, "total_minutes": 0.2, "target_minutes": 10,
              "mode": "quick", "machine": "m", "date": "d", "command": "c"}
    text = "\n".join(report.section_book(record, ["index", "01-forward", "06-ddim"]))
    assert "Not measured: 06-ddim" in text and "Every page" not in text and "minutes** in all" not in text
    text = "\n".join(report.section_book(record, ["index", "01-forward"]))
    assert "Every page in quick: **0.2 minutes** in all" in text and "Not measured" not in text


def test_the_book_time_record_covers_every_page_of_the_book():
    """book_time.json is rerun when a page is added: the README's book time is then the whole book's."""
    report = bench_module("report")
    record = json.loads((ROOT / "benchmarks" / "results" / "book_time.json").read_text())
    lacking = [p for p in report.book_pages() if p not in record["pages_seconds"]]
    assert not lacking, f"book_time.json lacks {lacking}: rerun python benchmarks/book_time.py"
