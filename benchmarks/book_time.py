"""Wall time to execute every page of the book in quick mode, as a reader's Jupyter kernel runs it.

    python benchmarks/book_time.py                 # every page, one after the other
    python benchmarks/book_time.py --only index    # some pages (the smoke test runs the preface)

Each page (the preface, the chapters, the teacher's page) becomes its solutions notebook, exactly as
``scripts/build_book.py`` builds it, and runs in a fresh kernel with ``DNNL_MODE=quick`` and outputs in
a temporary folder. Kernel start-up counts, since a reader waits for it too.
Writes benchmarks/results/book_time.json (not for ``--only`` runs).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import machine, provenance, save_result  # noqa: E402  (benchmarks/_machine.py)
from booktools import book_references, chapter_notebook, page_paths, run_notebook  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], metavar="NAME", help="just these pages (e.g. index)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    print(machine(), flush=True)
    sources = page_paths(REPO)
    if args.only:
        sources = [p for p in sources if p.stem in args.only]
        if not sources:
            raise SystemExit(f"--only names no page; pages are: {', '.join(p.stem for p in page_paths(REPO))}")
    refs = book_references(REPO)
    pages = {}
    with tempfile.TemporaryDirectory() as out:
        os.environ.update(DNNL_MODE="quick", DNNL_OUT=out, MPLBACKEND="module://matplotlib_inline.backend_inline")
        start_all = time.perf_counter()
        for path in sources:
            nb = chapter_notebook(path.read_text(encoding="utf-8"), path.stem, solutions=True, keep_empty=True,
                                  refs=refs)
            pages[path.stem] = round(run_notebook(nb, cwd=REPO, timeout=args.timeout), 1)
            print(f"{path.stem}: {pages[path.stem]:.1f} s", flush=True)
        total = time.perf_counter() - start_all
    result = {
        "pages_seconds": pages,
        "total_seconds": round(total, 1),
        "total_minutes": round(total / 60, 2),
        "target_minutes": 10,
        "mode": "quick (DNNL_MODE=quick), CPU",
        **provenance(),
        "command": "python benchmarks/book_time.py",
    }
    return save_result("book_time.json", result, write=not args.only)


if __name__ == "__main__":
    main()
