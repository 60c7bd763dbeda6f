"""Every page that cites ends with a "References" heading and the div where Quarto puts the bibliography.

Without them Quarto appends the list of references to the page with no heading. A page that cites
nothing has no such section (it would be an empty heading).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "index.qmd", *sorted((ROOT / "book").glob("*.qmd"))]

_FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
_CITE = re.compile(r"(?<![\w@.\-])-?@([A-Za-z][\w:-]*[\w])")
_ENDING = re.compile(r"\n## References \{\.unnumbered\}\n\n::: \{#refs\}\n:::\n*\Z")


def _bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(encoding="utf-8"),
                          re.MULTILINE))


def citations(text: str, keys: set[str]) -> set[str]:
    """The bibliography keys that `text` cites (`[@key]`, `@key`, `[-@key]`), code blocks skipped."""
    prose = re.sub(r"`[^`\n]*`", "", _FENCE.sub("", text))
    return {key for key in _CITE.findall(prose) if key in keys}


def references_problem(text: str, keys: set[str]) -> str | None:
    """Why `text` has the wrong references section, or None if it is right."""
    cites = bool(citations(text, keys))
    ends = bool(_ENDING.search(text))
    has_refs = "{#refs}" in text or re.search(r"^#+ References\b", text, re.MULTILINE)
    if cites and not ends:
        return ("cites but does not end with\n\n## References {.unnumbered}\n\n::: {#refs}\n:::\n")
    if has_refs and not cites:
        return "has a References section but cites nothing"
    if ends and text.count("{#refs}") != 1:
        return "has more than one {#refs} div"
    return None


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_a_page_that_cites_ends_with_its_references(path):
    problem = references_problem(path.read_text(encoding="utf-8"), _bib_keys())
    assert problem is None, f"{path.relative_to(ROOT)} {problem}"


def test_most_pages_cite():
    keys = _bib_keys()
    assert sum(bool(citations(p.read_text(encoding="utf-8"), keys)) for p in SOURCES) >= 5


def test_guard_rejects_missing_misplaced_and_empty_sections():
    keys = {"ho2020ddpm"}
    good = "Text [@ho2020ddpm].\n\n## References {.unnumbered}\n\n::: {#refs}\n:::\n"
    assert references_problem(good, keys) is None
    assert references_problem("As @ho2020ddpm show.\n", keys)                      # no section
    assert references_problem("Text [@ho2020ddpm].\n\n::: {#refs}\n:::\n", keys)  # no heading
    assert references_problem(good.replace(" {.unnumbered}", ""), keys)           # numbered heading
    assert references_problem(good + "\n## Exercises\n\nMore.\n", keys)           # not at the end
    assert references_problem(good.replace("[@ho2020ddpm]", "no citation"), keys)  # nothing to list
    assert references_problem("`@ho2020ddpm` in code only.\n", keys) is None
    assert citations("Ho et al. [-@ho2020ddpm]; mail me@ho2020ddpm.org; @fig-x", keys) == {"ho2020ddpm"}


def test_notebooks_list_the_works_a_page_cites_instead_of_the_refs_div():
    """Jupyter does not fill Quarto's ``::: {#refs}`` div: the notebook lists the cited works there."""
    from booktools.crossref import book_references
    from booktools.notebooks import chapter_notebook

    text = ("# A page\n\nAs @ho2020ddpm showed [see @nichol2021improved].\n\n"
            "## References {.unnumbered}\n\n::: {#refs}\n:::\n")
    nb = chapter_notebook(text, "00-page", solutions=False, refs=book_references(ROOT))
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert not any(line.lstrip("> ").startswith(":::") for line in markdown.splitlines()), markdown
    assert "- Ho et al. (2020). Denoising Diffusion Probabilistic Models." in markdown, markdown
    assert markdown.index("Ho et al. (2020). Denoising") < markdown.index("Nichol and Dhariwal (2021). Improved")


def test_generated_notebooks_hold_no_quarto_divs():
    import json

    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "markdown":
                for line in "".join(cell["source"]).splitlines():
                    assert not line.lstrip("> ").startswith(":::"), f"{path.name}: {line}"
