"""Chapter 7's exercise checks (dnnl/exercises/guidance_checks.py): the book's solutions pass, the stubs are
TODO, and each classic mistake fails with its cause (the corpus in tests/wrong_solutions/ adds more)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import dnnl.exercises as ex
from dnnl.exercises import evaluate, list_checks



def assert_passes(check, fn, capsys):
    """The check prints ✅ and returns True; its verdict (``evaluate``) is PASS."""
    assert check(fn) is True
    out = capsys.readouterr().out
    assert "✅" in out and evaluate(check.__name__, fn).status == "PASS", out
    return out


def assert_fails(check, fn, capsys, *needles):
    """The check fails with a message (no traceback, no 'could not run') that holds each needle."""
    assert check(fn) is False
    out = capsys.readouterr().out
    assert "❌" in out and "Traceback" not in out and "could not run" not in out, out
    assert evaluate(check.__name__, fn).status == "FAIL"
    for needle in needles:
        assert needle in out, f"expected {needle!r} in:\n{out}"
    return out

CHAPTER = Path(__file__).resolve().parent.parent / "book" / "07-guidance.qmd"
_CELL = re.compile(r"```\{python\}\n(.*?)```", re.S)
_SOLUTION = re.compile(r"\n([ \t]*)# BEGIN SOLUTION\n(.*?)\n[ \t]*# END SOLUTION", re.S)
CHECKS = {"cfg_eps": "check_cfg_eps", "drop_labels": "check_label_dropout", "guided_eps": "check_guided_eps"}


def _book_functions(stub: bool) -> dict:
    """The functions of the chapter's exercise cells, with their solution or as the student's stub."""
    out = {}
    for cell in _CELL.findall(CHAPTER.read_text(encoding="utf-8")):
        if "# BEGIN SOLUTION" not in cell:
            continue
        body = _SOLUTION.sub(lambda m: "\n" + (m.group(1) + "raise NotImplementedError" if stub else m.group(2)),
                             cell)
        space: dict = {}
        exec(compile(body, str(CHAPTER), "exec"), space)  # noqa: S102
        out.update({k: v for k, v in space.items() if k in CHECKS})
    return out


def test_the_checks_are_registered_in_chapter_7_in_book_order():
    names = list_checks()
    assert all(names.index(c) > names.index("check_ddim_step") for c in CHECKS.values())
    assert [n for n in names if n in CHECKS.values()] == list(CHECKS.values())
    assert {info["name"]: info["chapter"] for info in ex.check_info()
            if info["name"] in CHECKS.values()} == dict.fromkeys(CHECKS.values(), 7)


@pytest.mark.parametrize("name", CHECKS)
def test_the_book_solution_passes_and_its_stub_is_todo(name, capsys):
    check = getattr(ex, CHECKS[name])
    assert_passes(check, _book_functions(stub=False)[name], capsys)
    assert evaluate(CHECKS[name], _book_functions(stub=True)[name]).status == "TODO"


# --------------------------------------------------------------------------- 7.1

@pytest.mark.parametrize("wrong, cause", [
    (lambda c, u, w: (1 + w) * u - w * c, "a sign error"),
    (lambda c, u, w: u + w * (c - u), "w versus gamma"),
    (lambda c, u, w: (1 + w) * c, "the unconditional branch is missing"),
])
def test_cfg_eps_names_the_mistake(wrong, cause, capsys):
    assert_fails(ex.check_cfg_eps, wrong, capsys, cause)
    assert evaluate("check_cfg_eps", wrong, hints="terse").cause.endswith(cause)


def test_cfg_eps_is_not_fooled_at_w_zero(capsys):
    """Every wrong form above agrees with the right one at w = 0; the check must try other weights."""
    assert_fails(ex.check_cfg_eps, lambda c, u, w: c + w * (c - u) if w == 0 else u, capsys)


# --------------------------------------------------------------------------- 7.2

def _drop(y, p, null, generator, *, use_gen=True, token=None, cmp="<"):
    u = torch.rand(y.shape, generator=generator if use_gen else None)
    drop = u < p if cmp == "<" else u > p
    return torch.where(drop, torch.full_like(y, null if token is None else token), y)


@pytest.mark.parametrize("wrong, cause", [
    (lambda y, p, n, g: _drop(y, p, n, g, use_gen=False), "the generator argument is ignored"),
    (lambda y, p, n, g: _drop(y, p, n, g, token=-1), "the wrong null token"),
    (lambda y, p, n, g: _drop(y, p, n, g, token=10), "the wrong null token"),
    (lambda y, p, n, g: _drop(y, p, n, g, cmp=">"), "the probability is inverted"),
    (lambda y, p, n, g: y.index_fill_(0, torch.arange(len(y) // 10), n), "an in-place edit of an input"),
])
def test_label_dropout_names_the_mistake(wrong, cause, capsys):
    assert_fails(ex.check_label_dropout, wrong, capsys, cause)


def test_label_dropout_rate_tolerance_is_five_standard_errors(capsys):
    """A rate off by 9 standard errors (0.1 + 9 * 0.00067) fails; the right rate passes."""
    assert_fails(ex.check_label_dropout, lambda y, p, n, g: _drop(y, p + 0.006 if p else p, n, g), capsys,
                 "5 standard errors")


# --------------------------------------------------------------------------- 7.3

def _guided(model, xt, t, y, w, *, null=None, swap=False, calls=1):
    null = torch.full_like(y, model.num_classes if null is None else null)
    if calls == 2:
        c, u = model(xt, t, y), model(xt, t, null)
    else:
        c, u = model(torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
    if swap:
        c, u = u, c
    return (1 + w) * c - w * u


@pytest.mark.parametrize("wrong, cause", [
    (lambda m, x, t, y, w: _guided(m, x, t, y, w, calls=2), "two model calls instead of one batch"),
    (lambda m, x, t, y, w: _guided(m, x, t, y, w, swap=True), "a sign error"),
    (lambda m, x, t, y, w: _guided(m, x, t, y, w, null=0), "the wrong null token"),
    (lambda m, x, t, y, w: (1 + w) * m(x, t, y), "the unconditional branch is missing"),
])
def test_guided_eps_names_the_mistake(wrong, cause, capsys):
    assert_fails(ex.check_guided_eps, wrong, capsys, cause)


def test_guided_eps_reports_the_sampling_property(capsys):
    out = assert_passes(ex.check_guided_eps, lambda m, x, t, y, w: _guided(m, x, t, y, w), capsys)
    assert "at w = 0 the mean is the class mean" in out and "rises from" in out


def test_guided_eps_grader_switches_the_package_off():
    from dnnl.models import ddpm
    result = evaluate("check_guided_eps", lambda m, x, t, y, w: ddpm.guided(m, y, w)(x, t), hide=True)
    assert result.status == "FAIL" and "package" in result.cause
