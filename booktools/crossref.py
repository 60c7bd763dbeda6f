"""Quarto's cross-references and citations, written out for places that do not render them.

Jupyter and Colab show ``@eq-elbo`` as it stands; the notebooks get "Eq. (3.2)" instead, numbered as
Quarto numbers it (see :func:`booktools.paths.chapter_numbers`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .paths import chapter_numbers, chapter_paths, repo_root

__all__ = ["References", "book_references", "resolve_references", "bibliography_markdown", "cited_keys"]

_EQ_LABEL = re.compile(r"\$\$[ \t]*\{#(eq-[\w-]+)\}")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t]*(\{[^}]*\})?[ \t]*$", re.MULTILINE)
_REF_TOKEN = re.compile(r"(?<![\w@.\-])@((?:fig|eq|sec|tbl)-[A-Za-z0-9_-]*[A-Za-z0-9_])")
_CITE_GROUP = re.compile(r"\[((?:[^\[\]]*?)@[^\[\]]*?)\]")
_CITE_KEY = re.compile(r"(?<![\w@.\-])(-?)@([A-Za-z][\w:-]*[\w])")


@dataclass
class References:
    """Numbers and names for the book's labels and citation keys, as Quarto would print them."""
    labels: dict[str, str]
    cites: dict[str, tuple[str, str]]  # key -> (authors as cited, year)
    titles: dict[str, str] = field(default_factory=dict)  # key -> title, as the bibliography lists it

    def ref(self, label: str) -> str:
        return self.labels.get(label, "@" + label)

    def cite(self, key: str, *, in_text: bool) -> str:
        if key not in self.cites:
            return "@" + key
        who, year = self.cites[key]
        return f"{who} ({year})" if in_text else f"{who} {year}"


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
        who = (last[0] if len(last) == 1 else f"{last[0]} and {last[1]}" if len(last) == 2
               else f"{last[0]} et al.")
        out[key] = (who, year.group(1))
    return out


def _bib_titles(bib: str) -> dict[str, str]:
    out = {}
    for entry in re.split(r"(?m)^@", bib)[1:]:
        key = entry.split("{", 1)[1].split(",", 1)[0].strip()
        title = re.search(r"^\s*title\s*=\s*\{(.*)\},?\s*$", entry, re.MULTILINE)
        if title:
            out[key] = re.sub(r"(?<!\\)[{}]", "", title.group(1)).strip()
    return out


def cited_keys(prose: str, refs: References) -> list[str]:
    """The bibliography keys that ``prose`` cites, in order of first citation (code blocks ignored)."""
    keys: list[str] = []
    for _, key in _CITE_KEY.findall(_strip_code(prose)):
        if key in refs.cites and key not in keys:
            keys.append(key)
    return keys


def bibliography_markdown(keys: list[str], refs: References) -> str:
    """A bullet list of the works ``keys`` name, as a notebook shows a page's references."""
    lines = []
    for key in keys:
        who, year = refs.cites[key]
        title = refs.titles.get(key)
        lines.append(f"- {who} ({year}). {title}." if title else f"- {who} ({year}).")
    return "\n".join(lines)


def _section_labels(prose: str, chapter: str | None, labels: dict[str, str]) -> None:
    counters = [0] * 6
    outside_callouts = re.sub(r"^:{3,}\s*\{\.callout[^\n]*\n.*?^:{3,}[ \t]*$", "", prose,
                              flags=re.MULTILINE | re.DOTALL)   # a callout's heading is its title
    for hashes, title, attrs in _HEADING.findall(outside_callouts):
        if len(hashes) == 1:
            continue   # the chapter's own title
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


def book_references(root: str | Path | None = None) -> References:
    """Number every equation, figure, table and section label of the book, in reading order."""
    root = repo_root(root)
    numbers = chapter_numbers(root)
    pages = list(numbers) + [p for p in chapter_paths(root) if p not in numbers]
    labels: dict[str, str] = {}
    for path in pages:
        chapter = numbers.get(path)
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
        _section_labels(prose, chapter, labels)
    bib = root / "references.bib"
    bib_text = bib.read_text(encoding="utf-8") if bib.is_file() else ""
    return References(labels, _bib_citations(bib_text), _bib_titles(bib_text))


def resolve_references(text: str, refs: References, *, markdown: bool = True) -> str:
    """Quarto's cross-references and citations written out, for places that do not render them
    (Jupyter, Colab): an equation reference becomes "Eq. (1.3)", a bracketed citation "(Author Year)",
    and an equation label becomes a ``\\tag``."""
    if markdown:   # leave inline code spans alone
        parts = re.split(r"(`[^`\n]*`)", text)
        return "".join(p if i % 2 else _resolve_plain(p, refs, True) for i, p in enumerate(parts))
    return _resolve_plain(text, refs, False)


def _cite_group(match, refs: References) -> str:
    inner = match.group(1)
    if not re.fullmatch(r"\s*-?@[\w:-]+(\s*;\s*-?@[\w:-]+)*\s*", inner):
        return match.group(0)
    keys = _CITE_KEY.findall(inner)
    if any(k.startswith(("fig-", "eq-", "sec-", "tbl-")) for _, k in keys):
        return match.group(0)
    return "(" + "; ".join(refs.cite(k, in_text=False) if not minus else refs.cites.get(k, ("", k))[1]
                           for minus, k in keys) + ")"


def _resolve_plain(text: str, refs: References, markdown: bool) -> str:
    def eq_tag(match):
        number = refs.ref(match.group(1))
        tag = number[len("Eq. ("):-1] if number.startswith("Eq. (") else match.group(1)
        return f"\\tag{{{tag}}}\n$$"

    if markdown:
        text = _EQ_LABEL.sub(eq_tag, text)
        text = _HEADING.sub(lambda m: f"{m.group(1)} {m.group(2)}", text)
        text = _CITE_GROUP.sub(lambda m: _cite_group(m, refs), text)
    text = _REF_TOKEN.sub(lambda m: refs.ref(m.group(1)), text)
    if markdown:
        text = _CITE_KEY.sub(lambda m: m.group(0) if m.group(2) not in refs.cites
                             else refs.cite(m.group(2), in_text=True), text)
    return text
