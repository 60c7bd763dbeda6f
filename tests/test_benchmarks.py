"""Every script in benchmarks/ runs in a tiny smoke configuration, writes nothing into benchmarks/results/,
and the README's measured numbers are exactly what benchmarks/results/ holds.

The real measurements are slow (minutes to an hour) and stay out of the test command; these tests only
prove that the scripts work, so a reader who reruns one gets a result and not a traceback.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_helpers import bench_module  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"


def _snapshot() -> dict[str, str]:
    """Content hashes of every committed result, to prove a smoke run leaves them alone."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(RESULTS.glob("*")) if p.is_file()}


def _run(script: str, *args: str, mnist_root: Path, tmp_path: Path) -> dict | None:
    env = {**os.environ, "DNNL_DATA": str(mnist_root), "DNNL_OUT": str(tmp_path / "out"), "MPLBACKEND": "Agg",
           "DNNL_MODE": "quick"}
    env.pop("DNNL_DEVICE", None)
    before = _snapshot()
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert _snapshot() == before, f"{script} changed benchmarks/results/ in a smoke run"
    out = proc.stdout
    first = out.find("\n{")  # every script ends by printing its result as indented JSON
    if first < 0 and out.startswith("{"):
        first = 0
    return json.loads(out[first:]) if first >= 0 else None


@pytest.fixture
def run(mnist_root, tmp_path):
    return lambda script, *args: _run(script, *args, mnist_root=mnist_root, tmp_path=tmp_path)


def test_throughput_smoke(run):
    pytest.importorskip("diffusers")
    r = run("throughput.py", "--smoke")
    assert r["smoke"] is True
    for size in ("quick", "full"):
        c = r["comparisons"][size]
        assert c["dnnl"]["images_per_s"] > 0 and c["diffusers"]["images_per_s"] > 0
        # the matched UNet2DModel is within 10 % of our parameter count
        assert abs(c["diffusers"]["parameters"] / c["dnnl"]["parameters"] - 1) <= 0.10
        assert c["dnnl"]["gflops_per_image"] > 0
        assert math.isclose(c["ratio"], c["dnnl"]["images_per_s"] / c["diffusers"]["images_per_s"], rel_tol=2e-2)
    assert [row["change"].split(" ")[0] for row in r["ablation_quick"]][0] == "textbook"
    # the upsampling change really removes FLOPs: the ablation's first row costs more per image
    assert r["ablation_quick"][0]["gflops_per_image"] > r["comparisons"]["quick"]["dnnl"]["gflops_per_image"]
    assert r["matmul_peak_gflops"]["fp32"] > 0
    # bf16 autocast is timed on the training step wherever the CPU's bf16 matmul beats fp32, never guessed
    peak, ratio = r["matmul_peak_gflops"], r["bf16_autocast_vs_fp32"]
    if peak["bf16"] > peak["fp32"]:
        assert ratio > 0 and f"ran at {ratio:.2f}× the fp32 step" in r["bf16_autocast"]
    else:
        assert ratio is None and r["bf16_autocast"] == "not used: bf16 matmul is slower than fp32 on this CPU"


def test_quality_budget_smoke(run):
    pytest.importorskip("diffusers")
    r = run("quality_budget.py", "--smoke", "--out", "runs", "--set", "min_snr_gamma=5", "lr=0.003", "--tutorial",
            "--save-as", "quality_budget_candidate")
    assert set(r["runs"]) == {"dnnl", "diffusers", "diffusers_tutorial"}
    assert r["recipe_changes"] == {"min_snr_gamma": 5, "lr": 0.003} and r["recipe"]["min_snr_gamma"] == 5.0
    assert r["command"].endswith("--set min_snr_gamma=5 lr=0.003 --tutorial --save-as quality_budget_candidate")
    assert r["runs"]["dnnl"]["model"].startswith("dnnl UNet, quick preset, min_snr_gamma 5, lr 0.003, channels")
    assert r["runs"]["diffusers_tutorial"]["batch_size"] == 16 and "no EMA" in r["runs"]["diffusers_tutorial"]["recipe"]
    # each network is sampled with the schedule it trained on: the tutorial's DDPMScheduler is linear whatever
    # the preset's schedule is
    assert r["recipe"]["schedule"] == "cosine"
    assert [r["runs"][k]["schedule"] for k in ("dnnl", "diffusers", "diffusers_tutorial")] == ["cosine", "cosine",
                                                                                               "linear"]
    assert math.isclose(r["fd_ratio_dnnl_over_diffusers_tutorial"],
                        r["runs"]["dnnl"]["fd"] / r["runs"]["diffusers_tutorial"]["fd"], rel_tol=1e-2)
    for name, one in r["runs"].items():
        assert one["steps"] >= 1 and one["wall_time_s"] > 0, name
        assert math.isfinite(one["fd"]) and 0 <= one["confidence"] <= 1, name
    assert math.isclose(r["fd_ratio_dnnl_over_diffusers"], r["runs"]["dnnl"]["fd"] / r["runs"]["diffusers"]["fd"],
                        rel_tol=1e-2)


