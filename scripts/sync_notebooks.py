"""Build notebooks/*.ipynb (student) and notebooks/solutions/*.ipynb (full) from book/*.qmd.

The teacher's page (any page that is not a numbered chapter) goes to notebooks/solutions/ only:
notebooks/ holds the student editions and nothing with an answer in it.

    python scripts/sync_notebooks.py          # write the repository URL into each chapter, then the notebooks
    python scripts/sync_notebooks.py --check  # change nothing; exit 1 and list what is out of date

Edit the chapters, never the notebooks: they are generated, without outputs, byte for byte the same
every time. The repository URL comes from [project.urls] Repository in pyproject.toml.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from booktools import build_notebooks, chapter_paths, repo_url  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="report stale files and exit 1; write nothing")
    args = parser.parse_args(argv)
    changed = build_notebooks(ROOT, check=args.check)
    names = [str(p.relative_to(ROOT)) for p in changed]
    chapters = len(chapter_paths(ROOT))
    if args.check:
        if names:
            print("Out of date (run `python scripts/sync_notebooks.py`):")
            print("\n".join(f"  {n}" for n in names))
            return 1
        print(f"{chapters} chapters and their notebooks are in sync with {repo_url(ROOT)}")
        return 0
    done = [f"{'wrote' if (ROOT / n).exists() else 'removed'} {n}" for n in names]
    print("\n".join(done) or "nothing to do: every notebook is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
