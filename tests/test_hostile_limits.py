"""Limits: a per-exercise and a per-notebook time limit, a memory limit, and runaway processes killed with
their children, the next exercise and the next notebook still graded (dnnl/exercises/grading/)."""
from __future__ import annotations

import os
import time
import uuid

import pytest

pytest.importorskip("nbformat")

from _grading_helpers import defining_cell, manifest_for, solution, submission  # noqa: E402

from dnnl.exercises.grading.folder import grade_folder  # noqa: E402
from dnnl.exercises.grading.manifest import validate  # noqa: E402

CH1, CH3, CH6 = "01-forward.ipynb", "03-elbo.ipynb", "06-ddim.ipynb"


def _statuses(result) -> dict[str, str]:
    return {e.check: e.status for e in result.exercises}


def _slow(chapter: str, function: str, seconds: float) -> str:
    """The answer key's cell, with a pause while it is defined (a top-level assignment runs then)."""
    return solution(chapter, function) + f"\n\nimport time\n_PAUSE = time.sleep({seconds})"


def _baseline_mb() -> int:
    """The address space a fresh grading process takes before any student code (torch maps a lot)."""
    import subprocess
    import sys

    probe = ("import torch, dnnl.exercises.checks, dnnl.models.ddpm\n"
             "print(open('/proc/self/status').read().split('VmPeak:')[1].split()[0])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return int(out.stdout.strip()) // 1024


def test_many_cells_under_the_cell_limit_are_stopped_by_the_notebook_limit(tmp_path):
    """Five exercises that each take a little less than the per-exercise limit: the notebook limit ends it."""
    exercises = [(CH1, "to_model_range"), (CH1, "q_sample"), (CH3, "normal_kl"), (CH6, "respaced_betas"),
                 (CH6, "from_v")]
    cells = [_slow(ch, fn, 1.6) for ch, fn in exercises]
    manifest = manifest_for(CH1, CH3, CH6, limits={"cell_seconds": 4.5, "notebook_seconds": 7})
    entries = {nb["name"]: nb for nb in manifest["notebooks"]}
    merged = {**entries[CH1], "name": "five.ipynb", "exercises": [
        next(ex for nb in entries.values() for ex in nb["exercises"] if ex["function"] == fn)
        for _, fn in exercises]}
    merged["preamble"] = "import torch\nimport math"
    manifest = validate({**manifest, "notebooks": [merged]})
    submission(tmp_path / "s" / "five.ipynb", CH1, replace={1: "import torch"}, append=cells)
    start = time.monotonic()
    [result] = grade_folder(tmp_path / "s", manifest, feedback=False)
    took = time.monotonic() - start
    statuses = [e.status for e in result.exercises]
    assert statuses[0] == "PASS", result.exercises[0].message
    assert statuses[-1] == "TIMEOUT" and "time limit of 7" in result.exercises[-1].message
    assert any("notebook reached its time limit" in e.message for e in result.exercises)
    assert took < 7 + 40  # the limit, plus starting Python and torch on a busy machine


def test_a_runaway_is_killed_with_its_children_and_grading_goes_on(tmp_path):
    """An endless loop (after starting child processes that sleep) in Ex. 1.1: killed at the cell limit
    with its children; Ex. 1.2 of the same notebook and the next notebook are still graded."""
    marker = f"{uuid.uuid4().hex[:8]}"
    tmr, qs = defining_cell(CH1, "to_model_range"), defining_cell(CH1, "q_sample")
    runaway = f"""
import subprocess

_KIDS = [subprocess.Popen(["sleep", "300.{marker}"]) for _ in range(3)]

def to_model_range(images):
    while True:
        pass
"""
    submission(tmp_path / "s" / "a" / CH1, CH1, replace={tmr: runaway, qs: solution(CH1, "q_sample")})
    submission(tmp_path / "s" / "b" / CH1, CH1, replace={tmr: solution(CH1, "to_model_range")})
    dies = solution(CH1, "q_sample").replace("def q_sample(schedule, x0, t, noise):",
                                             "def q_sample(schedule, x0, t, noise):\n    import os; os._exit(7)")
    submission(tmp_path / "s" / "c" / CH1, CH1, replace={qs: dies, tmr: solution(CH1, "to_model_range")})
    manifest = manifest_for(CH1, limits={"cell_seconds": 4, "notebook_seconds": 60})
    a, b, c = grade_folder(tmp_path / "s", manifest, jobs=2, feedback=False)
    assert _statuses(c) == {"check_to_model_range": "PASS", "check_q_sample": "CRASH"}
    assert f"code cell {qs}" in c.exercises[1].message and "exit code 7" in c.exercises[1].message
    assert _statuses(a) == {"check_to_model_range": "TIMEOUT", "check_q_sample": "PASS"}
    assert f"code cell {tmr}" in a.exercises[0].message and "4 s" in a.exercises[0].message
    assert _statuses(b) == {"check_to_model_range": "PASS", "check_q_sample": "TODO"}
    time.sleep(0.5)
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if marker.encode() in fh.read():
                    alive.append(pid)
        except OSError:
            continue
    assert not alive, f"child processes of the submission still run: {alive}"


def test_a_memory_hog_is_stopped_and_reported(tmp_path):
    """Limits address space: a 3 GB tensor (never touched, so harmless without the limit) is refused."""
    tmr, qs = defining_cell(CH1, "to_model_range"), defining_cell(CH1, "q_sample")
    hog_body = solution(CH1, "to_model_range").replace(
        "def to_model_range(images):",
        "def to_model_range(images):\n    _hog = torch.empty(3 * 2**30, dtype=torch.uint8)")
    hog_def = solution(CH1, "q_sample") + "\n\n_HOG = bytearray(3 * 2**30)"
    submission(tmp_path / "s" / CH1, CH1, replace={tmr: hog_body, qs: hog_def})
    manifest = manifest_for(CH1, limits={"memory_mb": _baseline_mb() + 1500})
    [result] = grade_folder(tmp_path / "s", manifest, feedback=False)
    by = {e.check: e for e in result.exercises}
    assert by["check_to_model_range"].status == "FAIL"
    assert "memory limit" in by["check_to_model_range"].message
    assert by["check_q_sample"].status == "FAIL"
    assert "MemoryError" in by["check_q_sample"].message and f"code cell {qs}" in by["check_q_sample"].message


def test_landlock_confines_writes_to_the_folder_and_refuses_tcp(tmp_path):
    """The confinement the grading process applies to itself (limits.restrict_writes), on its own."""
    import socket
    import subprocess
    import sys

    from dnnl.exercises.grading.limits import landlock_abi

    abi = landlock_abi()
    if abi < 1:
        pytest.skip("this kernel has no Landlock")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    inside, outside = tmp_path / "inside", tmp_path / "outside.txt"
    inside.mkdir()
    code = f"""
import socket
from dnnl.exercises.grading.limits import restrict_writes
assert restrict_writes([{str(inside)!r}])
open({str(inside / 'ok.txt')!r}, 'w').write('ok')
for what, act in (("write", lambda: open({str(outside)!r}, 'w')),
                  ("tcp", lambda: socket.create_connection(("127.0.0.1", {server.getsockname()[1]}), timeout=5))):
    try:
        act()
        print(what, "allowed")
    except PermissionError:
        print(what, "refused")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    server.close()
    assert out.returncode == 0, out.stderr
    assert (inside / "ok.txt").read_text() == "ok" and not outside.exists()
    assert "write refused" in out.stdout
    if abi >= 4:
        assert "tcp refused" in out.stdout