def test_quality_budget_refuses_an_unknown_recipe_field(run, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "quality_budget.py"), "--smoke", "--set", "lrr=1"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and "KEY a TrainConfig field (got 'lrr=1')" in proc.stderr
    proc = subprocess.run([sys.executable, str(BENCH / "quality_budget.py"), "--smoke", "--save-as", "../elsewhere"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and "--save-as takes a plain file name" in proc.stderr


def test_cpu_ablation_smoke(run, tmp_path):
    r = run("cpu_ablation.py", "--smoke", "--out", "runs", "--only", "baseline", "no_ema", "ddim_scoring", "min_snr_5",
            "batch_64", "preset", "preset_cosine", "preset_cosine_no_attention", "fixed_large_scoring")
    assert list(r["rows"]) == ["baseline", "ddim_scoring", "no_ema", "min_snr_5", "batch_64", "preset", "preset_cosine",
                               "preset_cosine_no_attention", "fixed_large_scoring"]
    rows = r["rows"]
    # the scoring rows reuse the baseline's training: the same steps, only the sampler or the weights differ
    assert rows["no_ema"]["steps"] == rows["ddim_scoring"]["steps"] == rows["baseline"]["steps"] >= 1
    assert rows["no_ema"]["weights"] == "raw" and rows["ddim_scoring"]["sampler"].startswith("ddim")
    assert rows["no_ema"]["fd"] != rows["baseline"]["fd"]
    assert rows["min_snr_5"]["changes"] == {"min_snr_gamma": 5.0}
    # the second block: `preset` (batch 64 + min-SNR-5) costs what batch_64 costs, so it trains batch_64's steps;
    # a cost-free change to it (the schedule) trains the preset's steps
    assert rows["preset"]["parent"] == "batch_64" and rows["preset_cosine"]["parent"] == "preset"
    assert rows["preset"]["steps"] == rows["batch_64"]["steps"] == rows["preset_cosine"]["steps"]
    assert rows["preset_cosine"]["changes"] == {"batch_size": 64, "min_snr_gamma": 5.0, "schedule": "cosine"}
    # a change of cost is probed against its parent, and the probe is kept with the row's run and its record
    probe = rows["batch_64"]["speed_probe"]
    assert probe == json.loads((tmp_path / "runs" / "batch_64" / "speed_probe.json").read_text())
    assert len(probe["pairs"]) == 1 and probe["ratio"] == probe["pairs"][0]["ratio"] > 0
    assert rows["preset"]["speed_probe"] is None and rows["baseline"]["speed_probe"] is None
    # the variance row scores the shipped preset's training with σ² = β: the same run, another sampler
    large, shipped = rows["fixed_large_scoring"], rows["preset_cosine_no_attention"]
    assert large["reuses"] == large["parent"] == "preset_cosine_no_attention" and "retrained_alike" not in large
    assert large["steps"] == shipped["steps"] and large["changes"] == shipped["changes"]
    assert large["sampler"] == "ddpm with σ² = β, 2 strided steps" and shipped["sampler"] == "ddpm, 2 strided steps"
    assert large["fd"] != shipped["fd"]
    for name, one in rows.items():
        assert math.isfinite(one["fd"]) and 0 <= one["confidence"] <= 1, name


def test_cpu_ablation_speed_probe_alternates_and_takes_the_median(monkeypatch, tmp_path):
    """One disturbed probe (here the row's first) must not set a row's steps, a drift of the machine must fall
    on both sides, and a resumed row keeps the ratio it started with instead of probing again."""
    ablation = bench_module("cpu_ablation")
    from dnnl.models.ddpm import TrainConfig

    row = TrainConfig.quick(attention=False, out_dir=str(tmp_path / "row"))
    parent = TrainConfig.quick(attention=True, out_dir=str(tmp_path / "parent"))
    rates = iter([100.0, 80.0, 104.0, 100.0, 100.0, 103.0])  # parent, row | row, parent | parent, row
    order = []
    monkeypatch.setattr(ablation, "measured_rate",
                        lambda config, build, steps: order.append(config.attention) or next(rates))
    probe = ablation.speed_ratio(row, parent, seed=0, probe_steps=30, rounds=3)
    assert order == [True, False, False, True, True, False]
    assert [p["ratio"] for p in probe["pairs"]] == [0.8, 1.04, 1.03] and probe["ratio"] == 1.03
    assert json.loads((tmp_path / "row" / "speed_probe.json").read_text()) == probe
    monkeypatch.setattr(ablation, "measured_rate", lambda *a: pytest.fail("a kept probe was measured again"))
    assert ablation.speed_ratio(row, parent, seed=0, probe_steps=30, rounds=3) == probe


@pytest.mark.parametrize("kept,loss,alike", [(True, 0.6, None), (False, 0.5, True), (False, 0.6, False)])
def test_cpu_ablation_a_retrained_scoring_row_records_whether_it_is_the_same_run(monkeypatch, tmp_path, kept, loss,
                                                                                  alike):
    """A scoring row whose reused run folder is gone retrains it; it records whether the retrained run ended at
    the reused row's loss. A row that found the run kept records nothing."""
    ablation = bench_module("cpu_ablation")
    from dnnl.models.ddpm import TrainConfig

    if kept:
        (tmp_path / "preset_cosine_no_attention").mkdir()
        (tmp_path / "preset_cosine_no_attention" / ablation.CHECKPOINT_NAME).write_bytes(b"")
    monkeypatch.setattr(ablation, "train_one", lambda name, config, build: (lambda x, t: x, {"steps": 5, "final_loss": loss}))
    seen = {}
    monkeypatch.setattr(ablation, "score_samples",
                        lambda *a, **k: seen.update(k) or (None, {"fd": 1.0, "fd_over_real_vs_real": 1.0,
                                                                      "confidence": 0.5}))
    args = argparse.Namespace(out=str(tmp_path), seed=0, smoke=True, n=2, steps=2, reference=None, calib={"fd": 1.0},
                              start="baseline")
    rows = {"preset_cosine_no_attention": {"probe_images_per_sec": 100.0, "steps": 5, "final_loss": 0.5}}
    record = ablation.run_row("fixed_large_scoring", args, TrainConfig.quick(**ablation.BASELINE), rows)
    assert record.get("retrained_alike") is alike and record["steps"] == 5  # the reused row's steps
    assert seen["variance_type"] == "fixed_large" and record["sampler"] == "ddpm with σ² = β, 2 strided steps"


def test_cpu_ablation_scoring_row_needs_its_training_row(mnist_root, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "cpu_ablation.py"), "--smoke", "--only", "no_ema", "--out",
                           str(tmp_path / "runs")], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "Agg", "DNNL_DATA": str(mnist_root)})
    assert proc.returncode != 0 and "measure 'baseline' first" in proc.stderr


