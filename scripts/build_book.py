"""Build the book.

    python scripts/build_book.py               # the reader's edition
    python scripts/build_book.py --solutions   # with exercise solutions and written answers

With Quarto installed this runs `quarto render` (with `--profile solutions` for the solutions edition)
into _book/ (or _book-solutions/). Without Quarto it syncs the notebooks, executes every chapter with
nbclient (quick or full mode, as `dnnl.get_mode()` decides) and converts the results to HTML in
_book_html/ (or _book_html-solutions/), with an index.html that links the chapters. As in the Quarto
build, the reader's edition shows exercise stubs but runs the solutions, so its checks show a pass.
"""
from __future__ import annotations

import argparse
import html
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _quarto(solutions: bool) -> int:
    from booktools import build_notebooks

    build_notebooks(ROOT)
    cmd = ["quarto", "render"] + (["--profile", "solutions"] if solutions else [])
    print("running:", " ".join(cmd))
    code = subprocess.call(cmd, cwd=ROOT)
    out = "_book-solutions" if solutions else "_book"
    if code == 0:
        print(f"rendered the book with Quarto into {ROOT / out}/")
    return code


def _fallback(solutions: bool, only: list[str], timeout: int) -> int:
    import nbformat
    from nbconvert import HTMLExporter

    import dnnl
    from booktools import (book_references, build_notebooks, chapter_notebook, page_paths,
                           run_notebook)

    changed = build_notebooks(ROOT)
    print(f"Quarto is not installed: executing the notebooks and converting them to HTML instead "
          f"({len(changed)} notebook file(s) re-synced first)")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    print(dnnl.runtime_info())
    out_dir = ROOT / ("_book_html-solutions" if solutions else "_book_html")
    out_dir.mkdir(exist_ok=True)
    exporter = HTMLExporter(template_name="lab")
    sources = page_paths(ROOT)
    if only:
        sources = [p for p in sources if p.stem in only]
    pages = []
    refs = book_references(ROOT)
    for path in sources:
        text = path.read_text(encoding="utf-8")
        run = chapter_notebook(text, path.stem, solutions=True, keep_empty=True, refs=refs)
        shown = run if solutions else chapter_notebook(text, path.stem, solutions=False, keep_empty=True, refs=refs)
        print(f"  executing {path.relative_to(ROOT)} ...", flush=True)
        try:
            seconds = run_notebook(run, cwd=ROOT, timeout=timeout)
        except Exception as err:  # keep going: a broken chapter should not hide the others
            print(f"    FAILED: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
            seconds, failed = float("nan"), True
        else:
            failed = False
        for shown_cell, run_cell in zip(shown.cells, run.cells):
            if shown_cell.cell_type == "code":
                shown_cell.outputs = run_cell.get("outputs", [])
                shown_cell.execution_count = run_cell.get("execution_count")
        shown.cells = [c for c in shown.cells if c.cell_type != "markdown" or c.source.strip()]
        body, _ = exporter.from_notebook_node(shown, resources={"metadata": {"name": path.stem}})
        target = out_dir / ("preface.html" if path.stem == "index" else f"{path.stem}.html")
        target.write_text(body, encoding="utf-8")
        title = (shown.cells[0].source.lstrip("# ").strip() if shown.cells else path.stem)
        pages.append((target.name, title, seconds, failed))
        print(f"    wrote {target.relative_to(ROOT)} ({seconds:.0f} s)")
    items = "\n".join(
        f'<li><a href="{name}">{html.escape(title)}</a> <small>({"failed" if failed else f"{sec:.0f} s"})</small></li>'
        for name, title, sec, failed in pages)
    edition = "solutions edition" if solutions else "reader's edition"
    (out_dir / "index.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>dnnl: the book ({edition})</title>"
        f"<h1>dnnl: the book ({edition})</h1><p>{html.escape(dnnl.runtime_info())}</p><ol>{items}</ol>\n",
        encoding="utf-8")
    print(f"open {out_dir.relative_to(ROOT)}/index.html ({len(pages)} pages)")
    return 1 if any(failed for *_, failed in pages) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--solutions", action="store_true", help="build the edition with solutions")
    parser.add_argument("--no-quarto", action="store_true", help="use the notebook route even if Quarto is installed")
    parser.add_argument("--only", nargs="*", default=[], metavar="NAME",
                        help="notebook route only: build just these pages (e.g. 01-forward index)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell (notebook route)")
    args = parser.parse_args(argv)
    if shutil.which("quarto") and not args.no_quarto:
        return _quarto(args.solutions)
    return _fallback(args.solutions, args.only, args.timeout)


if __name__ == "__main__":
    raise SystemExit(main())
