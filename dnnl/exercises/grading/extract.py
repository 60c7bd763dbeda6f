"""What the grader takes from a submission: the definitions in the cell that defines an exercise function.

Only the top-level imports, ``def``/``class`` statements and assignments of that cell are kept (with
their decorators and default values); calls, loops, prints and plots are dropped. Nothing is read from
the notebook's outputs. Cells are named by their number among the code cells ("code cell 7"), the way a
student counts them.
"""
from __future__ import annotations

import ast
import threading
from dataclasses import dataclass

_KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
         ast.AnnAssign)


@dataclass
class Definition:
    """The definitions of one exercise function, ready to compile as ``<code cell N>``."""

    function: str
    cell: int | None        # number among code cells, 1-based; None when no cell defines it
    source: str = ""        # the kept statements, at their original line numbers
    full_source: str = ""   # the whole cell, for the feedback notebook
    problem: str | None = None  # why nothing could be taken (a syntax error, say)
    check_cell: int | None = None
    check_source: str = ""


def _binds(node: ast.stmt, name: str) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id == name and node.value is not None
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((a.asname or a.name.split(".")[0]) == name for a in node.names)
    return False


def kept_source(source: str) -> tuple[str, bool]:
    """(the kept statements of ``source`` padded to their line numbers, whether any was dropped)."""
    with _PARSE_LOCK:
        tree = ast.parse(source)
    lines = source.split("\n")
    out = [""] * len(lines)
    dropped = False
    for node in tree.body:
        if not isinstance(node, _KEEP):
            dropped = True
            continue
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        for i in range(first, node.end_lineno):
            out[i] = lines[i]
    return "\n".join(out), dropped


# CPython 3.11 keeps the AST constructor's recursion depth in shared state: ast.parse from several grading
# threads at once can fail with "SystemError: AST constructor recursion depth mismatch". One parse at a time.
_PARSE_LOCK = threading.Lock()


def _parse(source: str):
    try:
        with _PARSE_LOCK:
            return ast.parse(source), None
    except SyntaxError as err:
        return None, f"{err.msg} (line {err.lineno})"


def find_definition(cells: list[str], function: str, check: str) -> Definition:
    """The last code cell that binds ``function`` at top level, and the last cell that calls ``check``."""
    found = Definition(function, None)
    for number, source in enumerate(cells, start=1):
        tree, problem = _parse(source)
        if tree is None:
            if f"def {function}" in source:
                found = Definition(function, number, full_source=source, problem=f"a syntax error: {problem}")
            continue
        if any(_binds(node, function) for node in tree.body):
            kept, _ = kept_source(source)
            found = Definition(function, number, kept, source)
    for number, source in enumerate(cells, start=1):
        if f"{check}(" in source:
            found.check_cell, found.check_source = number, source
    return found