def test_cpu_ablation_a_series_can_start_from_the_shipped_row(run, tmp_path):
    """A longer budget starts at the preset as it ships: that row is probed as the baseline is, and the rows
    compared with it keep their one change; such a series is kept in a file of its own."""
    ships, deep = "preset_cosine_no_attention", "preset_cosine_no_attention_deep"
    r = run("cpu_ablation.py", "--smoke", "--out", "runs", "--from", ships, "--only", ships, deep)
    assert list(r["rows"]) == [ships, deep] and r["start"] == ships
    assert r["command"].endswith(f"--from {ships}")
    assert r["rows"][ships]["parent"] is None and r["rows"][ships]["speed_probe"] is None
    assert r["rows"][deep]["parent"] == ships and r["rows"][deep]["speed_probe"]["ratio"] > 0
    ablation = bench_module("cpu_ablation")
    assert ablation.out_name(5) == "cpu_ablation.json" and ablation.out_name(14) == "cpu_ablation_14min.json"
    assert [n for n in ablation.VARIANTS if ablation.descends(n, ships)][:1] == [ships]
    assert not ablation.descends("preset", ships) and ablation.descends(deep, "baseline")


def test_cpu_ablation_refuses_a_row_outside_the_series(mnist_root, tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "cpu_ablation.py"), "--smoke", "--from",
                           "preset_cosine_no_attention", "--only", "preset", "--out", str(tmp_path / "runs")],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "Agg", "DNNL_DATA": str(mnist_root)})
    assert proc.returncode == 2
    assert "--only preset: not compared, one change at a time, with --from preset_cosine_no_attention" in proc.stderr


