"""The grader: manifest, extraction, outputs (grades.csv, grades.json, feedback), --jobs, preflight, and the
one notebook runner the book's tooling shares (dnnl/exercises/grade.py, dnnl/exercises/grading/)."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import nbformat
import pytest
from _grading_helpers import ROOT, defining_cell, manifest_for, solution, solved, submission

from dnnl.exercises.grade import main
from dnnl.exercises.grading.extract import find_definition, kept_source
from dnnl.exercises.grading.folder import grade_folder, match_notebook, student_id
from dnnl.exercises.grading.manifest import DEFAULT_PATH, ManifestError, dumps, make_manifest, validate

CH1, CH3 = "01-forward.ipynb", "03-elbo.ipynb"
QS, KL = defining_cell(CH1, "q_sample"), defining_cell(CH3, "normal_kl")
LONG = "the variance " + " ".join(["must be positive and finite"] * 12) + " END-OF-MESSAGE"
WRONG_QS = '''
def q_sample(schedule, x0, t, noise):
    a = schedule.gather("alphas", t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise
'''


# --------------------------------------------------------------------------- the manifest

def test_the_shipped_manifest_is_the_one_the_answer_keys_give():
    """Regenerate with: python -m dnnl.exercises.grade --make-manifest notebooks/solutions
    -o dnnl/exercises/grading/manifest.json"""
    assert dumps(make_manifest(ROOT / "notebooks" / "solutions")) == DEFAULT_PATH.read_text(encoding="utf-8"), (
        "the shipped manifest is stale: python -m dnnl.exercises.grade --make-manifest notebooks/solutions "
        "-o dnnl/exercises/grading/manifest.json")


def test_the_manifest_names_each_function_and_takes_the_imports_from_the_teachers_copy():
    m = validate(make_manifest(ROOT / "notebooks" / "solutions"))
    by = {nb["name"]: nb for nb in m["notebooks"]}
    assert "teacher.ipynb" not in by
    assert [(e["check"], e["function"]) for e in by[CH1]["exercises"]][:2] == [
        ("check_to_model_range", "to_model_range"), ("check_q_sample", "q_sample")]
    ch4 = [(e["check"], e["function"]) for e in by["04-training.ipynb"]["exercises"]]
    assert ("check_sampler", "ancestral_sample") in ch4
    for nb in m["notebooks"]:
        assert "import torch" in nb["preamble"] and "matplotlib" not in nb["preamble"]
        assert all(e["points"] == 1 and e["hints"] == "terse" for e in nb["exercises"])
    student = validate(make_manifest(ROOT / "notebooks"))
    assert [[(e["check"], e["function"]) for e in nb["exercises"]] for nb in student["notebooks"]] == \
        [[(e["check"], e["function"]) for e in nb["exercises"]] for nb in m["notebooks"]]


def test_a_malformed_manifest_is_refused_with_where():
    m = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    m["notebooks"][0]["exercises"][0]["check"] = "check_nothing"
    with pytest.raises(ManifestError, match=r"notebooks\[0\] \(01-forward.ipynb\) exercise 1: unknown check"):
        validate(m)
    with pytest.raises(ManifestError, match="not a grading manifest"):
        validate({"notebooks": []})


# --------------------------------------------------------------------------- what is taken from a cell

def test_only_definitions_are_kept_at_their_line_numbers():
    source = ("import torch\nprint('hi')\nK = 2\n\n@staticmethod\ndef f(x):\n    return x\nf(1)\n"
              "for i in range(3):\n    pass")
    kept, dropped = kept_source(source)
    assert dropped
    assert kept.split("\n") == ["import torch", "", "K = 2", "", "@staticmethod", "def f(x):",
                                "    return x", "", "", ""]


def test_the_last_cell_that_defines_the_function_counts_and_cells_are_numbered_among_code_cells():
    cells = ["import torch", "def f(x):\n    return 1", "check_q_sample(f)", "def f(x):\n    return 2", "def f(:"]
    d = find_definition(cells[:4], "f", "check_q_sample")
    assert (d.cell, d.check_cell, d.problem) == (4, 3, None) and "return 2" in d.source
    d = find_definition(cells, "f", "check_q_sample")  # the last attempt counts, even a broken one
    assert d.cell == 5 and "syntax error" in d.problem
    bad = find_definition(["def g(:\n  pass"], "g", "check_q_sample")
    assert bad.cell == 1 and "syntax error" in bad.problem


def test_submissions_are_matched_by_name_then_number_then_content(tmp_path):
    m = manifest_for(CH1, CH3)
    path = submission(tmp_path / "x" / "Ada Lovelace - homework.ipynb", CH3)
    assert match_notebook(tmp_path / "01-forward (1).ipynb", m)["name"] == CH1
    assert match_notebook(path, m)["name"] == CH3
    assert student_id(path, tmp_path) == "x" and student_id(path, tmp_path, "stem") == "Ada Lovelace - homework"


# --------------------------------------------------------------------------- a graded folder

@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """ada: right; ben: α for ᾱ, a long error message, a stub; cyd: one notebook, named by its file."""
    folder = tmp_path_factory.mktemp("submissions")
    m = manifest_for(CH1, CH3)
    for nb in m["notebooks"]:
        solved(folder / "ada" / nb["name"], nb["name"], [ex["function"] for ex in nb["exercises"]])
    submission(folder / "ben" / CH1, CH1, replace={QS: WRONG_QS})
    raises = f"def normal_kl(m1, lv1, m2, lv2):\n    raise ValueError({LONG!r})"
    submission(folder / "ben" / CH3, CH3, replace={KL: raises})
    solved(folder / "cyd.ipynb", CH3, ["normal_kl"], replace={defining_cell(CH3, "prior_bpd"): "def prior_bpd(:"})
    for nb in m["notebooks"]:
        for ex in nb["exercises"]:
            ex["points"] = 3 if ex["check"] == "check_q_sample" else 1
            ex["credit"]["FAIL"] = 0.25 if ex["check"] == "check_normal_kl" else 0.0
    (folder.parent / "m.json").write_text(dumps(m), encoding="utf-8")
    out = folder.parent / "out"
    proc = subprocess.run([sys.executable, "-m", "dnnl.exercises.grade", str(folder), "--manifest",
                           str(folder.parent / "m.json"), "--out", str(out), "--jobs", "2"],
                          capture_output=True, text=True, timeout=600)
    return folder, out, proc, m


def test_the_grader_exits_0_and_prints_a_table(graded):
    _, _, proc, _ = graded
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].split(" | ")[0].strip() == "student"


def test_grades_csv_has_a_row_per_student_points_per_check_and_totals(graded):
    _, out, _, m = graded
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open(encoding="utf-8"))}
    assert set(rows) == {"(max)", "ada", "ben", "cyd"}
    n1, n3 = (len(nb["exercises"]) for nb in m["notebooks"])
    assert rows["(max)"]["check_q_sample"] == "3" and rows["(max)"]["total"] == f"{n1 + 2 + n3:g}"
    assert rows["ada"]["total"] == f"{n1 + 2 + n3:g}", rows["ada"]
    assert rows["ada"]["chapter_1"] == f"{n1 + 2:g}" and rows["ada"]["chapter_3"] == f"{n3:g}"
    assert rows["ben"]["check_q_sample"] == "0" and rows["ben"]["check_normal_kl"] == "0.25"
    assert rows["cyd"]["check_normal_kl"] == "1" and rows["cyd"]["check_q_sample"] == "0"
    assert rows["cyd"]["notebooks"] == "cyd.ipynb"


def test_grades_json_keeps_every_verdict_and_its_whole_message(graded):
    _, out, _, _ = graded
    data = json.loads((out / "grades.json").read_text(encoding="utf-8"))
    ben = {c["check"]: c for s in data["students"]["ben"]["submissions"] for c in s["checks"]}
    assert ben["check_q_sample"]["status"] == "FAIL" and ben["check_q_sample"]["cell"] == QS
    assert ben["check_normal_kl"]["status"] == "FAIL"
    assert LONG in ben["check_normal_kl"]["message"]  # never cut, let alone mid-word
    assert ben["check_to_model_range"]["status"] == "TODO"
    cyd = {c["check"]: c for s in data["students"]["cyd"]["submissions"] for c in s["checks"]}
    prior = defining_cell(CH3, "prior_bpd")
    assert cyd["check_prior_bpd"]["status"] == "FAIL"
    assert f"code cell {prior}" in cyd["check_prior_bpd"]["message"]
    assert "syntax error" in cyd["check_prior_bpd"]["message"]


def test_each_student_gets_a_feedback_page_and_the_executed_cells(graded):
    _, out, _, m = graded
    page = (out / "feedback" / "ben" / "01-forward.md").read_text(encoding="utf-8")
    assert "check_q_sample" in page and "❌" in page and f"code cell {QS}" in page
    nb = nbformat.read(out / "feedback" / "ben" / "01-forward.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "check_q_sample" in text and "not implemented yet" in text
    n1 = len(m["notebooks"][0]["exercises"])
    assert len([c for c in nb.cells if c.cell_type == "code"]) == 1 + 2 * n1  # imports, exercises, checks
    assert (out / "feedback" / "ada" / "03-elbo.md").is_file() and (out / "feedback" / "cyd" / "03-elbo.md").is_file()


def test_two_jobs_give_the_same_grades_as_one(graded, tmp_path):
    import shutil

    folder, out, _, m = graded  # graded with --jobs 2
    data = json.loads((out / "grades.json").read_text(encoding="utf-8"))
    shutil.copytree(folder / "ben", tmp_path / "ben")
    again = grade_folder(tmp_path, validate(m), jobs=1, feedback=False)
    got = {(r.student, e.check): (e.status, e.points) for r in again for e in r.exercises}
    want = {("ben", c["check"]): (c["status"], c["points"]) for sub in data["students"]["ben"]["submissions"]
            for c in sub["checks"]}
    assert got == want and len(got) > 3


# --------------------------------------------------------------------------- environment and usage errors

def test_missing_data_is_an_environment_error_not_a_zero(tmp_path, capsys, monkeypatch):
    m = manifest_for(CH1)
    m["notebooks"][0]["needs_data"] = True
    (tmp_path / "m.json").write_text(dumps(m), encoding="utf-8")
    solved(tmp_path / "s" / CH1, CH1, ["q_sample"])
    monkeypatch.setenv("DNNL_DATA", str(tmp_path / "no-data-here"))
    code = main([str(tmp_path / "s"), "--manifest", str(tmp_path / "m.json"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 3
    assert "environment error (no student was graded)" in err and "DNNL_DATA" in err and "MNIST" in err
    assert not (tmp_path / "out").exists()


def test_a_broken_preamble_is_an_environment_error(tmp_path, capsys):
    m = manifest_for(CH1)
    m["notebooks"][0]["preamble"] = "import dnnl.no_such_module"
    (tmp_path / "m.json").write_text(dumps(m), encoding="utf-8")
    solved(tmp_path / "s" / CH1, CH1, ["q_sample"])
    assert main([str(tmp_path / "s"), "--manifest", str(tmp_path / "m.json")]) == 3
    assert "preamble failed: ModuleNotFoundError" in capsys.readouterr().err


def test_usage_errors(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert "is not a folder or a notebook" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "no .ipynb files" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}", encoding="utf-8")
    assert main([str(tmp_path), "--manifest", str(tmp_path / "bad.json")]) == 2
    assert "not a grading manifest" in capsys.readouterr().err


# --------------------------------------------------------------------------- Gradescope

def test_the_gradescope_autograder_runs_and_writes_results_json(tmp_path):
    import zipfile

    zip_path = tmp_path / "autograder.zip"
    assert main(["--gradescope", str(zip_path)]) == 0
    root = tmp_path / "autograder"
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
        z.extractall(root / "source")
    assert {"setup.sh", "run_autograder", "manifest.json", "dnnl-src/pyproject.toml",
            "dnnl-src/dnnl/exercises/grading/child.py"} <= names
    assert not any(n.endswith(".pt") or "MNIST" in n for n in names)
    solved(root / "submission" / "my notebook.ipynb", CH1, ["q_sample"])
    env = {"PATH": "/usr/bin:/bin", "DNNL_AUTOGRADER_ROOT": str(root), "DNNL_PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    tests = {t["name"].split()[0]: t for t in results["tests"]}
    assert tests["check_q_sample"]["score"] == 1 and tests["check_q_sample"]["max_score"] == 1
    assert tests["check_to_model_range"]["score"] == 0 and "not implemented" in tests["check_to_model_range"]["output"]
    assert results["score"] == sum(t["score"] for t in results["tests"]) == 1


# --------------------------------------------------------------------------- the shared notebook runner

@pytest.mark.notebook
def test_run_notebook_runs_in_the_folder_with_the_environment_given(tmp_path, monkeypatch):
    """The one runner the book build, the benchmarks and the chapter tests share."""
    from nbclient.exceptions import CellExecutionError

    from dnnl.exercises._notebook import run_notebook

    monkeypatch.setenv("DNNL_TEST_INHERITED", "kept")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os; print(os.getcwd(), os.environ['DNNL_TEST_GIVEN'], os.environ['DNNL_TEST_INHERITED'])")])
    seconds = run_notebook(nb, cwd=tmp_path, timeout=60, env={"DNNL_TEST_GIVEN": "given"}, quiet=True)
    assert seconds > 0
    assert nb.cells[0].outputs[0]["text"].split() == [str(tmp_path), "given", "kept"]
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 / 0"), nbformat.v4.new_code_cell("2")])
    with pytest.raises(CellExecutionError):
        run_notebook(bad, cwd=tmp_path, timeout=60)
    run_notebook(bad, cwd=tmp_path, timeout=60, allow_errors=True)
    assert bad.cells[1].outputs[0]["data"]["text/plain"] == "2"


def test_jobs_share_out_the_cores_and_the_process_gets_only_what_it_needs(monkeypatch):
    import os

    from dnnl.exercises.grading.folder import default_jobs_threads
    from dnnl.exercises.grading.sandbox import child_env

    cores = len(os.sched_getaffinity(0))
    assert default_jobs_threads(1) == cores and default_jobs_threads(2) == max(1, cores // 2)
    assert default_jobs_threads(4 * cores) == 1
    monkeypatch.setenv("DNNL_GRADE_TOKEN", "secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    env = child_env("/tmp/x", 3, "terse")
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3" and env["HOME"] == "/tmp/x"
    assert "secret" not in env.values() and env["DNNL_HINTS"] == "terse"


def test_grading_threads_parse_submissions_one_at_a_time(monkeypatch):
    """CPython 3.11's ast.parse is not safe from several threads at once (a spurious 'AST constructor recursion
    depth mismatch' SystemError failed a folder grade): every parse in extract holds one lock."""
    import ast as ast_module

    from dnnl.exercises.grading import extract

    real_parse, held = ast_module.parse, []

    def watching_parse(*args, **kwargs):
        held.append(extract._PARSE_LOCK.locked())
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(extract.ast, "parse", watching_parse)
    extract._parse("def f(x):\n    return x\n")
    extract.find_definition(["def f(x):\n    return x\n", "check(f)\n"], "f", "check")
    assert held and all(held)
