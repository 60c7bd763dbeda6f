"""Command line: ``python -m dnnl.exercises.grade`` (see :mod:`dnnl.exercises.grade` for the usage)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .folder import ID_MODES, find_notebooks, grade_folder
from .manifest import ManifestError, dumps, load_manifest, make_manifest, validate
from .sandbox import GraderEnvironmentError

EXIT_OK, EXIT_USAGE, EXIT_ENVIRONMENT = 0, 2, 3


def _parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dnnl.exercises.grade", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("submissions", nargs="?", type=Path, help="a folder of submitted .ipynb files (or one file)")
    p.add_argument("--manifest", type=Path, help="the grading manifest (default: the one shipped with dnnl)")
    p.add_argument("--out", type=Path, help="write grades.csv, grades.json and feedback/ to this folder")
    p.add_argument("--csv", type=Path, help="also write grades.csv to this file")
    p.add_argument("--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
    p.add_argument("--id", dest="id_from", choices=ID_MODES, default="auto",
                   help="student id: the submission's folder, its file stem, its path (default: auto)")
    p.add_argument("--cell-timeout", "--timeout", type=float, help="seconds for one exercise (manifest: 60)")
    p.add_argument("--notebook-timeout", type=float, help="seconds for one notebook (manifest: 300)")
    p.add_argument("--memory-mb", type=int, help="address-space limit per grading process (manifest: 6144)")
    p.add_argument("--hints", choices=("terse", "full"), help="hint level for every exercise")
    p.add_argument("--no-notebooks", action="store_true", help="skip the executed feedback notebooks")
    p.add_argument("--make-manifest", type=Path, metavar="FOLDER", help="write a manifest for these notebooks")
    p.add_argument("-o", "--output", type=Path, help="where --make-manifest writes (default: stdout)")
    p.add_argument("--gradescope", type=Path, metavar="ZIP", help="write a Gradescope autograder zip")
    p.add_argument("--autograder", action="store_true", help="(inside Gradescope) grade /autograder/submission")
    return p


def _override(manifest: dict, args) -> dict:
    limits = dict(manifest["limits"])
    for key, value in (("cell_seconds", args.cell_timeout), ("notebook_seconds", args.notebook_timeout),
                       ("memory_mb", args.memory_mb)):
        if value is not None:
            if value <= 0:
                raise ManifestError(f"--{key.replace('_', '-')} must be positive (got {value})")
            limits[key] = value
    manifest = {**manifest, "limits": limits}
    if args.hints:
        manifest["hints"] = args.hints
        for nb in manifest["notebooks"]:
            for ex in nb["exercises"]:
                ex["hints"] = args.hints
    return manifest


def _make(args) -> int:
    text = dumps(make_manifest(args.make_manifest, hints=args.hints or "terse"))
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _grade(args, manifest: dict) -> int:
    from . import preflight
    from .report import format_table, write_csv, write_outputs

    if args.jobs < 1:
        print(f"error: --jobs must be at least 1 (got {args.jobs})", file=sys.stderr)
        return EXIT_USAGE
    if args.submissions is None or not args.submissions.exists():
        print(f"error: {args.submissions} is not a folder or a notebook", file=sys.stderr)
        return EXIT_USAGE
    if not find_notebooks(args.submissions):
        print(f"error: no .ipynb files under {args.submissions}", file=sys.stderr)
        return EXIT_USAGE
    preflight.require(manifest)
    results = grade_folder(args.submissions, manifest, jobs=args.jobs, id_from=args.id_from,
                           feedback=not args.no_notebooks and args.out is not None, progress=True)
    print(format_table(manifest, results))
    if args.out:
        write_outputs(manifest, results, args.out)
        print(f"\nwrote {args.out}/grades.csv, grades.json and feedback/")
    if args.csv:
        write_csv(manifest, results, args.csv)
        print(f"wrote {args.csv}")
    return EXIT_OK


def main(argv: list[str] | None = None, doc: str = "") -> int:
    args = _parser(doc).parse_args(argv)
    try:
        if args.make_manifest:
            return _make(args)
        manifest = _override(load_manifest(args.manifest), args)
        if args.gradescope:
            from .gradescope import write_zip

            write_zip(args.gradescope, manifest)
            print(f"wrote {args.gradescope}")
            return EXIT_OK
        if args.autograder:
            from .gradescope import run_autograder

            return run_autograder(manifest)
        return _grade(args, manifest)
    except ManifestError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except GraderEnvironmentError as err:
        print(f"environment error (no student was graded): {err}", file=sys.stderr)
        return EXIT_ENVIRONMENT