def test_sampling_speed_smoke(run):
    pytest.importorskip("diffusers")
    r = run("sampling_speed.py", "--smoke")
    assert len(r["rows"]) == 3
    for row in r["rows"].values():
        assert all(v["images_per_s"] > 0 for v in row.values())


def test_likelihood_smoke(run):
    r = run("likelihood.py", "--smoke")
    t = r["terms_bits_per_dim"]
    assert r["n_images"] == 2
    assert math.isclose(r["bits_per_dim"], sum(t.values()), rel_tol=1e-3, abs_tol=2e-4)
    assert 0 < r["bits_per_dim"] < 8  # a bound in bits per 8-bit pixel
    b = r["best_fixed_variances"]
    assert 0 < b["bits_per_dim"] < 8 and b["largest sigma*^2 / beta_tilde"] >= 1  # σ*² = β̃ + a square
    assert math.isclose(b["gain_over_fixed"], r["bits_per_dim"] - b["bits_per_dim"], abs_tol=2e-4)
    assert len(b["decoder_L0_by_width"]) == 6 and all(v > 0 for v in b["decoder_L0_by_width"].values())


def test_likelihood_smoke_of_the_learned_variances_beside_their_start(run):
    r = run("likelihood.py", "--smoke", "--model", "ddpm_mnist_hybrid")
    base = r["against_the_checkpoint_it_started_from"]
    assert r["variances"].startswith("learned") and r["best_fixed_variances"] is None
    assert base["checkpoint"] == "ddpm_mnist_quick" and 0 < base["bits_per_dim"] < 8
    assert math.isclose(base["gain"], base["bits_per_dim"] - r["bits_per_dim"], abs_tol=2e-4)  # the same draws
    assert math.isclose(base["gain"], base["decoder_gain"] + base["kl_gain"], abs_tol=5e-4)
    assert r["command"].endswith("--model ddpm_mnist_hybrid")


def test_train_hybrid_smoke(run, tmp_path):
    r = run("train_hybrid.py", "--steps", "2", "--batch-size", "16", "--out", str(tmp_path / "run"),
            "--weights-dir", str(tmp_path / "w"), "--no-progress")
    assert r["steps"] == 2 and r["model"]["out_channels"] == 2 and r["config"]["learn_variance"]
    assert r["config"]["init_from"] == "dnnl/models/ddpm/weights/ddpm_mnist_quick.pt" and "L_hybrid" in r["final_loss_note"]
    assert (tmp_path / "w" / "ddpm_mnist_hybrid.pt").is_file() and r["command"].startswith("python benchmarks/train_hybrid.py")


def test_book_time_smoke(run):
    r = run("book_time.py", "--only", "index")
    assert list(r["pages_seconds"]) == ["index"] and r["total_seconds"] > 0


def test_evaluate_pretrained_smoke(run, tmp_path):
    r = run("evaluate_pretrained.py", "--n", "16", "--steps", "2", "--batch-size", "8", "--no-update",
            "--out", str(tmp_path / "q.json"))
    assert r["quality"]["n_samples"] == 16 and (tmp_path / "q.png").is_file()


def test_train_pretrained_smoke(run, tmp_path):
    r = run("train_pretrained.py", "--steps", "2", "--out", str(tmp_path / "run"), "--weights-dir",
            str(tmp_path / "w"), "--sample-every", "0", "--no-progress")
    assert r["steps"] == 2 and (tmp_path / "w" / "ddpm_mnist_quick.pt").is_file()


def test_train_pretrained_batch_size_is_recorded(run, tmp_path):
    r = run("train_pretrained.py", "--steps", "1", "--batch-size", "16", "--out", str(tmp_path / "run"),
            "--weights-dir", str(tmp_path / "w"), "--sample-every", "0", "--no-progress")
    assert r["config"]["batch_size"] == 16 and r["images_seen"] == 16
    assert r["command"].endswith("--batch-size 16")  # the record reruns what was trained


