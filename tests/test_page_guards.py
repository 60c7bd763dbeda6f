"""Guards for the page a reader sees: defects that every other test passes over.

Each guard is a small checker run over the book's sources, plus a test that feeds it a known-bad snippet:
control characters, raw cross-reference labels and over-long lines in code cells, steps printed as code
indices, and numbers in the prose that no cell checks.
"""
from __future__ import annotations

import ast
import json
import re
import unicodedata
from pathlib import Path

import pytest

from booktools import chapter_paths, page_paths, split_options

ROOT = Path(__file__).resolve().parent.parent
SOURCES = page_paths(ROOT)
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "notebooks" / "solutions").glob("*.ipynb"))
MAX_CODE_LINE = 88
_CHUNK = re.compile(r"^```\{python\}[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _chunks(text: str) -> list[tuple[int, str]]:
    """(first line number, source) of each ```{python} chunk."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _CHUNK.finditer(text)]


def _code_lines(text: str):
    """(line number, line) of every code line a reader sees: chunk lines other than `#|` options."""
    for start, code in _chunks(text):
        for k, line in enumerate(code.split("\n")):
            if not line.startswith("#|"):
                yield start + k, line


def _prose(text: str) -> str:
    """The text outside code chunks and fenced blocks (line numbers kept)."""
    blank = lambda m: "\n" * m.group(0).count("\n")  # noqa: E731
    text = _CHUNK.sub(blank, text)
    return re.sub(r"^```.*?^```[ \t]*$", blank, text, flags=re.MULTILINE | re.DOTALL)


def _line(text: str, at: int) -> int:
    return text.count("\n", 0, at) + 1


# --------------------------------------------------------------------------- 1. control characters
def control_characters(text: str) -> list[str]:
    """Every control character other than newline (TAB, BEL, BACKSPACE, ... an expanded escape)."""
    return [f"line {_line(text, i)}: {ch!r}" for i, ch in enumerate(text)
            if ch != "\n" and unicodedata.category(ch) == "Cc"]


def test_control_characters_are_found_in_a_bad_snippet():
    bad = "$\\approx$ and \\tilde\\beta\n" + "$\x07pprox$ \tfrac12 \x08eta"   # "\a", "\t", "\b" expanded
    assert control_characters(bad) == ["line 2: '\\x07'", "line 2: '\\t'", "line 2: '\\x08'"]
    assert control_characters("$\\tfrac12 \\approx \\tilde\\beta_t$\n") == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_sources_hold_no_control_characters(path):
    found = control_characters(_text(path))
    assert not found, f"{path.name}: control characters (write LaTeX in raw strings): {found}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebooks_hold_no_control_characters(path):
    cells = json.loads(_text(path))["cells"]
    found = [f"cell {i}, {hit}" for i, cell in enumerate(cells)
             for hit in control_characters("".join(cell["source"]))]
    assert not found, f"{path.name}: control characters: {found}"


def bad_cell_options(text: str) -> list[str]:
    """Cell options that are not valid YAML, or whose parsed value holds a control character:
    Quarto reads ``#|`` lines as YAML, where ``"$\\hat x$"`` is an error and ``"$\\text{}$"`` a TAB."""
    found = []
    for start, code in _chunks(text):
        try:
            options, _ = split_options(code)
        except ValueError as err:
            found.append(f"line {start}: {str(err).splitlines()[-1]}")
            continue
        found += [f"line {start}, {key}: {hit}" for key, value in options.items()
                  for hit in control_characters(str(value))]
    return found


def test_bad_cell_options_are_found_in_a_bad_snippet():
    bad = "\n".join(["```{python}", '#| fig-cap: "Clipping $\\hat x_0$"', "x = 1", "```",
                     "```{python}", '#| fig-cap: "$L_\\text{simple}$ per step"', "x = 1", "```",
                     "```{python}", "#| fig-cap: 'Clipping $\\hat x_0$ and $L_\\text{simple}$'", "x = 1", "```", ""])
    found = bad_cell_options(bad)
    assert len(found) == 2 and found[0].startswith("line 2: ") and found[1] == "line 6, fig-cap: line 1: '\\t'"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_cell_options_are_yaml_without_control_characters(path):
    found = bad_cell_options(_text(path))
    assert not found, (f"{path.name}: cell options Quarto misreads (in double quotes YAML expands "
                       f"backslashes; use single quotes for captions with LaTeX): {found}")


# --------------------------------------------------------------------------- 5. raw labels in code
_RAW_REF = re.compile(r"(?<![\w@.\-])@((?:eq|fig|sec|tbl)-[\w-]*\w)")


def raw_labels_in_code(text: str) -> list[str]:
    """Cross-reference labels inside code cells (comments, strings), which no renderer resolves.

    Cell options (`#| fig-cap: ... @eq-x`) are captions, which Quarto does resolve."""
    return [f"line {n}: @{m.group(1)}" for n, line in _code_lines(text) for m in _RAW_REF.finditer(line)]


def test_raw_labels_are_found_in_a_bad_snippet():
    bad = ('```{python}\n#| fig-cap: "As @eq-elbo says"\nx = mu(t)  # @eq-mu-theta\n'
           'print("the bound of @eq-elbo-path")\nmail = "me@eq-host.org"\n```\n')
    assert raw_labels_in_code(bad) == ["line 3: @eq-mu-theta", "line 4: @eq-elbo-path"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_code_cells_hold_no_raw_cross_reference_labels(path):
    found = raw_labels_in_code(_text(path))
    assert not found, (f"{path.name}: cross-reference labels in code (a reader sees them raw; describe it, "
                       f"or write the rendered number): {found}")


# --------------------------------------------------------------------------- 7. long code lines
def long_code_lines(text: str, limit: int = MAX_CODE_LINE) -> list[str]:
    """Code lines a reader sees that are longer than ``limit`` characters (they wrap badly)."""
    return [f"line {n} ({len(line)} chars)" for n, line in _code_lines(text) if len(line) > limit]


def test_long_code_lines_are_found_in_a_bad_snippet():
    bad = "```{python}\n#| fig-cap: \"" + "c" * 120 + "\"\nx = 1\ny = " + "2 + " * 30 + "2\n```\n"
    assert long_code_lines(bad) == ["line 4 (125 chars)"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_code_lines_are_short(path):
    found = long_code_lines(_text(path))
    assert not found, f"{path.name}: code lines over {MAX_CODE_LINE} characters: {found}"


# --------------------------------------------------------------------------- 6. steps a reader sees
_FSTRING = re.compile(r"""(?<![\w])(?:[fF][rR]?|[rR][fF])("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')""")
_STEP_FIELD = re.compile(r"(?:\bt\s*=\s*|\bpaper step\s*)\{([^{}]*)\}")
_PAPER = re.compile(r"\b(?:step_label|paper_step)\(|\+\s*\d+\s*(?::[^{}]*)?$|^T(?::[^{}]*)?$")   # T: the last step


def code_index_steps(text: str) -> list[str]:
    """f-strings that print a step ("t = {t}", "paper step {k}") without going through
    ``step_label``/``paper_step`` (or an explicit ``+ 1``, or the last step ``T``): a code index shown
    where a paper step belongs. (Training steps, "step {k} of {n}", are not diffusion steps.)"""
    found = []
    for n, line in _code_lines(text):
        if line.lstrip().startswith("#"):
            continue
        for literal in _FSTRING.finditer(line):
            for field in _STEP_FIELD.finditer(literal.group(1)):
                if not _PAPER.search(field.group(1).strip()):
                    found.append(f"line {n}: {field.group(0)}")
    return found


def test_code_index_steps_are_found_in_a_bad_snippet():
    bad = "\n".join(["```{python}", 'ax.set_title(f"t = {t}")', 'print(f"t={t:3d}: loss")',
                     'label = f"paper step {k}"', 'ax.set_title(step_label(t))', 'print(f"t = {t + 1} (code index {t})")',
                     'print(f"t = {paper_step(t)}")', 'print(f"step {k:6,d} of {n:,}")', 'print(f"t = {T}")', 'y = "t = {t}"', "```", ""])
    assert code_index_steps(bad) == ["line 2: t = {t}", "line 3: t={t:3d}", "line 4: paper step {k}"]


@pytest.mark.parametrize("path", chapter_paths(ROOT), ids=lambda p: p.name)   # the preface draws the convention
def test_printed_steps_are_paper_steps(path):
    found = code_index_steps(_text(path))
    assert not found, (f"{path.name}: steps printed without dnnl.plot.step_label/paper_step "
                       f"(paper step = code index + 1): {found}")


# --------------------------------------------------------------------------- 4. numbers in prose
_CLAIM = re.compile(r"\[([^\[\]\n]+)\]\{\.claim\}")


def _checked_texts(code: str) -> set[str]:
    """The texts passed to ``check_claim(value, "<text>", ...)`` in ``code``."""
    try:
        tree = ast.parse(code)
    except SyntaxError:   # not plain Python (a stub, a magic): read the calls with a pattern instead
        return set(re.findall(r"check_claim\(.*?,\s*[\"']([^\"']+)[\"']", code, re.DOTALL))
    texts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "check_claim":
            if len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                texts.add(node.args[1].value)
    return texts


def unchecked_claims(text: str) -> list[str]:
    """Claim spans in the prose and captions that no ``check_claim(..., "<same text>")`` of the page checks."""
    from dnnl.claims import parse_shown

    checked, spans = set(), []
    prose = _prose(text)
    spans += [(_line(prose, m.start()), m.group(1)) for m in _CLAIM.finditer(prose)]
    for start, code in _chunks(text):
        options, body = split_options(code)
        checked |= _checked_texts(body)
        for value in options.values():
            spans += [(start, m.group(1)) for m in _CLAIM.finditer(str(value))]
    found = []
    for n, shown in spans:
        try:
            parse_shown(shown)
        except ValueError:
            found.append(f"line {n}: [{shown}] is not a number as printed")
            continue
        if shown not in checked:
            found.append(f"line {n}: [{shown}]{{.claim}} has no check_claim(..., {shown!r})")
    return found


def test_unchecked_claims_are_found_in_a_bad_snippet():
    bad = "\n".join(["The product is [0.913]{.claim} and the ratio [2.2]{.claim}, about [a lot]{.claim}.", "",
                     "```{python}", '#| fig-cap: "A factor of [120]{.claim}"', "from dnnl.claims import check_claim",
                     'check_claim(prod, "0.913")', 'check_claim(hi / lo,', '            "120", tol=1)',
                     'print("2.2")', "```", ""])
    assert unchecked_claims(bad) == ["line 1: [2.2]{.claim} has no check_claim(..., '2.2')",
                                     "line 1: [a lot] is not a number as printed"]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_claim_in_the_prose_is_checked_by_the_code(path):
    found = unchecked_claims(_text(path))
    assert not found, f"{path.name}: numbers in the prose that no cell checks: {found}"
