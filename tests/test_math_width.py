"""Every display equation of the book fits the text column, measured by typesetting it with MathJax.

`tests/js/measure_math.mjs` typesets each `$$ ... $$` block of `index.qmd` and `book/*.qmd` with
MathJax (npm `mathjax-full`, pinned in `tests/js/package-lock.json`; `cd tests/js && npm ci`), the
TeX input with all packages and the SVG output, the same layout engine the HTML book loads. A
labelled equation is typeset with the `\\tag{c.k}` Quarto gives it, so the width includes its number.

From MathJax's unit to pixels: MathJax's SVG gives each equation a width in `ex`, the x-height of
the text around it (in a browser, MathJax's CHTML output scales its fonts to the same ex, so both
outputs are equally wide). The book uses Quarto's cosmo theme: body text 1rem = 16 px in Source
Sans Pro, whose x-height is 0.486 em = 7.8 px. MathJax measures the ex of whatever font is on the
page when it typesets, which can be a fallback system font (Roboto, Arial: 0.52-0.53 em) if the web
font has not arrived yet. We take the larger, ex = 0.53 em = 8.5 px, so the 680 px column holds 80 ex.
(Checked in headless Chromium with MathJax CHTML and Source Sans Pro: the browser's widths match
width_ex times its ex within 0.5 %, tags included.)
Screens narrower than the column scroll a display inside its own box (`book/styles.css`).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "tests" / "js"
SOURCES = [ROOT / "index.qmd", *sorted((ROOT / "book").glob("*.qmd"))]

COLUMN_PX = 680
FONT_PX = 16
EX_PX = 0.53 * FONT_PX  # x-height of the page font, see the module docstring

_FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
_DISPLAY = re.compile(r"\$\$(.+?)\$\$([ \t]*\{#(eq-[A-Za-z0-9_-]+)\})?", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_MATH = re.compile(r"\$\$(.+?)\$\$|\$([^$\n]+)\$", re.DOTALL)
_MACRO = re.compile(r"\\(?:newcommand|renewcommand|def|DeclareMathOperator|let)\b")


def display_equations(text: str, chapter: str = "9") -> list[dict]:
    """The display equations of a .qmd text (code blocks skipped), as {"id", "tex"} with the tag
    `\\tag{<chapter>.<k>}` added to the k-th labelled one, as Quarto numbers them."""
    prose = _INLINE_CODE.sub("``", _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text))
    found, k = [], 0
    for match in _DISPLAY.finditer(prose):
        tex, label = match.group(1).strip(), match.group(3)
        line = prose.count("\n", 0, match.start()) + 1
        if label:
            k += 1
            tex = f"{tex} \\tag{{{chapter}.{k}}}"
        found.append({"id": label or f"line {line}", "tex": tex})
    return found


def macro_definitions(text: str) -> list[str]:
    """The math snippets of a .qmd text (code blocks skipped) that define TeX macros, in order."""
    prose = _INLINE_CODE.sub("``", _FENCE.sub("", text))
    return [tex for m in _MATH.finditer(prose) for tex in [m.group(1) or m.group(2)] if _MACRO.search(tex)]


def _chapter_number(path: Path) -> str:
    match = re.match(r"^(\d\d)-", path.name)
    return str(int(match.group(1))) if match else "A"


def _node() -> str | None:
    node = shutil.which("node")
    if node and (JS / "node_modules" / "mathjax-full" / "package.json").is_file():
        return node
    reason = "node or tests/js/node_modules/mathjax-full missing: run `cd tests/js && npm ci`"
    if os.environ.get("DNNL_REQUIRE_MATHJAX"):
        pytest.fail(reason + " (DNNL_REQUIRE_MATHJAX is set, as in .ci/run)")
    pytest.skip(reason)
    return None


def measure(equations: list[dict], preamble: list[str] = ()) -> list[dict]:
    """Typeset `equations` with MathJax after the macro definitions in `preamble`; each result has
    `width_ex`, `width_px` and `error` (a TeX error message or None)."""
    node = _node()
    payload = json.dumps({"preamble": list(preamble), "equations": equations})
    result = subprocess.run([node, str(JS / "measure_math.mjs")], input=payload, cwd=JS,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    for item in out:
        item["width_px"] = item["width_ex"] * EX_PX
    return out


def too_wide(measured: list[dict], column_px: float = COLUMN_PX) -> list[str]:
    return [f"{m['id']}: {m['width_px']:.0f} px ({m['width_ex']:.1f} ex)"
            for m in measured if m["width_px"] > column_px]


def _book_macros() -> list[str]:
    return [tex for path in SOURCES for tex in macro_definitions(path.read_text(encoding="utf-8"))]


def _book_equations() -> list[dict]:
    equations = []
    for path in SOURCES:
        for eq in display_equations(path.read_text(encoding="utf-8"), _chapter_number(path)):
            eq["id"] = f"{path.relative_to(ROOT)}: {eq['id']}"
            equations.append(eq)
    return equations


def test_the_book_has_display_equations_to_measure():
    equations = _book_equations()
    assert len(equations) > 50
    assert sum("{#eq-" in p.read_text(encoding="utf-8") for p in SOURCES) >= 5


def test_every_display_equation_typesets_without_error():
    errors = [f"{m['id']}: {m['error']}" for m in measure(_book_equations(), _book_macros()) if m["error"]]
    assert not errors, "MathJax cannot typeset:\n" + "\n".join(errors)


def test_every_display_equation_fits_the_column():
    wide = too_wide(measure(_book_equations(), _book_macros()))
    assert not wide, (f"display equations wider than the {COLUMN_PX} px column; break them with "
                      "\\begin{aligned} ... \\\\ ... \\end{aligned}:\n" + "\n".join(wide))


# --------------------------------------------------------------------------- the guard itself
def test_extraction_finds_labelled_unlabelled_and_skips_code():
    text = ("Text $$a = b$$ {#eq-one}\n\n$$\nc = d\n$$\n\n```{python}\ns = '$$x$$'\n```\n\n`'$$'` "
            "$$\ne = f\n$$ {#eq-two}\n")
    found = display_equations(text, "3")
    assert [e["id"] for e in found] == ["eq-one", "line 3", "eq-two"]
    assert found[0]["tex"] == r"a = b \tag{3.1}"
    assert found[2]["tex"] == r"e = f \tag{3.2}"


def test_guard_fails_on_a_known_too_wide_equation():
    long_sum = " + ".join(rf"\mathbb{{E}}_q\big[\log p_\theta(\mathbf{{x}}_{{{t}}} \mid \mathbf{{x}}_{{{t + 1}}})\big]"
                          for t in range(6))
    measured = measure([
        {"id": "wide", "tex": long_sum + r" \tag{3.7}"},
        {"id": "split", "tex": r"\begin{aligned}" + long_sum.replace(" + ", r" \\ &+ ", 5).replace(
            r"\mathbb{E}", r"&\mathbb{E}", 1) + r"\end{aligned} \tag{3.7}"},
        {"id": "bad", "tex": r"\frac{a}{b"},
    ])
    by_id = {m["id"]: m for m in measured}
    assert by_id["wide"]["width_px"] > COLUMN_PX, by_id["wide"]
    assert too_wide(measured[:2]) == [f"wide: {by_id['wide']['width_px']:.0f} px ({by_id['wide']['width_ex']:.1f} ex)"]
    assert by_id["split"]["width_px"] < COLUMN_PX / 2
    assert by_id["bad"]["error"] and not by_id["wide"]["error"]


def test_macros_defined_in_the_book_reach_mathjax():
    text = "Let $\\newcommand{\\KL}{\\mathrm{KL}}\\KL$ be\n\n$$\n\\KL(q \\,\\|\\, p)\n$$ {#eq-x}\n"
    assert macro_definitions(text) == ["\\newcommand{\\KL}{\\mathrm{KL}}\\KL"]
    without, with_macros = (measure(display_equations(text), pre)[0] for pre in ([], macro_definitions(text)))
    assert without["error"] and not with_macros["error"]


def test_macros_come_only_from_the_chapters():
    """Macros set in Quarto's header includes would not reach the measurement; there are none."""
    for name in ("_quarto.yml", "_quarto-solutions.yml"):
        assert "include-in-header" not in (ROOT / name).read_text(encoding="utf-8"), name


