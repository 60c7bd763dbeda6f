"""One source for the book: turn ``book/*.qmd`` chapters into student and solution notebooks.

The chapters are Quarto files. ``jupytext`` (an optional dependency, in the ``book`` and ``test``
extras) reads them as R Markdown, which keeps ```` ```{python} ```` chunks as code cells.
From each chapter this module builds two notebooks:

* ``notebooks/<name>.ipynb`` for students: every ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` region
  becomes ``raise NotImplementedError(<hint>)`` and written answers are removed;
* ``notebooks/solutions/<name>.ipynb`` with everything.

The repository URL lives in one place, ``[project.urls] Repository`` in ``pyproject.toml``;
:func:`sync_sources` writes it into each chapter's setup cell and "Open in Colab" badge.
Run ``python scripts/sync_notebooks.py`` (or ``--check``) rather than calling this module directly.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "repo_root", "repo_url", "colab_url", "setup_cell_source", "badge_markdown",
    "student_source", "notebook_markdown", "chapter_paths", "chapter_notebook",
    "book_references", "resolve_references", "References",
    "sync_sources", "build_notebooks", "DEFAULT_HINT",
]

DEFAULT_HINT = "Replace this line with your solution."
BEGIN, END, HINT = "# BEGIN SOLUTION", "# END SOLUTION", "# HINT:"
_BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
_BADGE_RE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)[ \t]*$", re.MULTILINE | re.IGNORECASE)
_CHAPTER_RE = re.compile(r"^\d\d-.+\.qmd$")


# --------------------------------------------------------------------------- locations and URLs
def repo_root(root: str | Path | None = None) -> Path:
    """The repository root: ``root`` if given, else the folder above this package if it holds
    ``pyproject.toml``, else the current directory."""
    if root is not None:
        return Path(root).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "book").is_dir():
        return here
    return Path.cwd().resolve()


def repo_url(root: str | Path | None = None) -> str:
    """The repository URL, read from ``[project.urls] Repository`` in ``pyproject.toml``."""
    path = repo_root(root) / "pyproject.toml"
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib
        url = tomllib.loads(text).get("project", {}).get("urls", {}).get("Repository")
    except ModuleNotFoundError:  # Python 3.10
        match = re.search(r"^\[project\.urls\][^\[]*?^Repository\s*=\s*\"([^\"]+)\"", text, re.MULTILINE | re.DOTALL)
        url = match.group(1) if match else None
    if not url:
        raise ValueError(f"{path} has no [project.urls] Repository entry; add one such as "
                         'Repository = "https://github.com/<owner>/<name>"')
    return url.rstrip("/")


def colab_url(name: str, url: str) -> str:
    """The Colab address of the student notebook ``notebooks/<name>.ipynb`` in the GitHub repository ``url``."""
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?", url)
    if not match:
        raise ValueError(f"url must look like https://github.com/<owner>/<name> (got {url!r})")
    owner, repo = match.groups()
    return f"https://colab.research.google.com/github/{owner}/{repo}/blob/main/notebooks/{name}.ipynb"


def badge_markdown(name: str, url: str) -> str:
    """The "Open in Colab" badge line for chapter ``name``."""
    return f"[![Open In Colab]({_BADGE_IMAGE})]({colab_url(name, url)})"


def setup_cell_source(url: str) -> str:
    """The first code cell of every chapter: install dnnl from ``url`` only if it is missing, then
    print torch, device and mode."""
    return "\n".join([
        "#| label: setup",
        "#| code-fold: true",
        "#| code-summary: \"Setup: install dnnl if it is missing (needed on Colab), then report torch, device and mode\"",
        "import importlib.util, subprocess, sys",
        "",
        f'REPO = "{url}"  # written by scripts/sync_notebooks.py from pyproject.toml',
        'if importlib.util.find_spec("dnnl") is None:  # a fresh Colab VM: install the book\'s package',
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"dnnl[book] @ git+{REPO}"], check=True)',
        "    importlib.invalidate_caches()  # let this running Python see the new package",
        "",
        "import dnnl",
        "",
        "print(dnnl.runtime_info())",
    ])


# --------------------------------------------------------------------------- student version of code
def student_source(code: str, default_hint: str = DEFAULT_HINT) -> str:
    """``code`` with each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` region (and a ``# HINT:`` line
    just above it) replaced by ``raise NotImplementedError(<hint>)`` at the region's indentation."""
    lines = code.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped == END:
            raise ValueError(f"line {i + 1}: '{END}' without a matching '{BEGIN}'")
        if stripped != BEGIN:
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        hint = default_hint
        if out and out[-1].strip().startswith(HINT):
            hint = out.pop().strip()[len(HINT):].strip() or default_hint
        j = i + 1
        while j < len(lines) and lines[j].strip() != END:
            if lines[j].strip() == BEGIN:
                raise ValueError(f"line {j + 1}: nested '{BEGIN}' (regions cannot nest)")
            j += 1
        if j == len(lines):
            raise ValueError(f"line {i + 1}: '{BEGIN}' has no matching '{END}'")
        out.append(f"{indent}raise NotImplementedError({_py_string(hint)})")
        i = j + 1
    return "\n".join(out)


def _py_string(text: str) -> str:
    """A Python string literal for ``text``: double quotes unless the text holds a double quote."""
    if '"' in text and "'" not in text and "\\" not in text:
        return f"'{text}'"
    return json.dumps(text, ensure_ascii=False)


# --------------------------------------------------------------------------- markdown for notebooks
_DIV_OPEN = re.compile(r"^(:{3,})\s*(\{.*\}|[\w-]+)\s*$")
_DIV_CLOSE = re.compile(r"^:{3,}\s*$")
_CALLOUT_TITLES = {"note": "Note", "tip": "Tip", "warning": "Warning", "important": "Important", "caution": "Caution"}


def _profile_div(attrs: str) -> str | None:
    """'show' or 'hide' for solutions-only / student-only divs, else None."""
    if 'when-profile="solutions"' not in attrs.replace("'", '"'):
        return None
    if ".content-visible" in attrs:
        return "show-in-solutions"
    if ".content-hidden" in attrs:
        return "hide-in-solutions"
    return None


def notebook_markdown(text: str, *, solutions: bool) -> str:
    """Markdown of a chapter as a notebook shows it: solution-only blocks kept (solutions) or removed
    (students), student-only blocks the other way round, and callouts turned into block quotes
    (Jupyter and Colab do not render Quarto's ``:::`` divs)."""
    lines = text.split("\n")
    out: list[str] = []
    stack: list[tuple[str, int]] = []  # (kind, colons): kind in keep | drop | callout
    dropping = 0

    for line in lines:
        opened = _DIV_OPEN.match(line)
        if opened:
            attrs = opened.group(2)
            kind = "keep"
            profile = _profile_div(attrs)
            if profile == "show-in-solutions":
                kind = "unwrap" if solutions else "drop"
            elif profile == "hide-in-solutions":
                kind = "drop" if solutions else "unwrap"
            elif re.search(r"\.callout-(\w+)", attrs):
                kind = "callout"
            stack.append((kind, len(opened.group(1))))
            if kind == "drop":
                dropping += 1
            if dropping or kind == "unwrap":
                continue
            if kind == "callout":
                word = re.search(r"\.callout-(\w+)", attrs).group(1)
                title = re.search(r'title="([^"]*)"', attrs)
                out.append(_quote_prefix(stack[:-1]) + f"> **{_CALLOUT_TITLES.get(word, word.title())}"
                           + (f": {title.group(1)}" if title else "") + "**")
                continue
            out.append(_quote_prefix(stack[:-1]) + line)
            continue
        if _DIV_CLOSE.match(line) and stack:
            kind, _ = stack.pop()
            if kind == "drop":
                dropping -= 1
                continue
            if dropping or kind in ("unwrap", "callout"):
                continue
            out.append(_quote_prefix(stack) + line)
            continue
        if dropping:
            continue
        if stack and stack[-1][0] == "callout" and out and out[-1].endswith("**") and line.startswith("## "):
            # a callout's "## Title" line joins the bold heading
            head = out.pop()
            out.append(head[:-2] + (": " if not head.endswith(":**") else " ") + line[3:].strip() + "**")
            continue
        out.append(_quote_prefix(stack) + line if line.strip() else _quote_prefix(stack).rstrip())
    # collapse runs of blank lines left by removed blocks
    result = re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")
    return result


def _quote_prefix(stack: list[tuple[str, int]]) -> str:
    return "> " * sum(1 for kind, _ in stack if kind == "callout")


# --------------------------------------------------------------------------- cross-references for notebooks
_EQ_LABEL = re.compile(r"\$\$[ \t]*\{#(eq-[\w-]+)\}")
_HEADING = re.compile(r"^(#{2,6})[ \t]+(.*?)[ \t]*(\{[^}]*\})?[ \t]*$", re.MULTILINE)
_REF_TOKEN = re.compile(r"(?<![\w@.\-])@((?:fig|eq|sec|tbl)-[A-Za-z0-9_-]*[A-Za-z0-9_])")
_CITE_GROUP = re.compile(r"\[((?:[^\[\]]*?)@[^\[\]]*?)\]")
_CITE_KEY = re.compile(r"(?<![\w@.\-])(-?)@([A-Za-z][\w:-]*[\w])")


@dataclass
class References:
    """Numbers and names for the book's labels and citation keys, as Quarto would print them."""
    labels: dict[str, str]
    cites: dict[str, tuple[str, str]]  # key -> (authors as cited, year)

    def ref(self, label: str) -> str:
        return self.labels.get(label, "@" + label)

    def cite(self, key: str, *, in_text: bool) -> str:
        if key not in self.cites:
            return "@" + key
        who, year = self.cites[key]
        return f"{who} ({year})" if in_text else f"{who} {year}"


def _chapter_number(path: Path) -> str | None:
    match = re.match(r"^(\d+)-", path.name)
    if match:
        return str(int(match.group(1)))
    return None if path.name == "index.qmd" else "A"


def _strip_code(text: str) -> str:
    return re.sub(r"^```.*?^```[ \t]*$", "", text, flags=re.MULTILINE | re.DOTALL)


def _bib_citations(bib: str) -> dict[str, tuple[str, str]]:
    out = {}
    for entry in re.split(r"(?m)^@", bib)[1:]:
        key = entry.split("{", 1)[1].split(",", 1)[0].strip()
        author = re.search(r"^\s*author\s*=\s*\{(.*)\},?\s*$", entry, re.MULTILINE)
        year = re.search(r"^\s*year\s*=\s*\{?(\d{4})", entry, re.MULTILINE)
        if not (author and year):
            continue
        names = [a.strip() for a in re.split(r"\s+and\s+", author.group(1))]
        last = [re.sub(r"[{}]", "", n.split(",")[0] if "," in n else n.split()[-1]).strip() for n in names]
        last = [re.sub(r"\\'(\w)", r"\1", n) for n in last]
        who = last[0] if len(last) == 1 else f"{last[0]} and {last[1]}" if len(last) == 2 else f"{last[0]} et al."
        out[key] = (who, year.group(1))
    return out


def book_references(root: str | Path | None = None) -> References:
    """Number every equation, figure, table and section label of the book, in reading order."""
    root = repo_root(root)
    sources = [root / "index.qmd"] if (root / "index.qmd").is_file() else []
    numbered = [p for p in chapter_paths(root) if _is_numbered_chapter(p)]
    sources += numbered + [p for p in chapter_paths(root) if not _is_numbered_chapter(p)]
    labels: dict[str, str] = {}
    for path in sources:
        chapter = _chapter_number(path)
        text = path.read_text(encoding="utf-8")
        prose = _strip_code(text)
        prefix = f"{chapter}." if chapter else ""
        for i, label in enumerate(_EQ_LABEL.findall(prose), 1):
            labels[label] = f"Eq. ({prefix}{i})"
        for kind, word in (("fig", "Figure"), ("tbl", "Table")):
            chunk_labels = re.findall(rf"^#\|\s*label:\s*({kind}-[\w-]+)\s*$", text, re.MULTILINE)
            inline = re.findall(rf"\{{#({kind}-[\w-]+)[^}}]*\}}", prose)
            for i, label in enumerate(chunk_labels + inline, 1):
                labels[label] = f"{word} {prefix}{i}"
        counters = [0] * 6
        outside_callouts = re.sub(r"^:{3,}\s*\{\.callout[^\n]*\n.*?^:{3,}[ \t]*$", "", prose,
                                  flags=re.MULTILINE | re.DOTALL)   # a callout's heading is its title
        for hashes, title, attrs in _HEADING.findall(outside_callouts):
            level = len(hashes) - 2
            unnumbered = bool(attrs and (".unnumbered" in attrs or re.search(r"(^|\s)-(\s|\})", attrs)))
            if not unnumbered and chapter:
                counters[level] += 1
                counters[level + 1:] = [0] * (len(counters) - level - 1)
            sec = re.search(r"#(sec-[\w-]+)", attrs or "")
            if sec:
                number = ".".join(str(c) for c in counters[: level + 1])
                labels[sec.group(1)] = (f"Section {chapter}.{number}" if chapter and not unnumbered
                                        else f"the section “{title.strip()}”")
    bib = root / "references.bib"
    cites = _bib_citations(bib.read_text(encoding="utf-8")) if bib.is_file() else {}
    return References(labels, cites)


def resolve_references(text: str, refs: References, *, markdown: bool = True) -> str:
    """Quarto's cross-references and citations written out, for places that do not render them
    (Jupyter, Colab): an equation reference becomes "Eq. (1.3)", a bracketed citation "(Author Year)", and an
    equation label becomes a ``\tag``."""
    if markdown:   # leave inline code spans alone
        parts = re.split(r"(`[^`\n]*`)", text)
        return "".join(p if i % 2 else _resolve_plain(p, refs, True) for i, p in enumerate(parts))
    return _resolve_plain(text, refs, False)


