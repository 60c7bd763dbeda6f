"""Grade submitted notebooks against the teacher's manifest, where the students' code cannot reach the verdicts.

    python -m dnnl.exercises.grade SUBMISSIONS/ --out results/ [--jobs N] [--manifest manifest.json]
    python -m dnnl.exercises.grade --make-manifest notebooks/solutions -o manifest.json
    python -m dnnl.exercises.grade --gradescope autograder.zip [--manifest manifest.json]

The manifest (default: the one shipped with dnnl, made from the released notebooks) lists each
notebook's checks, the function each one grades, its points and hint level, and the limits. For each
submission, a fresh process runs the manifest's imports, then only the definitions (imports, def, class,
assignments) of the cell that defines each exercise function, then the check, with the package's own
implementation of that exercise switched off. Nothing is read from the notebook's outputs. Exit code 0
when grading worked, whatever the students scored; 2 for a usage error; 3 when the environment cannot
grade (no student is scored then).
"""
from __future__ import annotations

from .grading.cli import main as _main
from .grading.folder import find_notebooks, grade_folder
from .grading.manifest import load_manifest, make_manifest
from .grading.preflight import preflight
from .grading.report import format_table, write_outputs

__all__ = ["main", "grade_folder", "find_notebooks", "load_manifest", "make_manifest", "preflight",
           "format_table", "write_outputs"]


def main(argv: list[str] | None = None) -> int:
    return _main(argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(main())
