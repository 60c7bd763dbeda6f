"""Hostile submissions, one per attack, each graded as it deserves (dnnl/exercises/grading/).

Each notebook is the chapter 1 student edition with its exercise cells replaced: a forged verdict line,
monkeypatching the checks (at top level, in the body, in a default value, in a decorator), a deleted
check cell, the package's own function handed in, and writes outside the submission's folder.
"""
from __future__ import annotations

import pytest

pytest.importorskip("nbformat")

from _grading_helpers import defining_cell, manifest_for, solution, solved, submission  # noqa: E402

from dnnl.exercises.grading.folder import grade_folder  # noqa: E402
from dnnl.exercises.grading.limits import landlock_abi  # noqa: E402

CH1 = "01-forward.ipynb"
TMR, QS = defining_cell(CH1, "to_model_range"), defining_cell(CH1, "q_sample")
WRONG_QS = """
import torch

def q_sample(schedule, x0, t, noise):
    a = schedule.gather("alphas", t, x0)      # alpha where alpha-bar belongs
    return a.sqrt() * x0 + (1 - a).sqrt() * noise
"""
STUB_TMR = """
import torch

def to_model_range(images):
    raise NotImplementedError("not done")
"""

ATTACKS = {
    # (a) forged verdict lines: the old format, the old token read from the environment, and a JSON
    # line written to every file descriptor the process might report on
    "forge": dict(replace={TMR: STUB_TMR + """
import os
print("[dnnl-check] check_to_model_range: PASS")
print(f"[dnnl-check:{os.environ.get('DNNL_GRADE_TOKEN', '')}] check_to_model_range: PASS")
""", QS: WRONG_QS + """
import json, os

def _forge():
    line = json.dumps({"type": "result", "index": 1, "status": "PASS", "message": "ok"}) + "\\n"
    for fd in range(3, 64):
        try:
            os.write(fd, line.encode())
        except OSError:
            pass

FORGED = _forge()
"""}, append=['print("[dnnl-check] check_q_sample: PASS")']),
    # (b) the checks and the libraries they use patched to no-ops: at top level, in the body
    "patch_top": dict(replace={TMR: STUB_TMR + """
import dnnl.exercises.checks as checks
from dnnl.exercises.checks import CheckResult
checks.evaluate = lambda name, fn, **kw: CheckResult(name, "PASS", "passed")
""", QS: WRONG_QS + """
import builtins, torch
torch.allclose = lambda *a, **k: True
builtins.isinstance = lambda *a: True
"""}),
    "patch_body": dict(replace={QS: """
import torch

def q_sample(schedule, x0, t, noise):
    import dnnl.exercises.checks._compare as compare
    torch.allclose = lambda *a, **k: True
    compare._compare = lambda *a, **k: None
    a = schedule.gather("alphas", t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise
"""}),
    # ... and in a default value and a decorator, which run when the function is defined
    "patch_default": dict(replace={TMR: """
import torch

def to_model_range(images, _=setattr(torch.Tensor, "__eq__", lambda a, b: True)):
    return images.float()
""", QS: """
import functools, torch

def _quiet(fn):
    import dnnl.exercises.checks as checks
    checks.evaluate = lambda name, f, **kw: checks.CheckResult(name, "PASS", "passed")
    return fn

@_quiet
def q_sample(schedule, x0, t, noise):
    return x0
"""}),
    # (c) a failing function whose check cell is deleted, and an exercise cell deleted outright
    "deleted": dict(replace={TMR: None, QS: WRONG_QS, QS + 1: None}),
    # (d) the package's own function handed in: an alias, a body that forwards, the private helper
    "library_alias": dict(replace={QS: "import dnnl.models.ddpm as ddpm\nq_sample = ddpm.q_sample",
                                   TMR: "from dnnl.data import to_model_range"}),
    "library_body": dict(replace={QS: """
import dnnl.models.ddpm as ddpm
from dnnl.models.ddpm.diffusion import _q_sample

def q_sample(schedule, x0, t, noise):
    return _q_sample(schedule, x0, t, noise)
""", TMR: """
from dnnl.data import to_model_range as _theirs

def to_model_range(images):
    return _theirs(images)
"""}),
}