def _resolve_plain(text: str, refs: References, markdown: bool) -> str:
    def eq_tag(match):
        number = refs.ref(match.group(1))
        tag = number[len("Eq. ("):-1] if number.startswith("Eq. (") else match.group(1)
        return f"\\tag{{{tag}}}\n$$"

    if markdown:
        text = _EQ_LABEL.sub(eq_tag, text)
        text = _HEADING.sub(lambda m: f"{m.group(1)} {m.group(2)}", text)

        def group(match):
            inner = match.group(1)
            if not re.fullmatch(r"\s*-?@[\w:-]+(\s*;\s*-?@[\w:-]+)*\s*", inner):
                return match.group(0)
            keys = _CITE_KEY.findall(inner)
            if any(k.startswith(("fig-", "eq-", "sec-", "tbl-")) for _, k in keys):
                return match.group(0)
            return "(" + "; ".join(refs.cite(k, in_text=False) if not minus else refs.cites.get(k, ("", k))[1]
                                   for minus, k in keys) + ")"

        text = _CITE_GROUP.sub(group, text)
    text = _REF_TOKEN.sub(lambda m: refs.ref(m.group(1)), text)
    if markdown:
        text = _CITE_KEY.sub(lambda m: m.group(0) if m.group(2) not in refs.cites
                             else refs.cite(m.group(2), in_text=True), text)
    return text


