"""What the exercise-check tests share: run a check, then assert its verdict and what it printed.

A check never raises; it prints a verdict line for the grader and a ✅ or ❌ message for the student.
"""


def _run(check, fn, capsys):
    """Run a check; return (verdict, printed text). A check must never raise."""
    verdict = check(fn)
    out = capsys.readouterr().out
    assert isinstance(verdict, bool)
    return verdict, out


def assert_passes(check, fn, capsys):
    ok, out = _run(check, fn, capsys)
    assert ok, out
    assert "✅" in out and f"[dnnl-check] {check.__name__}: PASS" in out
    return out


def assert_fails(check, fn, capsys, *needles):
    """The check fails with a message (no traceback, no raw assertion, no 'could not run') holding each needle."""
    ok, out = _run(check, fn, capsys)
    assert not ok, out
    assert "❌" in out and f"[dnnl-check] {check.__name__}: FAIL" in out, out
    assert "assert" not in out.lower() and "Traceback" not in out and "could not run" not in out, out
    for needle in needles:
        assert needle in out, f"expected {needle!r} in:\n{out}"
    return out
