"""The verdict loop of a grading process, run from a private copy of this module.

:func:`load_private` loads this module (and :mod:`.guard`) a second time, outside ``sys.modules`` and with
its own copy of the builtins, so that a submission which patches ``dnnl.exercises.grading``, ``json``,
``os`` or ``builtins`` does not change the code that compares the libraries and reports the verdict.
The report channel's write function and encoder are bound here, before any student code runs.
"""
from __future__ import annotations

import builtins
import contextlib
import importlib.util
import io
import os
import time
import traceback

guard = None  # the private copy of .guard, set by load_private


def load_private(name: str):
    """A fresh copy of module ``name``, not in ``sys.modules``, with a frozen copy of the builtins."""
    spec = importlib.util.find_spec(name)
    mod = importlib.util.module_from_spec(spec)
    mod.__dict__["__builtins__"] = dict(vars(builtins))
    spec.loader.exec_module(mod)
    return mod


def private_verdicts():
    """This module's private copy, with a private copy of the guard."""
    mod = load_private(__name__)
    mod.guard = load_private(__name__.rsplit(".", 1)[0] + ".guard")
    return mod


def _encode(obj) -> str:
    """JSON for str, int, float, bool, None, list and dict, without the (patchable) json module."""
    kind = type(obj)
    if obj is None or kind is bool:
        return {None: "null", True: "true", False: "false"}[obj]
    if kind is int or kind is float:
        return repr(obj) if obj == obj and obj not in (float("inf"), float("-inf")) else "null"
    if kind is str:
        out = []
        for ch in obj:
            code = ord(ch)
            out.append('\\"' if ch == '"' else "\\\\" if ch == "\\" else f"\\u{code:04x}" if code < 32 else ch)
        return '"' + "".join(out) + '"'
    if kind is list or kind is tuple:
        return "[" + ",".join(_encode(v) for v in obj) + "]"
    if kind is dict:
        return "{" + ",".join(_encode(str(k)) + ":" + _encode(v) for k, v in obj.items()) + "}"
    return _encode(str(obj))


def sender(fd: int, nonce: str):
    write = os.write

    def send(kind: str, **data) -> None:
        line = (_encode({"nonce": nonce, "type": kind, **data}) + "\n").encode("utf-8")
        while line:
            line = line[write(fd, line):]

    return send


def student_error(err: BaseException) -> str:
    """``Type: message``, and the lines of the student's cells the error passed through."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith("<code cell")]
    where = "".join(f" ({f.filename[1:-1]}, line {f.lineno})" for f in frames[-2:])
    text = f"{type(err).__name__}: {err}"
    if isinstance(err, MemoryError) or "can't allocate memory" in str(err) or "not enough memory" in str(err):
        text += " (the grader's memory limit was reached)"
    return text + where


def _define(ex: dict, preamble_ns: dict) -> tuple[dict, str | None, str]:
    ns = dict(preamble_ns)
    printed = io.StringIO()
    try:
        code = compile(ex["source"], f"<code cell {ex['cell']}>", "exec")
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            exec(code, ns)  # noqa: S102
    except BaseException as err:  # noqa: BLE001 -- the student's code: every error is a verdict
        return ns, (f"❌ {ex['check']}: defining `{ex['function']}` in code cell {ex['cell']} raised "
                    f"{student_error(err)}"), printed.getvalue()
    return ns, None, printed.getvalue()


def _tampered(ex: dict, what: list[str]) -> str:
    shown = ", ".join(what[:6]) + (f" and {len(what) - 6} more" if len(what) > 6 else "")
    return (f"❌ {ex['check']}: the submission changed the grader or a library it relies on ({shown}), "
            f"from code cell {ex['cell']}. A verdict cannot be trusted after that, so this check fails.")


def _memory_note(message: str) -> str:
    if "can't allocate memory" in message or "MemoryError" in message:
        return message + "\n   (The grader's memory limit was reached.)"
    return message


def verdict_one(ex: dict, preamble_ns: dict, evaluate, send) -> bool:
    """Grade one exercise and send its result; True when the process must stop (the guard saw a change)."""
    snap = guard.snapshot()
    start = time.perf_counter()
    ns, problem, printed = _define(ex, preamble_ns)
    changed = guard.changes(snap)
    if not changed and not problem:
        result = evaluate(ex["check"], ns.get(ex["function"]), hints=ex["hints"], hide=True)
        changed = guard.changes(snap)
    if changed:
        send("result", index=ex["index"], status="FAIL", message=_tampered(ex, changed), tampered=True)
        return True
    if problem:
        send("result", index=ex["index"], status="FAIL", message=problem, printed=printed)
        return False
    send("result", index=ex["index"], status=str(result.status), message=_memory_note(str(result.message)),
         printed=(printed + str(result.output))[-2000:], seconds=time.perf_counter() - start)
    return False


def run(job: dict, preamble_ns: dict, send) -> None:
    """Grade every exercise of ``job`` in order, after the preamble ran into ``preamble_ns``."""
    from ..checks import evaluate

    send("ready")
    for ex in job["exercises"]:
        send("begin", index=ex["index"])
        if verdict_one(ex, preamble_ns, evaluate, send):
            break  # the libraries changed: the rest is graded in a fresh process
    send("done")
