"""No answer reaches a student: every line of every solution is absent from every student-facing text.

The answers live in the chapters, between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` (code) and in
``::: {.content-visible when-profile="solutions"}`` divs (written answers). Student-facing texts are

* every notebook in ``notebooks/`` (the folder the Colab badges open and teachers hand out), and
* every page of the book as the default profile shows it (the web site): its markdown without the
  solutions-only divs and its code with each solution region replaced by the stub.

A solution line counts unless it is trivial:

* a line with fewer than two names or numbers once Python keywords and LaTeX commands are set aside
  (a blank line, ``return x``, ``else:``, a lone bracket, ``$$``, ``\\end{aligned}``), unless it is
  code with an operator in it (``return -x`` counts);
* a line of code that computes nothing: only names, dots, ``=``, ``:``, ``,``, empty calls ``()`` and
  the keywords ``with return import from as pass else try finally del None True False`` (``ab =
  schedule.alpha_bars``, ``loss.backward()``, ``with torch.no_grad():``). An operator, a comparison,
  a literal, an index, a call with arguments, ``if``/``for``/``not``... make it count.

A code line is searched without its trailing comment; a comment line inside a solution is searched as
prose. A line is found when its tokens appear, in order and adjacent, inside one line of a student text,
whatever the spacing, so an answer pasted into a longer line or re-indented is found too.

An answer rewritten in other words escapes a line search, so every exercise function that a student text
defines (``def q_sample(...)`` at the top of a code cell) is also run through its check: none may pass.
"""
from __future__ import annotations

import json
import keyword
import re
from pathlib import Path

import pytest

pytest.importorskip("jupytext")
yaml = pytest.importorskip("yaml")

from booktools import BEGIN, END, chapter_notebook, plain_claims  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
_TOKEN = re.compile(r"\\[A-Za-z]+|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\S")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LEAD = re.compile(r"^\s*(?:>\s*)*(?:(?:[-*+]|\d+\.)\s+)?")   # quote marks and a list marker
_DIV_OPEN = re.compile(r"^(:{3,})\s*(\{.*\}|[\w-]+)\s*$")
_DIV_CLOSE = re.compile(r"^:{3,}\s*$")
_SEP = "\x1f"


def tokens(line: str) -> list[str]:
    """The tokens of one line: names, numbers, LaTeX commands and single symbols (spacing ignored)."""
    return _TOKEN.findall(plain_claims(_LEAD.sub("", line)))


_PLUMBING_WORDS = {"with", "return", "import", "from", "as", "pass", "else", "try", "finally", "del",
                   "None", "True", "False"}


def _few_words(line: str) -> bool:
    words = [t for t in tokens(line) if _WORD.fullmatch(t) and not keyword.iskeyword(t)]
    return len(words) < 2


def _plumbing(code: str) -> bool:
    """Code that computes nothing: names, dots, =, :, commas, empty calls and a few keywords."""
    toks = tokens(code.replace("()", " \x00 "))
    return all(t in (".", "=", ":", ",", "\x00") or t in _PLUMBING_WORDS
               or (re.fullmatch(r"[A-Za-z_]\w*", t) and not keyword.iskeyword(t)) for t in toks)


def split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of a line of Python: the comment starts at the first # outside a string."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote and line[i - 1] != "\\" else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i], line[i + 1:]
    return line, ""


def answer_needle(line: str, *, code: bool) -> str | None:
    """What to search for of one solution line, or None if it is trivial (see the module's rule)."""
    if code:
        part, comment = split_comment(line)
        if not part.strip():
            return answer_needle(comment, code=False)
        bare = all(_WORD.fullmatch(t) or t in "()[]{},:;" for t in tokens(part))
        return None if (_few_words(part) and bare) or _plumbing(part) else part
    return None if _few_words(line) else line


def is_trivial(line: str, *, code: bool = True) -> bool:
    return answer_needle(line, code=code) is None


def _solutions_div(attrs: str) -> bool:
    attrs = attrs.replace("'", '"')
    return ".content-visible" in attrs and 'when-profile="solutions"' in attrs


def solution_lines(text: str) -> list[tuple[int, str, str]]:
    """(line number, line, what to search) of every non-trivial line of a page's answers: code inside
    solution regions and everything inside a solutions-only div (nested divs included)."""
    found, in_region, stack = [], False, []
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            in_region = True
            continue
        if stripped == END:
            in_region = False
            continue
        opened = _DIV_OPEN.match(line)
        if opened:
            stack.append(_solutions_div(opened.group(2)))
            continue
        if _DIV_CLOSE.match(line) and stack:
            stack.pop()
            continue
        if in_region or any(stack):
            needle = answer_needle(line, code=in_region)
            if needle is not None:
                found.append((number, line, needle))
    return found