def test_a_tag_is_part_of_the_measured_width():
    plain, tagged = measure([{"id": "p", "tex": "x^2 + y^2 = z^2"},
                             {"id": "t", "tex": r"x^2 + y^2 = z^2 \tag{3.12}"}])
    assert tagged["width_px"] > plain["width_px"] + 50


# --------------------------------------------------------------------------- narrow screens
_CSS_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_DISPLAY_SELECTORS = ('mjx-container[display="true"]', ".math.display")


def display_math_scrolls(css: str) -> list[str]:
    """The display-math selectors of `css` whose rule sets both `overflow-x: auto` (or scroll)
    and `max-width: 100%`."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    found = []
    for selectors, body in _CSS_RULE.findall(css):
        decl = {k.strip(): v.strip() for k, _, v in (d.partition(":") for d in body.split(";")) if v}
        if decl.get("overflow-x") in ("auto", "scroll") and decl.get("max-width") == "100%":
            found += [s.strip().replace("'", '"') for s in selectors.split(",")
                      if s.strip().replace("'", '"') in _DISPLAY_SELECTORS]
    return found


def test_html_css_lets_a_wide_display_scroll_in_its_own_box():
    yaml = pytest.importorskip("yaml")
    html = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))["format"]["html"]
    css = html.get("css", [])
    css = [css] if isinstance(css, str) else list(css)
    assert "book/styles.css" in css, "_quarto.yml format: html: css must list book/styles.css"
    solutions = yaml.safe_load((ROOT / "_quarto-solutions.yml").read_text(encoding="utf-8")) or {}
    own = ((solutions.get("format") or {}).get("html") or {}).get("css")
    if own is not None:  # a profile that sets its own css must keep the book's
        assert "book/styles.css" in ([own] if isinstance(own, str) else own), "_quarto-solutions.yml css"
    found = display_math_scrolls((ROOT / "book" / "styles.css").read_text(encoding="utf-8"))
    assert set(found) == set(_DISPLAY_SELECTORS), found


def test_css_guard_rejects_a_rule_without_overflow():
    assert display_math_scrolls('mjx-container[display="true"] { max-width: 100%; }') == []
    assert display_math_scrolls('/* .math.display { overflow-x: auto; max-width: 100%; } */') == []
    assert display_math_scrolls('.math.display, p { overflow-x: auto; max-width: 100% }') == [".math.display"]
