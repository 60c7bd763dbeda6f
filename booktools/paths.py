"""Where the book lives: the repository root and URL, the chapter files, their titles and numbers.

Chapter numbers follow Quarto's rule: the chapters listed in ``_quarto.yml`` are numbered 1, 2, ... in
order, skipping any whose title heading carries ``{.unnumbered}``; appendices are lettered A, B, ...
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["repo_root", "repo_url", "chapter_paths", "page_paths", "is_numbered_chapter", "front_matter",
           "page_title", "is_unnumbered", "chapter_numbers"]

_CHAPTER_RE = re.compile(r"^\d\d-.+\.qmd$")
_H1 = re.compile(r"^#[ \t]+(.*?)[ \t]*(\{[^}]*\})?[ \t]*$", re.MULTILINE)


def repo_root(root: str | Path | None = None) -> Path:
    """The repository root: ``root`` if given, else the folder above ``booktools/``."""
    if root is not None:
        return Path(root).resolve()
    return Path(__file__).resolve().parent.parent


def repo_url(root: str | Path | None = None) -> str:
    """The repository URL, read from ``[project.urls] Repository`` in ``pyproject.toml``."""
    path = repo_root(root) / "pyproject.toml"
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib
        url = tomllib.loads(text).get("project", {}).get("urls", {}).get("Repository")
    except ModuleNotFoundError:  # Python 3.10
        match = re.search(r"^\[project\.urls\][^\[]*?^Repository\s*=\s*\"([^\"]+)\"", text,
                          re.MULTILINE | re.DOTALL)
        url = match.group(1) if match else None
    if not url:
        raise ValueError(f"{path} has no [project.urls] Repository entry; add one such as "
                         'Repository = "https://github.com/<owner>/<name>"')
    return url.rstrip("/")


def chapter_paths(root: str | Path | None = None) -> list[Path]:
    """Every ``book/*.qmd`` (chapters and the teacher's page), sorted by name."""
    return sorted((repo_root(root) / "book").glob("*.qmd"))


def page_paths(root: str | Path | None = None) -> list[Path]:
    """Every page of the book: the preface ``index.qmd``, then :func:`chapter_paths`."""
    return [repo_root(root) / "index.qmd", *chapter_paths(root)]


def is_numbered_chapter(path: Path) -> bool:
    """Whether ``path`` is a chapter file (``NN-name.qmd``), the files that get a setup cell and badge."""
    return bool(_CHAPTER_RE.match(Path(path).name))


def front_matter(text: str) -> tuple[dict, str]:
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


def _first_h1(body: str):
    body = re.sub(r"^```.*?^```[ \t]*$", "", body, flags=re.MULTILINE | re.DOTALL)
    return _H1.search(body)


def page_title(text: str) -> str | None:
    """A page's title: its front matter ``title``, else its first level-1 heading."""
    meta, body = front_matter(text)
    if isinstance(meta.get("title"), str) and meta["title"].strip():
        return meta["title"].strip()
    heading = _first_h1(body)
    return heading.group(1).strip() if heading else None


def is_unnumbered(text: str) -> bool:
    """Whether Quarto leaves this chapter unnumbered: its title heading has ``{.unnumbered}`` or ``{-}``."""
    heading = _first_h1(front_matter(text)[1])
    attrs = heading.group(2) if heading else None
    return bool(attrs and (".unnumbered" in attrs or re.search(r"(^|[\s{])-(\s|\})", attrs)))


def _quarto_lists(root: Path) -> tuple[list[str], list[str]] | None:
    config = root / "_quarto.yml"
    if not config.is_file():
        return None
    import yaml

    book = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("book", {})

    def flat(items):
        out = []
        for item in items or []:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict):   # a part: its own file (if any) is not a chapter
                out += flat(item.get("chapters"))
        return out

    return flat(book.get("chapters")), flat(book.get("appendices"))


def chapter_numbers(root: str | Path | None = None) -> dict[Path, str | None]:
    """Each page of the book and the number Quarto gives it ("1", "2", ..., "A", or None).

    Without ``_quarto.yml`` (a bare folder of chapters), ``NN-name.qmd`` is chapter NN, ``index.qmd``
    is unnumbered and any other page is appendix A."""
    root = repo_root(root)
    lists = _quarto_lists(root)
    if lists is None:
        pages = ([root / "index.qmd"] if (root / "index.qmd").is_file() else []) + chapter_paths(root)
        return {p: (str(int(p.name[:2])) if is_numbered_chapter(p) else
                    None if p.name == "index.qmd" else "A") for p in pages}
    chapters, appendices = lists
    numbers: dict[Path, str | None] = {}
    for names, label in ((chapters, lambda k: str(k)), (appendices, lambda k: chr(ord("A") + k - 1))):
        count = 0
        for name in names:
            path = (root / name).resolve()
            if not path.is_file():
                continue
            if is_unnumbered(path.read_text(encoding="utf-8")):
                numbers[path] = None
            else:
                count += 1
                numbers[path] = label(count)
    return numbers