def test_full_preset_smoke(run):
    r = run("full_preset.py", "--smoke", "--out", "runs")
    steps = [row["step"] for row in r["scores"]]
    assert steps == [2, 4]  # scored after every segment, up to the (smoke) preset's steps
    walls = [row["train_wall_s"] for row in r["scores"]]
    assert walls == sorted(walls)  # resumed segments add up to one run's clock
    assert all(math.isfinite(row["fd"]) and 0 <= row["confidence"] <= 1 for row in r["scores"])
    # a smoke network cannot reach 3x real-vs-real, and then no time to target is claimed
    assert r["reached"] is False and r["time_to_target_s"] is None and r["steps_to_target"] is None
    assert math.isclose(r["target_fd"], 3 * r["real_vs_real"]["fd"], rel_tol=1e-3)
    assert r["images_per_s"] > 0 and r["final"]["step"] == 4


def test_train_classifier_smoke(run, tmp_path):
    r = run("train_classifier.py", "--smoke", "--out", str(tmp_path / "clf.pt"))
    assert r["epochs"] == 1 and (tmp_path / "clf.pt").is_file()


def test_metric_calibration_smoke(run, tmp_path):
    r = run("metric_calibration.py", "--sizes", "256", "--out", str(tmp_path / "calib.json"))
    assert r["real_vs_real"]["256"]["fd"] > 0


def test_save_result_writes_atomically_where_asked_and_prints_the_json(tmp_path, capsys):
    m = bench_module("_machine")
    prov = m.provenance()
    assert set(prov) == {"machine", "torch", "date"} and prov["date"].endswith(" UTC") and len(prov["date"]) == 20
    result = {"x": 1.5, **prov}
    assert m.save_result(tmp_path / "sub" / "r.json", result) == result
    assert json.loads((tmp_path / "sub" / "r.json").read_text()) == result
    assert json.loads(capsys.readouterr().out) == result
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["r.json"]  # no temp file left
    m.save_result(tmp_path / "not.json", result, write=False)
    assert not (tmp_path / "not.json").exists()


def test_every_script_takes_provenance_and_saving_from_machine_py():
    """One date format, one results path, one atomic writer: no script writes them by hand."""
    hand_made = ("strftime(", "write_text(json.dumps", '"benchmarks" / "results"', "with_suffix(\".json.tmp\")")
    for script in sorted(BENCH.glob("*.py")):
        if script.name in ("_machine.py", "report.py"):  # the helper itself; the reader of the results
            continue
        text = script.read_text()
        found = [h for h in hand_made if h in text]
        assert not found, f"{script.name} does by hand what benchmarks/_machine.py does: {found}"


def test_train_conditional_smoke(run, tmp_path):
    r = run("train_conditional.py", "--smoke", "--out", str(tmp_path / "run"), "--weights-dir", str(tmp_path / "w"),
            "--no-progress")
    assert r["steps"] == 4 and r["model"]["num_classes"] == 10 and r["status"] == "final"
    assert r["init_from"] == "dnnl/models/ddpm/weights/ddpm_mnist_quick.pt" and "zero" in r["init_note"]
    assert (tmp_path / "w" / "ddpm_mnist_cond.pt").is_file() and len(r["segments"]) == 1
    # a stretch stopped early resumes: the record then says it is interim, and counts both stretches
    r = run("train_conditional.py", "--smoke", "--until", "2", "--out", str(tmp_path / "run2"), "--weights-dir",
            str(tmp_path / "w2"), "--no-progress")
    assert r["steps"] == 2 and r["status"].startswith("interim")
    r = run("train_conditional.py", "--smoke", "--out", str(tmp_path / "run2"), "--weights-dir",
            str(tmp_path / "w2"), "--no-progress")
    assert r["steps"] == 4 and r["status"] == "final" and [s["until_step"] for s in r["segments"]] == [2, 4]
    # a second stage continues from the first stage's checkpoint: the record lists both and sums them
    r = run("train_conditional.py", "--smoke", "--out", str(tmp_path / "stage2"), "--weights-dir",
            str(tmp_path / "w3"), "--init-from", str(tmp_path / "run2" / "checkpoint.pt"), "--no-progress")
    first, second = r["stages"]
    assert first["init_from"] == r["init_from"] == "dnnl/models/ddpm/weights/ddpm_mnist_quick.pt"
    assert second["init_from"].endswith("run2/checkpoint.pt") and r["steps"] == first["steps"] + second["steps"] == 8
    assert r["wall_time_s"] == round(first["wall_time_s"] + second["wall_time_s"], 1) and r["status"] == "final"
    assert len(r["segments"]) == 3 and "later stage started from the EMA weights" in r["init_note"]
    assert r["command"].count("train_conditional.py") == 2 and "--init-from" in r["command"]


