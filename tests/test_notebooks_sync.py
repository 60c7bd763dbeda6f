"""The notebooks are generated from book/*.qmd; this fails when one is stale (run scripts/sync_notebooks.py)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jupytext")

from booktools import (References, book_references, build_notebooks, chapter_notebook,  # noqa: E402
                       solution_source, student_source)

ROOT = Path(__file__).resolve().parent.parent


def test_notebooks_are_in_sync_with_the_chapters():
    stale = build_notebooks(ROOT, check=True)
    names = [str(p.relative_to(ROOT)) for p in stale]
    assert not names, "out of date, run `python scripts/sync_notebooks.py`: " + ", ".join(names)


def test_sync_script_check_mode_exits_zero_when_in_sync():
    result = subprocess.run([sys.executable, "scripts/sync_notebooks.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_mode_reports_a_stale_chapter_and_a_wrong_url(tmp_path):
    (tmp_path / "book").mkdir()
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    source = (ROOT / "book" / "01-forward.qmd").read_text(encoding="utf-8")
    (tmp_path / "book" / "01-forward.qmd").write_text(source, encoding="utf-8")
    assert {p.name for p in build_notebooks(tmp_path, check=True)} == {"01-forward.ipynb"}  # both notebooks missing
    assert len(build_notebooks(tmp_path, check=True)) == 2
    build_notebooks(tmp_path)
    assert build_notebooks(tmp_path, check=True) == []
    # the repository URL lives in pyproject.toml only: changing it makes the chapter stale
    toml = (tmp_path / "pyproject.toml").read_text(encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text(toml.replace("dnnl-book/dnnl", "someone/fork"), encoding="utf-8")
    stale = build_notebooks(tmp_path, check=True)
    assert tmp_path / "book" / "01-forward.qmd" in stale
    build_notebooks(tmp_path)
    text = (tmp_path / "book" / "01-forward.qmd").read_text(encoding="utf-8")
    assert 'REPO = "https://github.com/someone/fork"' in text
    assert "colab.research.google.com/github/someone/fork/blob/main/notebooks/01-forward.ipynb" in text
    assert "dnnl-book/dnnl" not in text


def test_notebooks_are_byte_for_byte_deterministic(tmp_path):
    text = (ROOT / "book" / "01-forward.qmd").read_text(encoding="utf-8")
    import nbformat
    first = nbformat.writes(chapter_notebook(text, "01-forward", solutions=False))
    second = nbformat.writes(chapter_notebook(text, "01-forward", solutions=False))
    assert first == second


def test_student_source_replaces_each_region_with_a_stub_at_its_indentation():
    code = "\n".join([
        "def f(x):",
        "    # HINT: multiply by two",
        "    # BEGIN SOLUTION",
        "    y = 2 * x",
        "    return y",
        "    # END SOLUTION",
        "",
        "# BEGIN SOLUTION",
        "z = 1",
        "# END SOLUTION",
    ])
    stub = student_source(code)
    assert stub.split("\n") == [
        "def f(x):",
        '    raise NotImplementedError("multiply by two")',
        "",
        'raise NotImplementedError("Replace this line with your solution.")',
    ]


def test_solution_source_keeps_each_region_and_drops_its_markers_and_hint():
    code = "\n".join(["def f(x):", "    # HINT: multiply by two", "    # BEGIN SOLUTION", "    y = 2 * x",
                      "    return y", "    # END SOLUTION", "# HINT: a hint far from a region stays", "w = 0",
                      "# BEGIN SOLUTION", "z = 1", "# END SOLUTION"])
    assert solution_source(code).split("\n") == [
        "def f(x):", "    y = 2 * x", "    return y", "# HINT: a hint far from a region stays", "w = 0", "z = 1"]


@pytest.mark.parametrize("bad", ["# BEGIN SOLUTION\nx = 1", "x = 1\n# END SOLUTION",
                                 "# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION"])
@pytest.mark.parametrize("edition", [student_source, solution_source], ids=["student", "solution"])
def test_both_editions_reject_unbalanced_markers(bad, edition):
    with pytest.raises(ValueError):
        edition(bad)


def test_student_markdown_drops_written_answers_and_solutions_keeps_them():
    from booktools import notebook_markdown

    text = "\n".join([
        "Question?",
        "",
        '::: {.content-visible when-profile="solutions"}',
        "**Answer.** 42.",
        ":::",
        "",
        '::: {.content-hidden when-profile="solutions"}',
        "Try it yourself.",
        ":::",
    ])
    student = notebook_markdown(text, solutions=False)
    solutions = notebook_markdown(text, solutions=True)
    assert "42" not in student and "Try it yourself." in student
    assert "42" in solutions and "Try it yourself." not in solutions
    assert ":::" not in student and ":::" not in solutions


def test_callouts_become_block_quotes_with_their_title():
    from booktools import notebook_markdown

    text = "::: {.callout-warning}\n## Erratum: a slip\nThe body.\n:::\nAfter."
    assert notebook_markdown(text, solutions=False).split("\n") == [
        "> **Warning: Erratum: a slip**", "> The body.", "After."]


def test_references_and_citations_are_written_out_for_notebooks():
    from booktools import References, resolve_references

    refs = References(labels={"eq-a": "Eq. (1.2)", "fig-b": "Figure 3.1", "sec-c": "Section 2.4"},
                      cites={"ho2020ddpm": ("Ho et al.", "2020"), "luo2022understanding": ("Luo", "2022")})
    text = ("See @eq-a, @fig-b and @sec-c [@ho2020ddpm; @luo2022understanding]; @luo2022understanding agrees. "
            "Mail me@example.org, keep `@eq-a`.\n$$\nx = 1\n$$ {#eq-a}\n## Heading {#sec-c}")
    out = resolve_references(text, refs)
    assert "See Eq. (1.2), Figure 3.1 and Section 2.4 (Ho et al. 2020; Luo 2022); Luo (2022) agrees." in out
    assert "me@example.org" in out and "`@eq-a`" in out
    assert "\\tag{1.2}\n$$" in out and "{#eq-a}" not in out
    assert "## Heading" in out and "{#sec-c}" not in out


def test_book_references_number_equations_by_chapter():
    from booktools import book_references

    refs = book_references(ROOT)
    assert refs.ref("eq-forward-step") == "Eq. (1.1)"
    assert refs.ref("eq-q-sample").startswith("Eq. (1.")
    assert refs.ref("eq-posterior-mean").startswith("Eq. (2.")
    assert refs.cite("ho2020ddpm", in_text=True) == "Ho et al. (2020)"


_FIGURE_CHAPTER = "\n".join([
    "---", 'title: "T"', "---", "", "Prose with [0.913]{.claim} in it, see @fig-a.", "",
    "```{python}", "#| label: fig-a", '#| fig-cap: "The product is [0.913]{.claim}, $\\\\bar\\\\alpha_t$ of @eq-b."',
    "#| fig-alt: a line", "#| code-fold: true", "x = 1", "```", "", "After.", "",
    "$$", "y = 2", "$$ {#eq-b}", "",
])


def test_figure_captions_become_markdown_cells_and_options_leave_the_code():
    refs = References(labels={"fig-a": "Figure 4.2", "eq-b": "Eq. (4.1)"}, cites={})
    nb = chapter_notebook(_FIGURE_CHAPTER, "04-x", solutions=False, refs=refs)
    kinds = [(c.cell_type, c.source) for c in nb.cells]
    code = next(i for i, (kind, _) in enumerate(kinds) if kind == "code")
    assert kinds[code][1] == "x = 1", "Quarto options (#| ...) must not reach the notebook's code"
    assert kinds[code + 1] == ("markdown", "**Figure 4.2.** The product is 0.913, $\\bar\\alpha_t$ of Eq. (4.1).")
    assert "Prose with 0.913 in it, see Figure 4.2." in kinds[code - 1][1]
    assert not any("#|" in source or "{.claim}" in source for _, source in kinds)


def test_captions_without_references_and_option_parsing():
    from booktools import split_options

    nb = chapter_notebook(_FIGURE_CHAPTER, "04-x", solutions=True)
    assert any(c.cell_type == "markdown" and c.source.startswith("**Figure.** The product is 0.913")
               for c in nb.cells)
    options, code = split_options('#| label: tbl-x\n#| tbl-cap: "A: b"\n#| error: true\nraise ValueError')
    assert options == {"label": "tbl-x", "tbl-cap": "A: b", "error": True} and code == "raise ValueError"
    with pytest.raises(ValueError, match="YAML"):
        split_options("#| fig-cap: \"unclosed\n1")


def test_claim_spans_render_as_plain_numbers():
    from booktools import plain_claims

    assert plain_claims("a [0.913]{.claim} b [1,600]{.claim} [text]{.smallcaps}") == \
        "a 0.913 b 1,600 [text]{.smallcaps}"


def test_chapter_numbers_follow_quarto_and_skip_an_unnumbered_preface(tmp_path):
    from booktools import chapter_numbers

    (tmp_path / "book").mkdir()
    (tmp_path / "_quarto.yml").write_text("book:\n  chapters:\n    - index.qmd\n    - book/01-a.qmd\n"
                                          "  appendices:\n    - book/teacher.qmd\n", encoding="utf-8")
    (tmp_path / "book" / "01-a.qmd").write_text("---\ntitle: A\n---\n\n$$\nx\n$$ {#eq-x}\n", encoding="utf-8")
    (tmp_path / "book" / "teacher.qmd").write_text("---\ntitle: T\n---\n", encoding="utf-8")
    index = tmp_path / "index.qmd"
    index.write_text("---\ntitle: Preface\n---\n\nText.\n", encoding="utf-8")   # numbered: a defect
    assert book_references(tmp_path).ref("eq-x") == "Eq. (2.1)"
    index.write_text("# Preface {.unnumbered}\n\nText.\n", encoding="utf-8")
    numbers = {p.name: n for p, n in chapter_numbers(tmp_path).items()}
    assert numbers == {"index.qmd": None, "01-a.qmd": "1", "teacher.qmd": "A"}
    assert book_references(tmp_path).ref("eq-x") == "Eq. (1.1)"
    nb = chapter_notebook(index.read_text(encoding="utf-8"), "index", solutions=True,
                          refs=book_references(tmp_path))
    assert nb.cells[0].source.startswith("# Preface") and "unnumbered" not in nb.cells[0].source
