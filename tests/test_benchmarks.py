"""Every script in benchmarks/ runs in a tiny smoke configuration, writes nothing into benchmarks/results/,
and the README's measured numbers are exactly what benchmarks/results/ holds.

The real measurements are slow (minutes to an hour) and stay out of the test command; these tests only
prove that the scripts work, so a reader who reruns one gets a result and not a traceback.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_quality_budget_smoke(run):
    pytest.importorskip("diffusers")
    r = run("quality_budget.py", "--smoke", "--out", "runs")
    assert set(r["runs"]) == {"dnnl", "diffusers"}
    for name, one in r["runs"].items():
        assert one["steps"] >= 1 and one["wall_time_s"] > 0, name
        assert math.isfinite(one["fd"]) and 0 <= one["confidence"] <= 1, name
    assert math.isclose(r["fd_ratio_dnnl_over_diffusers"], r["runs"]["dnnl"]["fd"] / r["runs"]["diffusers"]["fd"],
                        rel_tol=1e-2)


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


def test_readme_numbers_are_generated_from_the_results():
    proc = subprocess.run([sys.executable, str(BENCH / "report.py"), "--check"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def test_report_gpu_section():
    sys.path.insert(0, str(BENCH))
    try:
        import report
    finally:
        sys.path.remove(str(BENCH))
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


def _machine_module():
    sys.path.insert(0, str(BENCH))
    try:
        import _machine
    finally:
        sys.path.remove(str(BENCH))
    return _machine


def test_save_result_writes_atomically_where_asked_and_prints_the_json(tmp_path, capsys):
    m = _machine_module()
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