def test_evaluate_conditional_smoke(run):
    r = run("evaluate_conditional.py", "--smoke")
    assert set(r["runs"]) == {"w=0", "w=2"}
    for one in r["runs"].values():
        assert one["n"] == 20 and 0 <= one["accuracy"] <= 1 and 0 <= one["confidence"] <= 1
        assert math.isfinite(one["fd_all"]) and one["diversity_pixels"] > 0
    t = r["targets"]
    assert t["default_w"] == 2 and t["accuracy_met"] == (t["accuracy_at_default_w"] >= 0.97)
    assert math.isclose(t["fd_ratio"], t["fd_all_w0_n1000"] / t["fd_all_unconditional_n1000"], rel_tol=1e-2)


def test_contention_smoke(run):
    r = run("contention.py", "--smoke")
    assert r["smoke"] is True and r["copies"] == 2 and set(r["policies"]) == {"dnnl", "torch"}
    for name, p in r["policies"].items():
        assert p["single_s"] > 0 and p["concurrent"]["wall_s"] > 0, name
        assert len(p["concurrent"]["copies"]) == 2 and all(c["ok"] for c in p["concurrent"]["copies"]), name
        assert math.isclose(p["ratio_to_ideal"], p["concurrent"]["wall_s"] / r["ideal_s"], rel_tol=0.02, abs_tol=0.01)
    assert math.isclose(r["ideal_s"], 2 * min(p["single_s"] for p in r["policies"].values()), abs_tol=0.1)
    # each copy's setup cell says what it got: dnnl's policy, or torch's defaults without a wait policy
    dnnl_threads = [r["policies"]["dnnl"]["single_threads"]] + [c["threads"] for c in
                                                                r["policies"]["dnnl"]["concurrent"]["copies"]]
    assert all(t.startswith("torch threads ") and "usable CPU(s)" in t for t in dnnl_threads)
    # fewer threads than CPUs come with a passive wait policy, all of them with libgomp's default
    assert all(("OMP_WAIT_POLICY=PASSIVE" in t) == (not t.startswith(f"torch threads {r['cpus_usable']} "))
               for t in dnnl_threads)
    torch_threads = r["policies"]["torch"]["concurrent"]["copies"][0]["threads"]
    assert "DNNL_THREADS=torch" in torch_threads and "OMP_WAIT_POLICY unset" in torch_threads


def test_full_preset_resets_the_peak_before_each_segment(monkeypatch):
    """The peak GPU memory of a segment counts from a reset made first, after the cache is emptied."""
    import torch

    full_preset = bench_module("full_preset")
    calls = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: calls.append("peak") or 5 * 2**20)
    monkeypatch.setattr(full_preset, "train", lambda config, **kw: calls.append("train") or "result")
    assert full_preset.train_segment(None, torch.device("cuda")) == ("result", 5.0)
    assert calls == ["empty_cache", "reset", "train", "peak"]
    calls.clear()
    assert full_preset.train_segment(None, torch.device("cpu")) == ("result", None) and calls == ["train"]


def test_loop_vs_step_smoke(run):
    r = run("loop_vs_step.py", "--smoke")
    assert set(r["sizes"]) == {"quick", "full"} and r["smoke"] is True
    for s in r["sizes"].values():
        assert s["bare_step"]["images_per_s"] > 0 and s["loop"]["images_per_s"] > 0
        assert math.isclose(s["loop_over_step"], s["loop"]["images_per_s"] / s["bare_step"]["images_per_s"],
                            rel_tol=1e-2)
    assert r["goal_met"] == all(s["loop_over_step"] >= 0.9 for s in r["sizes"].values())


def test_profile_step_smoke(run):
    r = run("profile_step.py", "--smoke")
    groups = r["groups"]
    assert {"convolution (3x3 and 1x1; with attention, its q/k/v and output projections too)", "GroupNorm", "SiLU"} <= set(groups)
    assert math.isclose(sum(g["share"] for g in groups.values()), 1.0, abs_tol=1e-3)
    assert r["ms_per_step"] > 0 and r["profiled_steps"] == 2


def test_matched_unet2dmodel_has_attention_where_ours_has_it():
    pytest.importorskip("diffusers")
    models = bench_module("_models")
    from dnnl.models.ddpm import TrainConfig

    for attention in (True, False):
        ours = TrainConfig.quick(attention=attention).build_model()
        theirs, _ = models.match_diffusers(ours)
        assert all((a is not None) is attention for a in theirs.mid_block.attentions), attention
        assert abs(models.n_params(theirs) / models.n_params(ours) - 1) < 0.1
