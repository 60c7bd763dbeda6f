"""The grader runs a folder of notebooks and tabulates their checks (dnnl/exercises/grade.py)."""
from __future__ import annotations

import csv
import subprocess
import sys
import textwrap

import nbformat
import pytest

from dnnl.exercises.grade import NotebookResult, expected_checks, format_table, main, parse_verdicts

SETUP = "import torch\nimport dnnl.models.ddpm as ddpm\nfrom dnnl.exercises import check_q_sample, check_normal_kl"

GOOD_Q_SAMPLE = '''
def q_sample(schedule, x0, t, noise):
    ab = schedule.gather("alpha_bars", t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise
'''

ALPHA_Q_SAMPLE = '''
def q_sample(schedule, x0, t, noise):
    a = schedule.gather("alphas", t, x0)          # the classic slip: α instead of ᾱ
    return a.sqrt() * x0 + (1 - a).sqrt() * noise
'''

GOOD_KL = '''
def normal_kl(m1, lv1, m2, lv2):
    return 0.5 * (lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2) - 1)
'''


def _notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A submission")]
    nb.cells += [nbformat.v4.new_code_cell(textwrap.dedent(c).strip()) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    _notebook(folder / "good.ipynb", SETUP, GOOD_Q_SAMPLE, "check_q_sample(q_sample)", GOOD_KL,
              "check_normal_kl(normal_kl)")
    _notebook(folder / "faulty.ipynb", SETUP, ALPHA_Q_SAMPLE, "check_q_sample(q_sample)",
              'print("[dnnl-check] check_normal_kl: PASS")  # a forged verdict must not count',
              "undefined_helper()", GOOD_KL, "check_normal_kl(normal_kl)")
    out_csv = folder.parent / "grades.csv"
    proc = subprocess.run([sys.executable, "-m", "dnnl.exercises.grade", str(folder), "--timeout", "120",
                           "--csv", str(out_csv)], capture_output=True, text=True, timeout=300)
    return proc, out_csv


def _row(table: str, name: str) -> list[str]:
    line = next(ln for ln in table.splitlines() if ln.startswith(name))
    return [cell.strip() for cell in line.split("|")]


@pytest.mark.notebook
def test_grader_tables_one_passing_and_one_failing_notebook(graded):
    proc, _ = graded
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout
    header = [cell.strip() for cell in table.splitlines()[0].split("|")]
    assert header == ["notebook", "q_sample", "normal_kl", "passed"]
    assert _row(table, "good.ipynb") == ["good.ipynb", "✅", "✅", "2/2"]
    assert _row(table, "faulty.ipynb") == ["faulty.ipynb", "❌", "–", "0/2"]
    assert _row(table, "total") == ["total", "1/2", "1/2", "2/4"]
    assert "faulty.ipynb: stopped at cell 6: NameError" in table


@pytest.mark.notebook
def test_grader_writes_the_csv(graded):
    _, out_csv = graded
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    by_name = {r["notebook"]: r for r in rows}
    assert by_name["good.ipynb"]["check_q_sample"] == "pass" and by_name["good.ipynb"]["passed"] == "2"
    assert by_name["faulty.ipynb"]["check_q_sample"] == "fail"
    assert by_name["faulty.ipynb"]["check_normal_kl"] == "not run"
    assert "NameError" in by_name["faulty.ipynb"]["error"]


def test_grader_refuses_a_missing_folder_and_an_empty_one(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 1
    assert "no .ipynb files" in capsys.readouterr().err


def test_verdicts_need_the_runs_token_and_the_last_one_counts():
    text = ("[dnnl-check] check_q_sample: PASS\n[dnnl-check:t0k] check_q_sample: FAIL\n"
            "[dnnl-check:t0k] check_q_sample: PASS\n[dnnl-check:t0k] check_sampler: TODO\n")
    assert parse_verdicts(text, "t0k") == {"check_q_sample": "PASS", "check_sampler": "TODO"}
    assert parse_verdicts(text, None) == {"check_q_sample": "PASS"}


def test_expected_checks_are_found_in_code_cells_only():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("call check_sampler(fn) here"),
                nbformat.v4.new_code_cell("check_mc_eps(f)\ncheck_q_sample(g)\ncheck_mc_eps(f)\ncheck_unknown(h)")]
    assert expected_checks(nb) == ["check_mc_eps", "check_q_sample"]


def test_table_marks_todo_and_absent_checks():
    results = [NotebookResult("a.ipynb", {"check_q_sample": "TODO"}),
               NotebookResult("b.ipynb", {"check_q_sample": "PASS", "check_sampler": "ERROR"})]
    table = format_table(results)
    assert _row(table, "a.ipynb") == ["a.ipynb", "⏳", "", "0/1"]
    assert _row(table, "b.ipynb") == ["b.ipynb", "✅", "⚠️", "1/2"]
    assert _row(table, "total") == ["total", "1/2", "0/1", "1/3"]


@pytest.mark.notebook
def test_run_notebook_runs_in_the_folder_with_the_environment_given(tmp_path, monkeypatch):
    """The one runner the grader, the book build, the benchmarks and the chapter tests share."""
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
