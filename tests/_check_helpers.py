"""What the exercise-check tests share: run a check, then assert its verdict and what it printed.

A check never raises; it prints a ✅, ❌ or ⏳ message for the student and nothing for a machine.
"""


def _run(check, fn, capsys, **kw):
    """Run a check; return (verdict, printed text). A check must never raise."""
    verdict = check(fn, **kw)
    out = capsys.readouterr().out
    assert isinstance(verdict, bool)
    assert "[dnnl-check" not in out, out  # no machine line in the student's view
    return verdict, out


def assert_passes(check, fn, capsys):
    ok, out = _run(check, fn, capsys)
    assert ok, out
    assert "✅" in out and f"{check.__name__}: passed" in out
    return out


def assert_fails(check, fn, capsys, *needles):
    """The check fails with a message (no traceback, no raw assertion, no 'could not run') holding each needle."""
    ok, out = _run(check, fn, capsys)
    assert not ok, out
    assert f"❌ {check.__name__}:" in out, out
    assert "assert" not in out.lower() and "Traceback" not in out and "could not run" not in out, out
    for needle in needles:
        assert needle in out, f"expected {needle!r} in:\n{out}"
    return out