def _book_pages() -> list[Path]:
    """Every page the web site shows: the chapters and appendices of _quarto.yml, in order."""
    book = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))["book"]

    def flat(items):
        for item in items or []:
            if isinstance(item, str):
                yield item
            elif isinstance(item, dict):
                yield from ([item["part"]] if str(item.get("part", "")).endswith(".qmd") else [])
                yield from flat(item.get("chapters"))

    return [ROOT / name for name in [*flat(book.get("chapters")), *flat(book.get("appendices"))]]


def _answer_pages() -> list[Path]:
    return sorted({*_book_pages(), *(ROOT / "book").glob("*.qmd"), ROOT / "index.qmd"})


def _notebook_lines(cells, where: str):
    for i, cell in enumerate(cells):
        texts = [cell.get("source", "")]
        for out in cell.get("outputs", []) or []:
            texts.append(out.get("text", "") if isinstance(out.get("text", ""), str) else "".join(out["text"]))
            texts += [v if isinstance(v, str) else "".join(v) for k, v in (out.get("data") or {}).items()
                      if k.startswith("text/")]
        for text in texts:
            text = "".join(text) if isinstance(text, list) else text
            for line in text.split("\n"):
                yield f"{where}, cell {i}", line


def student_texts():
    """(where, line) for every line a student can see: the notebooks/ files and the default-profile pages."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        yield from _notebook_lines(cells, str(path.relative_to(ROOT)))
    for path in _book_pages():
        nb = chapter_notebook(path.read_text(encoding="utf-8"), path.stem, solutions=False)
        yield from _notebook_lines(nb.cells, f"{path.relative_to(ROOT)} (web page)")


def leaks(answers: dict[str, list[tuple[int, str, str]]], texts) -> list[str]:
    """Each answer line found in a student text, as 'page:line `answer` -> where'."""
    seen: dict[str, list[str]] = {}
    for where, line in texts:
        joined = _SEP + _SEP.join(tokens(line)) + _SEP
        if len(joined) > 2:
            seen.setdefault(joined, []).append(where)
    found = []
    for page, lines in answers.items():
        for number, line, text in lines:
            needle = _SEP + _SEP.join(tokens(text)) + _SEP
            hits = sorted({where for hay, wheres in seen.items() if needle in hay for where in wheres})
            if hits:
                found.append(f"{page}:{number} `{line.strip()}` -> " + "; ".join(hits))
    return found


def _answers() -> dict[str, list[tuple[int, str, str]]]:
    return {str(p.relative_to(ROOT)): solution_lines(p.read_text(encoding="utf-8")) for p in _answer_pages()}


# --------------------------------------------------------------------------- the rule itself
def test_the_triviality_rule_is_strict():
    for line in ("", "    return x", ")", "    ]", "else:", "pass", "    ),",
                 "ab = schedule.alpha_bars", "loss.backward()", "with torch.no_grad():", "x = x0.double()  # cast"):
        assert is_trivial(line), line
    for line in ("return x0 * 2", "    return images.float() / 127.5 - 1.0", "z = 1", "t = t.long()[0]",
                 'signal = schedule.gather("sqrt_alpha_bars", t, x0)', "if images.dtype == torch.uint8:",
                 "    # float64: the KL is a small difference", "return -x", "for k in keys:"):
        assert not is_trivial(line), line
    for line in ("", "**Answer.**", "$$", r"\end{aligned}", ":::", "> - Yes."):
        assert is_trivial(line, code=False), line
    for line in (r"$\sqrt{10.05} \approx 3.17$", "the digit never fades", "ab = schedule.alpha_bars"):
        assert not is_trivial(line, code=False), line
    assert split_comment('x = "#" + y  # note') == ('x = "#" + y  ', " note")


def test_an_answer_is_found_inside_a_longer_line_whatever_its_spacing():
    answers = {"book/x.qmd": solution_lines("def f(x):\n    # BEGIN SOLUTION\n    return x*2 + 1\n    # END SOLUTION\n"
                                            "::: {.content-visible when-profile=\"solutions\"}\n"
                                            "**Answer.** It is [3.17]{.claim}, since the noises add.\n:::\n")}
    assert [n for n, _, _ in answers["book/x.qmd"]] == [3, 6]
    texts = [("a.ipynb, cell 1", "        return x * 2 + 1  # a copy"),
             ("b.ipynb, cell 2", "> **Answer.** It is 3.17, since the noises add.")]
    assert len(leaks(answers, texts)) == 2
    assert leaks(answers, [("c.ipynb, cell 0", "return x * 2 + 10"), ("d", "It is 3.17")]) == []


def test_every_page_has_its_answers_read():
    answers = _answers()
    chapters = [p for p in answers if re.match(r"book/\d\d-", p)]
    assert chapters and all(answers[p] for p in chapters), "a chapter without a single answer line"


# --------------------------------------------------------------------------- the student editions
def test_no_answer_line_in_any_student_facing_text():
    found = leaks(_answers(), student_texts())
    assert not found, ("answer lines in student-facing texts (notebooks/ or the web site):\n  "
                       + "\n  ".join(found[:40]) + (f"\n  ... and {len(found) - 40} more" if len(found) > 40 else ""))


def test_notebooks_folder_holds_only_student_notebooks_of_chapters():
    """The teacher's page (and any page that is not a chapter) is built into notebooks/solutions/ only."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        meta = json.loads(path.read_text(encoding="utf-8"))["metadata"].get("dnnl", {})
        assert re.match(r"^\d\d-", path.name), f"{path.relative_to(ROOT)} is not a chapter's student notebook"
        assert meta.get("version") == "student", f"{path.relative_to(ROOT)} is not a student edition"


