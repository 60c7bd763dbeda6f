"""Grade a folder of submissions: find them, name the student, match each to a manifest notebook, run."""
from __future__ import annotations

import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .runner import SubmissionResult, grade_submission

ID_MODES = ("auto", "folder", "stem", "path")


def find_notebooks(root: Path) -> list[Path]:
    """``root`` itself if it is a notebook, else every .ipynb under it (not Jupyter's checkpoint copies)."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def student_id(path: Path, root: Path, how: str = "auto") -> str:
    """``folder``: the first folder under ``root`` (one folder per student); ``stem``: the file name without
    .ipynb; ``path``: the relative path without .ipynb; ``auto``: folder when there is one, else stem."""
    rel = path.relative_to(root) if root.is_dir() else Path(path.name)
    if how == "auto":
        how = "folder" if len(rel.parts) > 1 else "stem"
    if how == "folder":
        return rel.parts[0] if len(rel.parts) > 1 else rel.stem
    if how == "path":
        return str(rel.with_suffix(""))
    return rel.stem


def _defined_names(path: Path) -> set[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    return set(re.findall(r"def ([A-Za-z_][A-Za-z0-9_]*)\s*\(", text))


def match_notebook(path: Path, manifest: dict) -> dict | None:
    """The manifest notebook for ``path``: the same file name, else the same leading number ("01"), else the
    one whose exercise functions the file defines most (at least one); None when nothing fits."""
    notebooks = manifest["notebooks"]
    for nb in notebooks:
        if nb["name"] == path.name:
            return nb
    number = re.match(r"\d+", path.name)
    if number:
        same = [nb for nb in notebooks if re.match(rf"0*{int(number.group())}\D", nb["name"])]
        if len(same) == 1:
            return same[0]
    names = _defined_names(path)
    scored = [(sum(ex["function"] in names for ex in nb["exercises"]), k) for k, nb in enumerate(notebooks)]
    best, k = max(scored, default=(0, None))
    return notebooks[k] if best > 0 else None


def default_jobs_threads(jobs: int) -> int:
    """Torch threads per grading process: the cores shared out, so jobs × threads ≤ cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, jobs))


def grade_folder(root, manifest: dict, *, jobs: int = 1, id_from: str = "auto", feedback: bool = True,
                 progress: bool = False) -> list[SubmissionResult]:
    """Grade every notebook under ``root`` (run :func:`.preflight.require` first); results in path order."""
    root = Path(root)
    threads = default_jobs_threads(jobs)
    paths = find_notebooks(root)

    def one(path: Path) -> SubmissionResult:
        rel = str(path.relative_to(root)) if root.is_dir() else path.name
        entry = match_notebook(path, manifest)
        res = grade_submission(path, student_id(path, root, id_from), rel, entry, manifest["limits"],
                               threads=threads, hints=manifest.get("hints", "terse"), feedback=feedback)
        if progress:
            print(f"graded {rel}: {res.points:g}/{res.max_points:g} in {res.seconds:.1f} s", file=sys.stderr,
                  flush=True)
        return res

    if jobs <= 1:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, paths))
