"""The book's exercise cells: each code cell that holds ``# BEGIN SOLUTION``, as the solution and as the stub.

``solutions()`` maps each function name to the function defined by its cell with the solution kept;
``stubs()`` to the same function with the solution replaced by ``raise NotImplementedError`` (as the
student editions have it); ``solution_lines()`` lists the solution's own code lines, for the test that
terse hints never give them away.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parents[2] / "book"
sys.path.insert(0, str(BOOK.parent))  # booktools/, the book's tooling (not installed)
from booktools.notebooks import solution_source, student_source  # noqa: E402

_CELL = re.compile(r"```\{python\}\n(.*?)```", re.S)
_SOLUTION = re.compile(r"\n([ \t]*)# BEGIN SOLUTION\n(.*?)\n[ \t]*# END SOLUTION", re.S)


def cells(chapters: str = "0[1-9]-*.qmd") -> list[tuple[str, str]]:
    """(chapter file name, cell source) of every exercise cell, in book order."""
    out = []
    for path in sorted(BOOK.glob(chapters)):
        out += [(path.name, c) for c in _CELL.findall(path.read_text(encoding="utf-8")) if "# BEGIN SOLUTION" in c]
    return out


def _defs(source: str) -> dict:
    space: dict = {}
    exec(compile(source, "<exercise cell>", "exec"), space)  # noqa: S102
    return {k: v for k, v in space.items() if callable(v) and getattr(v, "__module__", None) is None
            and not k.startswith("_")}


def _functions(edition) -> dict:
    out = {}
    for _, src in cells():
        out.update(_defs(edition(src)))
    return out


def solutions() -> dict:
    """The answer key's functions: each region's code kept, its marker and ``# HINT:`` lines dropped."""
    return _functions(solution_source)


def stubs() -> dict:
    """The student edition's functions: the solution replaced by ``raise NotImplementedError(<# HINT text>)``."""
    return _functions(student_source)


def solution_lines(min_len: int = 12) -> list[str]:
    lines = []
    for _, src in cells():
        for m in _SOLUTION.finditer(src):
            lines += [ln.split("#")[0].strip() for ln in m.group(2).splitlines()]
    return sorted({ln for ln in lines if len(ln) >= min_len})


def exercise_checks(chapters: str = "0[1-9]-*.qmd") -> dict[str, str]:
    """Function name -> the check the book calls on it (``check_x(fn)`` in the cell after the exercise)."""
    out = {}
    for path in sorted(BOOK.glob(chapters)):
        for check, fn in re.findall(r"^(check_\w+)\((\w+)\)", path.read_text(encoding="utf-8"), re.M):
            out[fn] = check
    return out
