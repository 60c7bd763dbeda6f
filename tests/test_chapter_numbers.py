"""Hand-written chapter, exercise, figure, table and equation numbers name what the rendered book shows.

Quarto numbers the chapters listed in ``_quarto.yml`` in order, skipping unnumbered ones; the preface
must be unnumbered, or every chapter and equation number of the book is off by one. Each "Chapter N",
"Exercise N.M", "Table A.1" or "Eq. (3.4)" written by hand (in the chapters, the preface, the teacher's
page and the README) must name something that exists under that number, and a title written beside a
chapter number must be that chapter's title.
"""
from __future__ import annotations

import re
from pathlib import Path

from booktools import book_references, chapter_numbers, page_title
from booktools.paths import is_unnumbered

ROOT = Path(__file__).resolve().parent.parent
_STOP = {"the", "a", "an", "and", "of", "its", "what", "s"}
_CHAPTER = re.compile(r"\b[Cc]hapters? (\d+)((?:, \d+)*(?:,? and \d+)?)")
_TITLED = re.compile(r"\b[Cc]hapter (\d+)(?:,| \(|:)? ?(?:“([^”]+)”|\*([^*]+)\*|\"([^\"]+)\")")
_LISTED = re.compile(r"^(?:\| )?(\d+)\. (?:\*\*([^*]+)\*\*|([^|*\n]+?) \|)", re.MULTILINE)
_EXERCISE = re.compile(r"\bExercises? (\w+)\.(\d+)")
_DEFINED = re.compile(r"^\*\*Exercise (\w+)\.(\d+)\b", re.MULTILINE)
_NUMBERED = re.compile(r"\b(Figure|Table|Section|Eqs?\.) (?:\(([0-9A-Z]+\.\d+)\)|([0-9A-Z]+\.\d+))(?! of @| in @)")


def _words(title: str) -> set[str]:
    return {w for w in re.split(r"[^a-z0-9]+", title.lower()) if w and w not in _STOP}


def _book(root: Path):
    """{number: (title, defined exercises)} of the numbered pages, and every rendered label number."""
    pages = {}
    for path, number in chapter_numbers(root).items():
        if number is not None:
            text = path.read_text(encoding="utf-8")
            pages[number] = (page_title(text) or "", {f"{a}.{b}" for a, b in _DEFINED.findall(text)})
    rendered = set()
    for value in book_references(root).labels.values():
        match = re.match(r"^(Figure|Table|Section|Eq\.) \(?([0-9A-Z]+(?:\.\d+)+)\)?$", value)
        if match:
            rendered.add((match.group(1).rstrip("s."), match.group(2)))
    return pages, rendered


def wrong_references(text: str, pages: dict, rendered: set, *, listing: bool = False) -> list[str]:
    """Hand-written numbers in ``text`` that name no chapter, exercise, figure, table or equation.

    ``listing=True`` (the preface and the README) also reads numbered lists and table rows of chapters,
    "1. **The forward process**" or "| 1. The forward process |", as chapter titles."""
    found = []

    def line(m):
        return text.count("\n", 0, m.start()) + 1

    for m in _CHAPTER.finditer(text):
        for n in [m.group(1), *re.findall(r"\d+", m.group(2))]:
            if n not in pages:
                found.append(f"line {line(m)}: chapter {n} does not exist ({m.group(0)!r})")
    for m in list(_TITLED.finditer(text)) + (list(_LISTED.finditer(text)) if listing else []):
        n, given = m.group(1), next(g for g in m.groups()[1:] if g)
        title = pages.get(n, ("", set()))[0]
        if n in pages and not _words(given) <= _words(title):
            found.append(f"line {line(m)}: chapter {n} is “{title}”, not “{given.strip()}”")
    for m in _EXERCISE.finditer(text):
        n, label = m.group(1), f"{m.group(1)}.{m.group(2)}"
        if n not in pages or label not in pages[n][1]:
            found.append(f"line {line(m)}: Exercise {label} is not in chapter {n}")
    for m in _NUMBERED.finditer(text):
        kind = m.group(1).rstrip("s.") if m.group(1).startswith("Eq") else m.group(1)
        if (kind, m.group(2) or m.group(3)) not in rendered:
            found.append(f"line {line(m)}: {m.group(0)!r} is not a number the book renders")
    return found


def _sources():
    return [ROOT / "index.qmd", *sorted((ROOT / "book").glob("*.qmd")), ROOT / "README.md"]


def test_the_preface_is_unnumbered():
    text = (ROOT / "index.qmd").read_text(encoding="utf-8")
    assert is_unnumbered(text), ("index.qmd must be unnumbered (`# Preface {.unnumbered}` as its title), "
                                 "or the Preface becomes chapter 1 and every chapter number is off by one")
    assert chapter_numbers(ROOT)[(ROOT / "book" / "01-forward.qmd").resolve()] == "1"


def test_unnumbered_titles_are_recognised():
    assert is_unnumbered("# Preface {.unnumbered}\n\nText") and is_unnumbered("# Preface {-}\n")
    assert not is_unnumbered('---\ntitle: "Preface"\n---\n\nText.\n')
    assert not is_unnumbered("# Preface {#sec-preface}\n")


def test_wrong_references_are_found_in_a_bad_snippet():
    pages = {"1": ("The forward process", {"1.1", "1.2"}), "2": ("The ELBO and its KL decomposition", set()),
             "A": ("For teachers", set())}
    rendered = {("Eq", "1.1"), ("Table", "A.1"), ("Figure", "2.3")}
    good = ("Chapter 1 (“The forward process”) and chapters 1 and 2; Exercise 1.2, Table A.1, Eq. (1.1), "
            "Figure 2.3, Section 3.2 of @ho2020ddpm.\n| 2. The ELBO | q |\n1. **The forward process**: noise.")
    assert wrong_references(good, pages, rendered, listing=True) == []
    assert wrong_references("1. **Markov property.** The next step", pages, rendered) == []
    bad = ("Gaussians from Chapter 6 (Eq. 2.1); see chapters 2 and 7, Exercise 2.1 and Table A.2.\n"
           "Chapter 2, *The forward process*.\n| 1. The oracle posterior | q |")
    assert wrong_references(bad, pages, rendered, listing=True) == [
        "line 1: chapter 6 does not exist ('Chapter 6')",
        "line 1: chapter 7 does not exist ('chapters 2 and 7')",
        "line 2: chapter 2 is “The ELBO and its KL decomposition”, not “The forward process”",
        "line 3: chapter 1 is “The forward process”, not “The oracle posterior”",
        "line 1: Exercise 2.1 is not in chapter 2",
        "line 1: 'Eq. 2.1' is not a number the book renders",
        "line 1: 'Table A.2' is not a number the book renders",
    ]


def test_hand_written_numbers_name_what_the_book_renders():
    pages, rendered = _book(ROOT)
    found = {}
    for path in _sources():
        wrong = wrong_references(path.read_text(encoding="utf-8"), pages, rendered,
                                 listing=path.name in ("index.qmd", "README.md"))
        if wrong:
            found[path.name] = wrong
    assert not found, f"hand-written numbers that the rendered book does not have: {found}"
