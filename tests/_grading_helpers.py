"""Small synthetic submissions for the grader's tests: the student editions, with chosen cells replaced.

``solution(function)`` is the answer-key cell that defines an exercise function (the solution spliced in
between its ``# BEGIN SOLUTION`` / ``# END SOLUTION`` lines); ``submission(path, chapter, replace=...)``
writes a student edition with some of its code cells replaced, removed or added.
"""
from __future__ import annotations

import copy
import re
import textwrap
from pathlib import Path

import nbformat

from booktools.notebooks import solution_source

ROOT = Path(__file__).resolve().parent.parent
STUDENT = ROOT / "notebooks"
SOLUTIONS = ROOT / "notebooks" / "solutions"


def _code(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def read(chapter: str, *, solutions: bool = False):
    return nbformat.read((SOLUTIONS if solutions else STUDENT) / chapter, as_version=4)


def defining_cell(chapter: str, function: str) -> int:
    """The number (among code cells, from 1) of the cell that defines ``function`` in ``chapter``."""
    for k, cell in enumerate(_code(read(chapter, solutions=True)), start=1):
        if re.search(rf"^def {function}\(", cell.source, re.MULTILINE):
            return k
    raise LookupError(f"{chapter} defines no {function}")


def solution(chapter: str, function: str) -> str:
    """The answer key's cell for ``function``, without the BEGIN/END/HINT marker lines."""
    return solution_source(_code(read(chapter, solutions=True))[defining_cell(chapter, function) - 1].source)


def submission(path: Path, chapter: str, *, replace: dict[int, str | None] | None = None,
               append: list[str] = ()) -> Path:
    """Write the student edition of ``chapter`` to ``path``, code cell n replaced by ``replace[n]`` (None
    removes it; cells keep their numbers otherwise), and cells ``append`` added at the end."""
    nb = copy.deepcopy(read(chapter))
    code = _code(nb)
    drop = []
    for number, source in (replace or {}).items():
        if source is None:
            drop.append(code[number - 1])
        else:
            code[number - 1].source = textwrap.dedent(source).strip("\n")
    nb.cells = [c for c in nb.cells if not any(c is d for d in drop)]
    nb.cells += [nbformat.v4.new_code_cell(textwrap.dedent(s).strip("\n")) for s in append]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def solved(path: Path, chapter: str, functions: list[str], **edits) -> Path:
    """The student edition with the answer key's code for ``functions`` spliced in (plus ``edits``)."""
    replace = {defining_cell(chapter, f): solution(chapter, f) for f in functions}
    replace.update(edits.pop("replace", {}) or {})
    return submission(path, chapter, replace=replace, **edits)


def manifest_for(*notebooks: str, limits: dict | None = None, **entry_edits) -> dict:
    """The shipped manifest cut down to ``notebooks``, with ``limits`` changed."""
    from dnnl.exercises.grading.manifest import load_manifest, validate

    m = load_manifest()
    m["notebooks"] = [nb for nb in m["notebooks"] if nb["name"] in notebooks]
    m["limits"] = {**m["limits"], **(limits or {})}
    return validate(m)
