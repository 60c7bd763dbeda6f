"""The wrong-solution corpus (tests/wrong_solutions/): the checks catch what students really get wrong.

Each corpus module lists ``WRONG = [(function, cause), ...]`` for one check. Every entry is graded as the
grader does (``hide=True``) at both hint levels. Asserted: at least 95 % are caught (FAIL); every named
cause is the right one (``cause`` is contained in the named cause; ``None``: no cause may be named); no
check errors; at the terse level no hint or cause line carries code, a formula, or a line of a solution;
the book's solutions pass and their stubs give TODO.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "wrong_solutions"))

import _book  # noqa: E402
import _harness  # noqa: E402

from dnnl.exercises import check_info, evaluate, list_checks  # noqa: E402

ENTRIES = _harness.load()


@pytest.fixture(scope="module")
def graded():
    """(entry id, check, cause, full result, terse result) for every corpus entry."""
    return [(eid, check, cause, evaluate(check, fn, hints="full", hide=True),
             evaluate(check, fn, hints="terse", hide=True)) for eid, check, fn, cause in ENTRIES]


def test_the_corpus_is_large_and_names_real_checks():
    assert len(ENTRIES) >= 60
    assert {check for _, check, _, _ in ENTRIES} <= set(list_checks())
    first_eight = {"check_to_model_range", "check_q_sample", "check_oracle_step", "check_normal_kl",
                   "check_prior_bpd", "check_l_simple", "check_sampler", "check_mc_eps"}
    assert first_eight <= {check for _, check, _, _ in ENTRIES}


def test_at_least_95_percent_are_caught(graded):
    missed = [f"{eid}: {full.status}: {full.message[:200]}" for eid, _, _, full, _ in graded if full.status != "FAIL"]
    caught = 1 - len(missed) / len(graded)
    assert caught >= 0.95, f"caught {caught:.1%}; not caught:\n" + "\n".join(missed)


def _cause_problems(graded) -> list[str]:
    wrong = []
    for eid, _, cause, full, _ in graded:
        if full.status != "FAIL":
            continue
        named = (full.cause or "").lower()
        if cause is None and full.cause is not None:
            wrong.append(f"{eid}: expected no named cause, got {full.cause!r}\n{full.message}")
        elif cause is not None and cause.lower() not in named:
            wrong.append(f"{eid}: expected a cause with {cause!r}, got {full.cause!r}\n{full.message}")
    return wrong


def test_every_named_cause_is_the_right_one(graded):
    wrong = _cause_problems(graded)
    assert not wrong, "\n\n".join(wrong)


def test_the_cause_test_itself_catches_a_wrong_or_an_extra_cause(graded):
    eid, check, _, full, terse = next(g for g in graded if g[3].cause)
    assert _cause_problems([(eid, check, "no such cause", full, terse)])
    assert _cause_problems([(eid, check, None, full, terse)])


def test_no_check_errors_and_both_levels_agree(graded):
    for eid, _, _, full, terse in graded:
        assert full.status != "ERROR", f"{eid}: {full.message}"
        assert (full.status, full.cause) == (terse.status, terse.cause), eid


def test_terse_messages_carry_no_code(graded):
    lines = _book.solution_lines()
    bad = []
    for eid, _, _, _, terse in graded:
        for text in _harness.hint_lines(terse.message):
            found = _harness.code_in(text, lines)
            if found:
                bad.append(f"{eid}: {found!r} in {text!r}")
    stubs = _book.stubs()
    for fn_name, check in _book.exercise_checks().items():
        msg = evaluate(check, stubs[fn_name], hints="terse").message
        bad += [f"{check} stub: {_harness.code_in(t, lines)!r} in {t!r}"
                for t in _harness.hint_lines(msg) if _harness.code_in(t, lines)]
    assert not bad, "\n".join(bad)


def test_the_code_detector_catches_code_and_solution_lines():
    lines = _book.solution_lines()
    for text in ["x = 2 * x - 1", "use torch.randn", "√ᾱ_t·x0", "sqrt(1 - abar)", "x.float()", "index t+1",
                 "mean / 2", lines[0]]:
        assert _harness.code_in(text, lines), text
    for text in ["ᾱ vs α", "an off-by-one in t", "the result is in [0, 1], not [−1, 1]", "min-max scaling",
                 "float32 rounding: compute in float64"]:
        assert _harness.code_in(text, lines) is None, text


def test_book_solutions_pass_and_stubs_give_todo():
    sols, stubs = _book.solutions(), _book.stubs()
    pairs = _book.exercise_checks()
    assert len(pairs) >= 8
    for fn_name, check in pairs.items():
        for hide in (False, True):
            result = evaluate(check, sols[fn_name], hide=hide)
            assert result.status == "PASS", f"{check} (hide={hide}):\n{result.message}"
        for level in ("full", "terse"):
            assert evaluate(check, stubs[fn_name], hints=level).status == "TODO", check


def test_no_hint_at_any_level_is_a_line_of_the_solution():
    lines = _book.solution_lines()
    stubs = _book.stubs()
    leaks = [f"{info['name']} (registered {key}): {ln!r}" for info in check_info() for key in ("hint", "terse")
             for ln in lines if ln in info[key]]
    for fn_name, check in _book.exercise_checks().items():
        for level in ("full", "terse"):
            for text in _harness.hint_lines(evaluate(check, stubs[fn_name], hints=level).message):
                leaks += [f"{check} ({level}): {ln!r}" for ln in lines if ln in text]
    assert not leaks, "\n".join(leaks)
