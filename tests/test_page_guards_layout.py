"""Guards for how the page lays out: math typeset in captions and headings, figures sized for the text
column, and a render that leaves the tree clean. Each guard has a test that feeds it a known-bad snippet."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from booktools import chapter_paths

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "index.qmd", *chapter_paths(ROOT)]
MAX_FIG_WIDTH_IN = 7.0   # the ~680 px text column at the book's fig-dpi of 110 (7 in = 770 px, scaled down)
_CHUNK = re.compile(r"^```\{python\}[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
# what TeX-like markup looks like when it is left outside $...$: x_t, x_{t-1}, \bar, a^2
_PLAIN_MATH = re.compile(r"\b[A-Za-z]+_(\{|[A-Za-z0-9])|\\[A-Za-z]+|[A-Za-z0-9)]\^[\w{(]")


def _outside_math(text: str) -> str:
    """``text`` without its $...$ math and `code` spans, which render as they should."""
    return re.sub(r"\$[^$]*\$|`[^`]*`", " ", text)


def captions_and_headings(text: str) -> list[tuple[int, str]]:
    """(line, text) of every figure/table caption and every markdown heading of a chapter source."""
    out = []
    for i, line in enumerate(text.split("\n"), 1):
        option = re.match(r"#\|\s*(fig-cap|tbl-cap)\s*:\s*(.*)$", line)
        if option:
            value = yaml.safe_load(option.group(2))
            out.append((i, value if isinstance(value, str) else str(value)))
    prose = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for i, line in enumerate(prose.split("\n"), 1):
        if re.match(r"#{1,6}\s", line):
            out.append((i, re.sub(r"\{[^}]*\}\s*$", "", line.lstrip("#").strip())))
    return out


def plain_text_math(text: str) -> list[str]:
    """Captions and headings with math left as plain text (Quarto typesets only what is inside $...$)."""
    return [f"line {i}: {value!r}" for i, value in captions_and_headings(text)
            if _PLAIN_MATH.search(_outside_math(value))]


def test_plain_text_math_is_found_in_a_bad_snippet():
    bad = ('```{python}\n#| fig-cap: "The density q(x_t | x_0) at three steps."\nplot()\n```\n\n'
           "## L_simple against the bound\n")
    good = ('```{python}\n#| fig-cap: "The density $q(x_t \\\\mid x_0)$ of `q_sample`."\nplot()\n```\n\n'
            "## $L_\\text{simple}$ against the bound {#sec-x}\n")
    assert len(plain_text_math(bad)) == 2
    assert plain_text_math(good) == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_captions_and_headings_typeset_their_math(path):
    found = plain_text_math(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name}: math outside $...$ in a caption or heading:\n" + "\n".join(found)


def wide_figures(text: str, limit: float = MAX_FIG_WIDTH_IN) -> list[str]:
    """Every literal ``figsize=(w, h)`` in a code chunk wider than the text column holds at full size."""
    out = []
    for m in _CHUNK.finditer(text):
        for k, line in enumerate(m.group(1).split("\n")):
            for width in re.findall(r"figsize\s*=\s*\(\s*([0-9]*\.?[0-9]+)\s*,", line):
                if float(width) > limit:
                    out.append(f"line {text.count(chr(10), 0, m.start(1)) + 1 + k}: {line.strip()}")
    return out


def test_wide_figures_are_found_in_a_bad_snippet():
    bad = "```{python}\nfig, ax = plt.subplots(1, 8, figsize=(11.2, 1.9))\n```\n"
    assert len(wide_figures(bad)) == 1
    assert wide_figures(bad.replace("11.2", "6.8")) == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_figures_fit_the_text_column(path):
    found = wide_figures(path.read_text(encoding="utf-8"))
    assert not found, f"{path.name}: figures wider than {MAX_FIG_WIDTH_IN} in shrink on the page:\n" + "\n".join(found)


def test_a_render_leaves_the_tree_clean():
    """Quarto appends /.quarto/ to .gitignore when the line is missing, which dirties a clean checkout."""
    lines = (ROOT / ".gitignore").read_text(encoding="utf-8").split("\n")
    assert "/.quarto/" in lines