# --------------------------------------------------------------------------- chapters
def chapter_paths(root: str | Path | None = None) -> list[Path]:
    """Every ``book/*.qmd`` (chapters and the teacher's page), sorted by name."""
    return sorted((repo_root(root) / "book").glob("*.qmd"))


def _is_numbered_chapter(path: Path) -> bool:
    return bool(_CHAPTER_RE.match(path.name))


def _front_matter(text: str) -> tuple[dict, str]:
    """(front matter as a dict, the rest of the text)."""
    match = re.match(r"^---\n(.*?)\n---[ \t]*\n", text, re.DOTALL)
    if not match:
        return {}, text
    try:
        import yaml
        meta = yaml.safe_load(match.group(1)) or {}
    except ModuleNotFoundError:  # pragma: no cover - pyyaml ships with jupytext
        meta = dict(re.findall(r"^(\w[\w-]*):\s*\"?(.*?)\"?\s*$", match.group(1), re.MULTILINE))
    return meta, text[match.end():]


def _sync_text(text: str, name: str, url: str) -> str:
    """``text`` with its setup cell and Colab badge rewritten for ``url`` (inserted when missing)."""
    match = re.match(r"^---\n.*?\n---[ \t]*\n", text, re.DOTALL)
    head, body = (text[: match.end()], text[match.end():]) if match else ("", text)
    badge = badge_markdown(name, url)
    if _BADGE_RE.search(body):
        body = _BADGE_RE.sub(lambda _: badge, body, count=1)
    else:
        body = "\n" + badge + "\n" + body
    setup = "```{python}\n" + setup_cell_source(url) + "\n```"
    chunk = re.search(r"^```\{python\}[^\n]*\n(.*?)^```[ \t]*$", body, re.MULTILINE | re.DOTALL)
    if chunk and re.search(r"^#\|\s*label:\s*setup\s*$", chunk.group(1), re.MULTILINE):
        body = body[: chunk.start()] + setup + body[chunk.end():]
    else:
        at = _BADGE_RE.search(body).end()
        body = body[:at] + "\n\n" + setup + "\n\n" + body[at:].lstrip("\n")
    return head + body


