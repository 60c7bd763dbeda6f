"""One source for the book: turn ``book/*.qmd`` chapters into student and solution notebooks.

``jupytext`` reads a chapter as R Markdown, which keeps ```` ```{python} ```` chunks as code cells.
From each chapter this module builds two notebooks:

* ``notebooks/<name>.ipynb`` for students: every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` region
  becomes ``raise NotImplementedError(<hint>)`` and written answers are removed;
* ``notebooks/solutions/<name>.ipynb`` with everything.

A page that is not a numbered chapter (the teacher's page) is built into ``notebooks/solutions/`` only.

Quarto's cell options (``#| label``, ``#| fig-cap``, ...) are not shown to the student: each figure's or
table's caption becomes a short markdown cell after its code cell. Run ``python scripts/sync_notebooks.py``
(or ``--check``) rather than calling this module directly.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from dnnl.exercises._notebook import STUB_MESSAGE

from .colab import sync_sources, sync_text
from .crossref import References, bibliography_markdown, book_references, cited_keys, resolve_references
from .markdown import BIBLIOGRAPHY_MARK, notebook_markdown, plain_claims
from .paths import chapter_paths, front_matter, is_numbered_chapter, repo_root, repo_url

__all__ = ["BEGIN", "END", "HINT", "student_source", "solution_source", "split_options", "caption_markdown",
           "chapter_notebook", "build_notebooks"]

BEGIN, END, HINT = "# BEGIN SOLUTION", "# END SOLUTION", "# HINT:"
_CAPTIONS = (("fig-cap", "Figure"), ("tbl-cap", "Table"))


# --------------------------------------------------------------------------- student version of code
def _regions(lines: list[str]) -> list[tuple[int, int, int | None]]:
    """(BEGIN line, END line, the ``# HINT:`` line just above BEGIN or None) of each solution region, 0-based;
    a ValueError names the line of an unmatched or nested marker."""
    found, i = [], 0
    while i < len(lines):
        stripped = lines[i].strip()
        if stripped == END:
            raise ValueError(f"line {i + 1}: '{END}' without a matching '{BEGIN}'")
        if stripped != BEGIN:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip() != END:
            if lines[j].strip() == BEGIN:
                raise ValueError(f"line {j + 1}: nested '{BEGIN}' (regions cannot nest)")
            j += 1
        if j == len(lines):
            raise ValueError(f"line {i + 1}: '{BEGIN}' has no matching '{END}'")
        hint = i - 1 if i and lines[i - 1].strip().startswith(HINT) else None
        found.append((i, j, hint))
        i = j + 1
    return found


def student_source(code: str, default_hint: str = STUB_MESSAGE) -> str:
    """``code`` with each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` region (and a ``# HINT:`` line
    just above it) replaced by ``raise NotImplementedError(<hint>)`` at the region's indentation."""
    lines = code.split("\n")
    out, last = [], 0
    for begin, end, hint_at in _regions(lines):
        out += lines[last:begin if hint_at is None else hint_at]
        hint = lines[hint_at].strip()[len(HINT):].strip() if hint_at is not None else ""
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        out.append(f"{indent}raise NotImplementedError({_py_string(hint or default_hint)})")
        last = end + 1
    return "\n".join(out + lines[last:])


def solution_source(code: str) -> str:
    """``code`` as the answer key runs it: each region's code kept, its marker lines and ``# HINT:`` dropped."""
    lines = code.split("\n")
    drop = {k for begin, end, hint_at in _regions(lines) for k in (begin, end, hint_at) if k is not None}
    return "\n".join(line for k, line in enumerate(lines) if k not in drop)


def _py_string(text: str) -> str:
    """A Python string literal for ``text``: double quotes unless the text holds a double quote."""
    if '"' in text and "'" not in text and "\\" not in text:
        return f"'{text}'"
    return json.dumps(text, ensure_ascii=False)


# --------------------------------------------------------------------------- Quarto cell options
def split_options(code: str) -> tuple[dict, str]:
    """(the ``#|`` options at the top of a cell, as YAML values; the code without them)."""
    lines = code.split("\n")
    n = 0
    while n < len(lines) and lines[n].startswith("#|"):
        n += 1
    if not n:
        return {}, code
    import yaml

    block = "\n".join(line[2:].removeprefix(" ") for line in lines[:n])
    try:
        options = yaml.safe_load(block) or {}
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" (option line {where.line + 1}, column {where.column + 1})" if where else ""
        raise ValueError(f"cell options are not valid YAML: {getattr(err, 'problem', err)}{at}; "
                         f"in double quotes write a backslash as \\\\, or use single quotes") from None
    if not isinstance(options, dict):
        raise ValueError(f"cell options must be `#| key: value` lines (got {block!r})")
    return options, "\n".join(lines[n:])


def caption_markdown(options: dict, refs: References | None) -> str | None:
    """The markdown cell that follows a figure or table cell: "**Figure 1.2.** caption", or None."""
    for key, word in _CAPTIONS:
        caption = options.get(key)
        if not caption:
            continue
        label = str(options.get("label", ""))
        name = refs.ref(label) if refs is not None and label in refs.labels else word
        text = f"**{name}.** {str(caption).strip()}"
        text = resolve_references(text, refs) if refs is not None else text
        return plain_claims(text)
    return None


# --------------------------------------------------------------------------- one notebook
def _code_cells(source: str, *, solutions: bool, refs: References | None):
    """The code cell (and the caption cell after it, if any) for one chunk's ``source``."""
    import nbformat

    options, code = split_options(source)
    if not solutions:
        code = student_source(code)
    if refs is not None:
        code = resolve_references(code, refs, markdown=False)
    cell = nbformat.v4.new_code_cell(code)
    tags = list(options.get("tags") or [])
    if options.get("error") is True:   # Quarto's "this cell raises": nbclient's tag for the same
        tags.append("raises-exception")
    cells = [(cell, {"tags": tags} if tags else {})]
    caption = caption_markdown(options, refs)
    if caption:
        cells.append((nbformat.v4.new_markdown_cell(caption), {}))
    return cells


def _title(text: str) -> str | None:
    meta, _ = front_matter(text)
    return meta.get("title") if isinstance(meta.get("title"), str) else None


def nb_prose(nb) -> str:
    """The markdown of every cell of a parsed chapter, joined (what its citations are read from)."""
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def chapter_notebook(text: str, name: str, *, solutions: bool, keep_empty: bool = False,
                     refs: References | None = None):
    """The notebook (an ``nbformat`` node, no outputs) for the chapter source ``text``.

    ``keep_empty=True`` keeps markdown cells that end up empty, so that the student and solution
    versions have the same cells in the same places. With ``refs`` (see :func:`book_references`),
    cross-references and citations are written out as Jupyter cannot render them."""
    import jupytext
    import nbformat

    nb = jupytext.reads(text, fmt="Rmd")
    title = _title(text)
    cells = [(nbformat.v4.new_markdown_cell(f"# {title}"), {})] if title else []
    for cell in nb.cells:
        source = cell.source
        if cell.cell_type == "raw" and source.startswith("---"):
            continue  # the front matter became the title cell
        if cell.cell_type == "markdown":
            source = notebook_markdown(source, solutions=solutions)
            if refs is not None:
                source = resolve_references(source, refs)
                if BIBLIOGRAPHY_MARK in source:
                    works = bibliography_markdown(cited_keys(nb_prose(nb), refs), refs)
                    source = source.replace(BIBLIOGRAPHY_MARK, works)
            if source.strip() or keep_empty:
                cells.append((nbformat.v4.new_markdown_cell(source), {}))
        elif cell.cell_type == "code":
            cells += _code_cells(source, solutions=solutions, refs=refs)
        else:
            cells.append((nbformat.v4.new_raw_cell(source), {}))
    for i, (cell, metadata) in enumerate(cells):
        cell.id = f"{name[:40]}-{i:03d}".replace(".", "-")
        cell.metadata = metadata
    out = nbformat.v4.new_notebook(cells=[cell for cell, _ in cells])
    out.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "jupytext": {"text_representation": {"extension": ".qmd", "format_name": "quarto"},
                     "source": f"book/{name}.qmd"},
        "colab": {"provenance": [], "toc_visible": True},
        "dnnl": {"version": "solutions" if solutions else "student",
                 "generated_by": "scripts/sync_notebooks.py; edit the .qmd, not this file"},
    }
    out.nbformat, out.nbformat_minor = 4, 5
    return out


