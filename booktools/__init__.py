"""The book's tooling: chapters (``book/*.qmd``) to notebooks, cross-references, the Colab cell.

Not part of the installed ``dnnl`` package (``pyproject.toml`` installs only ``dnnl*``): it is used by
``scripts/``, the tests and the benchmarks, from a checkout of the repository. One module per job:

* :mod:`booktools.paths` - the repository root and URL, the chapter files, their titles and numbers;
* :mod:`booktools.crossref` - Quarto's cross-references and citations, written out for notebooks;
* :mod:`booktools.colab` - the "Open in Colab" badge and the setup cell of every chapter;
* :mod:`booktools.markdown` - a chapter's markdown as Jupyter shows it;
* :mod:`booktools.notebooks` - the student and solution notebooks.

Notebooks run with :func:`dnnl.exercises._notebook.run_notebook` (the grader runs only extracted cells).
"""
from dnnl.exercises._notebook import STUB_MESSAGE, run_notebook

from .colab import badge_markdown, colab_url, setup_cell_source, sync_sources
from .crossref import References, book_references, resolve_references
from .markdown import notebook_markdown, plain_claims
from .notebooks import (BEGIN, END, build_notebooks, chapter_notebook, solution_source, split_options,
                        student_source)
from .paths import chapter_numbers, chapter_paths, page_paths, page_title, repo_root, repo_url

__all__ = [
    "STUB_MESSAGE", "run_notebook", "badge_markdown", "colab_url", "setup_cell_source", "sync_sources",
    "References", "book_references", "resolve_references", "notebook_markdown", "plain_claims",
    "BEGIN", "END", "build_notebooks", "chapter_notebook", "solution_source", "split_options", "student_source",
    "chapter_numbers", "chapter_paths", "page_paths", "page_title", "repo_root", "repo_url",
]