def sync_sources(root: str | Path | None = None, *, check: bool = False) -> list[Path]:
    """Write the repository URL into each numbered chapter's setup cell and badge.

    Returns the chapters that disagreed; with ``check=True`` nothing is written."""
    url = repo_url(root)
    changed = []
    for path in chapter_paths(root):
        if not _is_numbered_chapter(path):
            continue
        text = path.read_text(encoding="utf-8")
        new = _sync_text(text, path.stem, url)
        if new != text:
            changed.append(path)
            if not check:
                path.write_text(new, encoding="utf-8")
    return changed


def chapter_notebook(text: str, name: str, *, solutions: bool, keep_empty: bool = False,
                     refs: References | None = None):
    """The notebook (an ``nbformat`` node, no outputs) for the chapter source ``text``.

    ``keep_empty=True`` keeps markdown cells that end up empty, so that the student and solution
    versions have the same cells in the same places. With ``refs`` (see :func:`book_references`),
    cross-references and citations are written out as Jupyter cannot render them."""
    import jupytext
    import nbformat

    meta, _ = _front_matter(text)
    nb = jupytext.reads(text, fmt="Rmd")
    cells = []
    title = meta.get("title")
    if title:
        cells.append(nbformat.v4.new_markdown_cell(f"# {title}"))
    for cell in nb.cells:
        source = cell.source
        if cell.cell_type == "raw" and source.startswith("---"):
            continue  # the front matter became the title cell
        if cell.cell_type == "markdown":
            source = notebook_markdown(source, solutions=solutions)
            if refs is not None:
                source = resolve_references(source, refs)
            if source.strip() or keep_empty:
                cells.append(nbformat.v4.new_markdown_cell(source))
        elif cell.cell_type == "code":
            if not solutions:
                source = student_source(source)
            if refs is not None:
                source = resolve_references(source, refs, markdown=False)
            cells.append(nbformat.v4.new_code_cell(source))
        else:
            cells.append(nbformat.v4.new_raw_cell(source))
    for i, cell in enumerate(cells):
        cell.id = f"{name[:40]}-{i:03d}".replace(".", "-")
        cell.metadata = {}
    out = nbformat.v4.new_notebook(cells=cells)
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


@dataclass
class _Target:
    path: Path
    text: str


def _targets(root: Path, *, sources: dict[Path, str] | None = None) -> list[_Target]:
    import nbformat

    targets = []
    refs = book_references(root)
    for path in chapter_paths(root):
        text = sources[path] if sources and path in sources else path.read_text(encoding="utf-8")
        for solutions, folder in ((False, root / "notebooks"), (True, root / "notebooks" / "solutions")):
            nb = chapter_notebook(text, path.stem, solutions=solutions, refs=refs)
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
            sources[path] = _sync_text(text, path.stem, url) if _is_numbered_chapter(path) else text
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