# --------------------------------------------------------------------------- every notebook
@dataclass
class _Target:
    path: Path
    text: str


def _editions(root: Path, path: Path) -> list[tuple[bool, Path]]:
    """(solutions?, folder) of each notebook built from ``path``. A chapter gets a student notebook in
    ``notebooks/`` and its answer key in ``notebooks/solutions/``; any other page (the teacher's) is
    for teachers only, so it gets the second alone and ``notebooks/`` holds nothing but student work."""
    key = (True, root / "notebooks" / "solutions")
    return [(False, root / "notebooks"), key] if is_numbered_chapter(path) else [key]


def _targets(root: Path, *, sources: dict[Path, str] | None = None) -> list[_Target]:
    import nbformat

    targets = []
    refs = book_references(root)
    for path in chapter_paths(root):
        text = sources[path] if sources and path in sources else path.read_text(encoding="utf-8")
        for solutions, folder in _editions(root, path):
            try:
                nb = chapter_notebook(text, path.stem, solutions=solutions, refs=refs)
            except ValueError as err:
                raise ValueError(f"{path.relative_to(root)}: {err}") from None
            targets.append(_Target(folder / f"{path.stem}.ipynb", nbformat.writes(nb) + "\n"))
    return targets


def build_notebooks(root: str | Path | None = None, *, check: bool = False) -> list[Path]:
    """Sync setup cells and badges, then write the student and solution notebooks.

    Returns the files that were (``check=False``) or would be (``check=True``) changed: chapters
    whose setup cell or badge disagree with ``pyproject.toml``, stale or missing notebooks, and
    notebooks left over from a chapter that no longer exists."""
    root = repo_root(root)
    url = repo_url(root)
    stale = sync_sources(root, check=check)
    sources = {}
    if check:  # judge the notebooks against what the chapters would be after syncing
        for path in chapter_paths(root):
            text = path.read_text(encoding="utf-8")
            sources[path] = sync_text(text, path.stem, url) if is_numbered_chapter(path) else text
    targets = _targets(root, sources=sources)
    wanted = {t.path for t in targets}
    for target in targets:
        current = target.path.read_text(encoding="utf-8") if target.path.is_file() else None
        if current != target.text:
            stale.append(target.path)
            if not check:
                target.path.parent.mkdir(parents=True, exist_ok=True)
                target.path.write_text(target.text, encoding="utf-8")
    for folder in (root / "notebooks", root / "notebooks" / "solutions"):
        for orphan in sorted(folder.glob("*.ipynb")) if folder.is_dir() else []:
            if orphan not in wanted:
                stale.append(orphan)
                if not check:
                    orphan.unlink()
    return stale