def test_the_web_site_shows_stubs_unless_the_solutions_profile_is_on():
    """The default profile is the student's: the filter that writes stubs runs, and only the solutions
    profile turns it off."""
    default = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))
    solutions = yaml.safe_load((ROOT / "_quarto-solutions.yml").read_text(encoding="utf-8"))
    assert "book/_filters/solutions.lua" in default.get("filters", [])
    assert "dnnl-solutions" not in default and solutions.get("dnnl-solutions") is True
    assert not (default.get("profile") or {}).get("default"), "_quarto.yml must not make a profile the default"
    others = [p.name for p in ROOT.glob("_quarto-*.yml") if p.name != "_quarto-solutions.yml"]
    for name in others:
        assert "dnnl-solutions" not in (yaml.safe_load((ROOT / name).read_text(encoding="utf-8")) or {}), name
    lua = (ROOT / "book" / "_filters" / "solutions.lua").read_text(encoding="utf-8")
    from booktools import STUB_MESSAGE
    assert f'local DEFAULT_HINT = "{STUB_MESSAGE}"' in lua
    assert f'"{BEGIN}"' in lua and f'"{END}"' in lua and '"# HINT:"' in lua


# --------------------------------------------------------------------------- working answers in other words
def exercise_functions() -> dict[str, str]:
    """{function name: its check} for every code exercise: the function around a solution region, and
    the check that the next code cell calls on it."""
    import ast

    found = {}
    for path in sorted((ROOT / "book").glob("[0-9][0-9]-*.qmd")):
        nb = chapter_notebook(path.read_text(encoding="utf-8"), path.stem, solutions=True)
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        for cell, after in zip(code, code[1:]):
            if BEGIN not in cell:
                continue
            names = [n.name for n in ast.parse(cell).body if isinstance(n, ast.FunctionDef)]
            for check, name in re.findall(r"\b(check_\w+)\((\w+)", after):
                if name in names:
                    found[name] = check
    return found


def working_answers(cells, where: str, exercises: dict[str, str]) -> list[str]:
    """Each top-level definition of an exercise function in ``cells`` that passes its check."""
    import ast
    import math

    import torch

    import dnnl.models.ddpm as ddpm
    from dnnl.exercises.checks import evaluate

    found = []
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or node.name not in exercises:
                continue
            space = {"torch": torch, "math": math, "ddpm": ddpm, "nn": torch.nn, "F": torch.nn.functional}
            try:
                exec(compile(ast.Module([node], []), where, "exec"), space)  # noqa: S102
            except Exception:   # a definition that needs more of its notebook cannot be judged alone
                continue
            result = evaluate(exercises[node.name], space[node.name], hide=True)
            if result.status == "PASS":
                found.append(f"{where}, cell {i}: `{node.name}` passes {exercises[node.name]}")
    return found


def _student_cells():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        yield str(path.relative_to(ROOT)), json.loads(path.read_text(encoding="utf-8"))["cells"]
    for path in _book_pages():
        nb = chapter_notebook(path.read_text(encoding="utf-8"), path.stem, solutions=False)
        yield f"{path.relative_to(ROOT)} (web page)", nb.cells


def test_the_exercise_map_covers_every_solution():
    exercises = exercise_functions()
    regions = sum(p.read_text(encoding="utf-8").count(BEGIN) for p in (ROOT / "book").glob("[0-9][0-9]-*.qmd"))
    assert len(exercises) >= 12 and len(set(exercises.values())) == len(exercises), exercises
    assert regions >= len(exercises)


def test_a_working_answer_in_other_words_is_found():
    exercises = exercise_functions()
    right = ("def q_sample(schedule, x0, t, noise):\n    ab = schedule.gather('alpha_bars', t, x0)\n"
             "    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise\n")
    wrong = right.replace("alpha_bars", "alphas")
    stub = "def q_sample(schedule, x0, t, noise):\n    raise NotImplementedError('hint')\n"
    cells = [{"cell_type": "code", "source": s} for s in (stub, wrong, right)]
    assert working_answers(cells, "x.ipynb", exercises) == ["x.ipynb, cell 2: `q_sample` passes check_q_sample"]


def test_no_student_facing_text_defines_a_working_answer():
    """The line search misses an answer rewritten in other words; running each exercise function that a
    student text defines through its check does not."""
    exercises = exercise_functions()
    found = [hit for where, cells in _student_cells() for hit in working_answers(cells, where, exercises)]
    assert not found, "working answers in student-facing texts:\n  " + "\n  ".join(found)
