"""Student notebooks run to their end: the code before the first stub is the solutions notebook's, and
the exercise cells run in a fresh kernel, stubs reporting "not implemented yet" and solutions passing."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("jupytext")

from booktools import BEGIN, STUB_MESSAGE, chapter_notebook, chapter_paths, run_notebook  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = [p for p in chapter_paths(ROOT) if re.match(r"^\d\d-", p.name)]
_STUB = re.compile(r"^\s*raise NotImplementedError\((.*)\)\s*$", re.MULTILINE)
_CHECK_CALL = re.compile(r"^\s*(?:\w+\s*=\s*)?(check_\w+)\(", re.MULTILINE)


def _notebooks(path: Path):
    text = path.read_text(encoding="utf-8")
    return (chapter_notebook(text, path.stem, solutions=False), chapter_notebook(text, path.stem, solutions=True))


def _code(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _exercise_cells(nb) -> list[str]:
    """The code cells under the '## Exercises' heading, up to the next level-2 heading."""
    cells, inside = [], False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("## "):
                    inside = line.strip() == "## Exercises"
        elif inside:
            cells.append(cell.source)
    return cells


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_stub_raises_not_implemented_with_a_hint(path):
    student, solution = _notebooks(path)
    regions = sum(code.count(BEGIN) for code in _code(solution))
    stubs = [m.group(1) for code in _code(student) for m in _STUB.finditer(code)]
    assert len(stubs) == regions, f"{path.name}: {regions} solution regions but {len(stubs)} stubs"
    for hint in stubs:
        message = eval(hint, {})  # a plain string literal written by the sync tool  # noqa: S307
        assert isinstance(message, str) and message.strip() and message != STUB_MESSAGE, (
            f"{path.name}: a stub needs a '# HINT: ...' line above its solution (got {hint})")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_code_before_the_first_stub_is_the_solution_notebooks(path):
    """So the student notebook runs up to its first stub exactly as far as the solutions notebook does."""
    student, solution = map(_code, _notebooks(path))
    assert len(student) == len(solution)
    first = next((i for i, code in enumerate(student) if _STUB.search(code)), len(student))
    assert student[:first] == solution[:first]
    assert all(BEGIN not in code for code in student)


@pytest.mark.notebook
def test_exercise_cells_run_in_a_fresh_kernel(tmp_path):
    """One kernel runs every chapter's exercise cells twice: the student stubs must all report TODO, and the
    solutions must all PASS. Exercise cells are self-contained, so the setup cell is all they need."""
    cells, expected = [], []
    setup = _code(_notebooks(CHAPTERS[0])[1])[0]
    cells.append(setup)
    expected.append(None)
    for version, status in ((0, "TODO"), (1, "PASS")):
        for path in CHAPTERS:
            nb = _notebooks(path)[version]
            for code in _exercise_cells(nb):
                cells.append(code)
                calls = _CHECK_CALL.findall(code)
                expected.append((path.name, calls, status) if calls else None)
    assert any(e for e in expected), "no exercise calls a check"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    run_notebook(nb, cwd=tmp_path, timeout=300, allow_errors=True,
                 env={"DNNL_MODE": "quick", "MPLBACKEND": "Agg", "DNNL_OUT": str(tmp_path / "out")})
    for cell, want in zip(nb.cells, expected):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{cell.source[:300]}\nraised {errors[0].ename}: {errors[0].evalue}"
        if want is None:
            continue
        name, calls, status = want
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        for check in calls:
            line = {"PASS": f"\u2705 {check}: passed", "TODO": f"\u23f3 {check}: not implemented yet"}[status]
            assert line in text, f"{name}, {check}: expected {status}, got:\n{text}"