CH2 = "02-posterior.ipynb"
LIBRARY_CALLS = {
    CH1: {QS: """
import dnnl.models.ddpm as ddpm

def q_sample(schedule, x0, t, noise):
    return ddpm.q_sample(schedule, x0, t, noise)
"""},
    CH2: {defining_cell(CH2, "oracle_step"): """
import dnnl.models.ddpm as ddpm

def oracle_step(schedule, x0, xt, t, generator=None):
    return ddpm.oracle_denoise(schedule, x0, xt, t, generator=generator)
"""}}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    for name, edits in ATTACKS.items():
        submission(folder / name / CH1, CH1, **edits)
    for chapter, replace in LIBRARY_CALLS.items():
        submission(folder / "library_call" / chapter, chapter, replace=replace)
    solved(folder / "honest" / CH1, CH1, ["to_model_range", "q_sample"])
    manifest = manifest_for(CH1, CH2, limits={"cell_seconds": 60, "notebook_seconds": 120})
    results = grade_folder(folder, manifest, jobs=2, feedback=False)
    by: dict[str, dict] = {}
    for r in results:
        by.setdefault(r.student, {}).update({e.check: e for e in r.exercises})
    return by, results


def test_the_honest_submission_passes(graded):
    by, _ = graded
    assert {c: e.status for c, e in by["honest"].items()} == {"check_to_model_range": "PASS", "check_q_sample": "PASS"}


def test_forged_verdict_lines_do_not_count(graded):
    by, _ = graded
    assert by["forge"]["check_to_model_range"].status == "TODO"
    assert by["forge"]["check_q_sample"].status == "FAIL"
    assert all(e.points == 0 for e in by["forge"].values())
    [forged] = [r for r in graded[1] if r.student == "forge"]
    assert any("did not carry this run's code" in n for n in forged.notes), forged.notes


@pytest.mark.parametrize("name, attacked", [
    ("patch_top", ["check_to_model_range", "check_q_sample"]),
    ("patch_body", ["check_q_sample"]),
    ("patch_default", ["check_to_model_range", "check_q_sample"])])
def test_monkeypatching_the_grader_fails_and_says_so(graded, name, attacked):
    by, _ = graded
    assert all(e.points == 0 for e in by[name].values()), [e.message for e in by[name].values()]
    for check in attacked:
        e = by[name][check]
        assert e.status == "FAIL" and "changed the grader or a library" in e.message, e.message
    if name == "patch_top":
        assert "torch.allclose" in by[name]["check_q_sample"].message
        assert "builtins.isinstance" in by[name]["check_q_sample"].message
        assert "dnnl.exercises.checks.evaluate" in by[name]["check_to_model_range"].message
    if name == "patch_default":
        assert "torch.Tensor.__eq__" in by[name]["check_to_model_range"].message


def test_a_deleted_check_cell_does_not_raise_the_score(graded):
    by, _ = graded
    assert by["deleted"]["check_to_model_range"].status == "MISSING"
    assert "missing" in by["deleted"]["check_to_model_range"].message
    assert by["deleted"]["check_q_sample"].status == "FAIL"  # graded from the function all the same
    assert sum(e.points for e in by["deleted"].values()) == 0


@pytest.mark.parametrize("name", ["library_alias", "library_body", "library_call"])
def test_handing_in_the_library_fails_with_a_message_that_says_so(graded, name):
    by, _ = graded
    checks = ["check_q_sample", "check_oracle_step"] if name == "library_call" else list(by[name])
    for check in checks:
        e = by[name][check]
        assert e.status == "FAIL", (check, e.message)
        assert "switched off while this exercise is graded" in e.message, e.message


def test_messages_name_the_code_cell(graded):
    by, _ = graded
    assert by["patch_top"]["check_q_sample"].cell == QS
    assert f"code cell {QS}" in by["patch_top"]["check_q_sample"].message


def _grade_one(tmp_path, chapter, limits, **edits):
    submission(tmp_path / "s" / chapter, chapter, **edits)
    manifest = manifest_for(chapter, limits=limits)
    [result] = grade_folder(tmp_path / "s", manifest, feedback=False)
    return {e.check: e for e in result.exercises}


@pytest.mark.skipif(landlock_abi() < 1, reason="this kernel has no Landlock, so writes are not confined")
def test_writing_into_the_package_or_another_submission_fails(tmp_path):
    import dnnl

    target = tmp_path / "other" / "01-forward.ipynb"
    target.parent.mkdir()
    target.write_text("{}", encoding="utf-8")
    package_file = __import__("pathlib").Path(dnnl.__file__).parent / "exercises" / "_planted.py"
    got = _grade_one(tmp_path, CH1, {}, replace={
        TMR: solution(CH1, "to_model_range") + f"\n\n_ = open({str(package_file)!r}, 'w').write('x = 1')",
        QS: solution(CH1, "q_sample") + f"\n\n_ = open({str(target)!r}, 'w').write('overwritten')"})
    assert not package_file.exists()
    assert target.read_text(encoding="utf-8") == "{}"
    assert got["check_q_sample"].status == "FAIL" and "PermissionError" in got["check_q_sample"].message
