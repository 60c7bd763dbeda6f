"""The markdown of a chapter as Jupyter and Colab show it.

Quarto's ``:::`` divs do not render in notebooks: solution-only and student-only blocks are kept or
dropped, callouts become block quotes, and a number the prose marks as ``[0.913]{.claim}`` is plain text.
"""
from __future__ import annotations

import re

__all__ = ["notebook_markdown", "plain_claims", "BIBLIOGRAPHY_MARK"]

# Where Quarto's ``::: {#refs}`` div stood: the notebook writer puts the page's list of works there.
BIBLIOGRAPHY_MARK = "<!-- bibliography -->"

_CLAIM = re.compile(r"\[([^\[\]\n]+)\]\{\.claim\}")


def plain_claims(text: str) -> str:
    """``text`` with every claim span ``[0.913]{.claim}`` written as the plain number ``0.913``."""
    return _CLAIM.sub(lambda m: m.group(1), text)


_DIV_OPEN = re.compile(r"^(:{3,})\s*(\{.*\}|[\w-]+)\s*$")
_DIV_CLOSE = re.compile(r"^:{3,}\s*$")
_CALLOUT_TITLES = {"note": "Note", "tip": "Tip", "warning": "Warning", "important": "Important", "caution": "Caution"}


def _div_kind(attrs: str, solutions: bool) -> str:
    """What to do with a ``:::`` div: keep | unwrap (keep its body) | drop | callout."""
    if 'when-profile="solutions"' in attrs.replace("'", '"'):
        if ".content-visible" in attrs:     # solutions only
            return "unwrap" if solutions else "drop"
        if ".content-hidden" in attrs:      # students only
            return "drop" if solutions else "unwrap"
    if re.fullmatch(r"\{\s*#refs\s*\}", attrs.strip()):
        return "refs"
    return "callout" if re.search(r"\.callout-(\w+)", attrs) else "keep"


def _callout_head(attrs: str) -> str:
    word = re.search(r"\.callout-(\w+)", attrs).group(1)
    title = re.search(r'title="([^"]*)"', attrs)
    return f"> **{_CALLOUT_TITLES.get(word, word.title())}" + (f": {title.group(1)}" if title else "") + "**"


def notebook_markdown(text: str, *, solutions: bool) -> str:
    """Markdown of a chapter as a notebook shows it: solution-only blocks kept (solutions) or removed
    (students), student-only blocks the other way round, callouts turned into block quotes (Jupyter
    and Colab do not render Quarto's ``:::`` divs), and claim spans written as plain numbers."""
    out: list[str] = []
    stack: list[tuple[str, int]] = []  # (kind, colons), one per open div
    dropping = 0
    for line in text.split("\n"):
        opened = _DIV_OPEN.match(line)
        if opened:
            kind = _div_kind(opened.group(2), solutions)
            stack.append((kind, len(opened.group(1))))
            dropping += kind in ("drop", "refs")
            if not dropping and kind in ("keep", "callout"):
                out.append(_quote_prefix(stack[:-1])
                           + (_callout_head(opened.group(2)) if kind == "callout" else line))
            elif dropping == 1 and kind == "refs":
                out.append(BIBLIOGRAPHY_MARK)
            continue
        if _DIV_CLOSE.match(line) and stack:
            kind, _ = stack.pop()
            dropping -= kind in ("drop", "refs")
            if not dropping and kind == "keep":
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
    return plain_claims(result)


def _quote_prefix(stack: list[tuple[str, int]]) -> str:
    return "> " * sum(1 for kind, _ in stack if kind == "callout")
