"""The teacher's manifest: which checks each notebook must pass, for how many points, with which hints.

It is made from the released notebooks (the answer keys or the student editions) and is plain JSON,
meant to be edited: points, partial credit, hint level, limits. A notebook is matched to a submission by
its file name (``01-forward.ipynb``). Its ``preamble`` is the released notebook's import lines, which the
exercise code may rely on; it comes from the teacher's copy, never from the submission.
"""
from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path

FORMAT = "dnnl-grading-manifest/1"
#: Grader statuses: the four of the checks, and three of the grader's own.
STATUSES = ("PASS", "FAIL", "TODO", "ERROR", "MISSING", "TIMEOUT", "CRASH")
DEFAULT_CREDIT = {"PASS": 1.0, "FAIL": 0.0, "TODO": 0.0, "ERROR": 0.0, "MISSING": 0.0, "TIMEOUT": 0.0,
                  "CRASH": 0.0}
DEFAULT_LIMITS = {"cell_seconds": 60, "notebook_seconds": 300, "memory_mb": 6144}
DEFAULT_PATH = Path(__file__).with_name("manifest.json")
#: Notebooks that show the checks at work but are no assignment.
SKIP = ("teacher.ipynb",)
_CALL = re.compile(r"\b(check_[A-Za-z0-9_]+)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*[,)]")
_DATA_CALL = re.compile(r"\b(mnist|mnist_tensors)\s*\(")


class ManifestError(ValueError):
    """The manifest is malformed; the message says where."""


def code_cells(nb) -> list[str]:
    """The sources of a notebook's code cells, in order ("code cell n" is item n - 1)."""
    return [c.source for c in nb.cells if c.cell_type == "code"]


def check_calls(source: str, known: set[str]) -> list[tuple[str, str]]:
    """``(check, function)`` for each ``check_x(fn)`` call in ``source`` whose check is known."""
    return [(c, f) for c, f in _CALL.findall(source) if c in known]


#: Names a student may use without importing them, when the notebook imports them (cheap to load).
ALWAYS = ("math", "torch", "dnnl", "ddpm", "F", "nn", "np")


def _imports(source: str) -> list[tuple[str, set[str]]]:
    """(the import statement's text, the names it binds) for each top-level import of ``source``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [(ast.get_source_segment(source, node), {(a.asname or a.name).split(".")[0] for a in node.names})
            for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]


def _used_names(sources: list[str]) -> set[str]:
    used: set[str] = set()
    for source in sources:
        try:
            used |= {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
        except SyntaxError:
            continue
    return used


def preamble_of(cells: list[str], known: set[str]) -> str:
    """The imports of the notebook's other cells that its exercise cells use (or that are in ``ALWAYS``),
    each once, in order: what an exercise function may rely on without importing it itself."""
    exercise = [s for s in cells if check_calls(s, known) or "BEGIN SOLUTION" in s or "NotImplementedError" in s]
    wanted = _used_names(exercise) | set(ALWAYS)
    lines: list[str] = []
    for source in cells:
        if source in exercise:
            continue
        for line, names in _imports(source):
            if names & wanted and line not in lines and "*" not in names:
                lines.append(line)
    return "\n".join(lines)


def _notebook_entry(path: Path, info: dict[str, dict], hints: str) -> dict | None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = code_cells(nb)
    exercises, seen = [], set()
    for source in cells:
        for check, function in check_calls(source, set(info)):
            if check in seen:
                continue
            seen.add(check)
            exercises.append({"check": check, "function": function, "points": 1, "hints": hints})
    if not exercises:
        return None
    chapter = info[exercises[0]["check"]]["chapter"]
    preamble = preamble_of(cells, set(info))
    return {"name": path.name, "chapter": chapter, "preamble": preamble,
            "needs_data": bool(_DATA_CALL.search(preamble)), "exercises": exercises}


def make_manifest(folder, *, hints: str = "terse") -> dict:
    """A manifest for every notebook in ``folder`` (not recursive) that calls at least one check."""
    from ..checks import check_info

    info = {i["name"]: i for i in check_info()}
    paths = [p for p in sorted(Path(folder).glob("*.ipynb")) if p.name not in SKIP]
    notebooks = [e for p in paths if (e := _notebook_entry(p, info, hints))]
    if not notebooks:
        raise ManifestError(f"no notebook in {folder} calls a check (check_<name>(function))")
    return {"format": FORMAT, "hints": hints, "credit": dict(DEFAULT_CREDIT), "limits": dict(DEFAULT_LIMITS),
            "notebooks": notebooks}


def _need(entry: dict, key: str, kind, where: str):
    if key not in entry or not isinstance(entry[key], kind):
        raise ManifestError(f"{where}: '{key}' must be a {getattr(kind, '__name__', kind)}")
    return entry[key]


def validate(manifest: dict) -> dict:
    """``manifest`` with defaults filled in; :class:`ManifestError` naming the first problem."""
    from ..checks import list_checks

    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ManifestError(f"not a grading manifest (expected \"format\": \"{FORMAT}\")")
    m = copy.deepcopy(manifest)
    m["credit"] = {**DEFAULT_CREDIT, **m.get("credit", {})}
    m["limits"] = {**DEFAULT_LIMITS, **m.get("limits", {})}
    m.setdefault("hints", "terse")
    known = set(list_checks())
    for k, nb in enumerate(_need(m, "notebooks", list, "manifest")):
        where = f"notebooks[{k}]"
        _need(nb, "name", str, where)
        nb.setdefault("preamble", "")
        nb.setdefault("needs_data", bool(_DATA_CALL.search(nb["preamble"])))
        for j, ex in enumerate(_need(nb, "exercises", list, where)):
            at = f"{where} ({nb['name']}) exercise {j + 1}"
            if _need(ex, "check", str, at) not in known:
                raise ManifestError(f"{at}: unknown check {ex['check']!r}; known: {', '.join(sorted(known))}")
            _need(ex, "function", str, at)
            ex.setdefault("points", 1)
            ex.setdefault("hints", m["hints"])
            if ex["hints"] not in ("full", "terse"):
                raise ManifestError(f"{at}: hints must be 'full' or 'terse' (got {ex['hints']!r})")
            ex["credit"] = {**m["credit"], **ex.get("credit", {})}
        nb.setdefault("chapter", k + 1)
    return m


def load_manifest(path=None) -> dict:
    """The manifest at ``path`` (default: the one shipped with the package), validated."""
    path = Path(path) if path else DEFAULT_PATH
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ManifestError(f"could not read the manifest {path}: {err}") from None
    return validate(data)


def dumps(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
