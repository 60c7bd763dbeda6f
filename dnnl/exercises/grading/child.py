"""The grading process: ``python -I -m dnnl.exercises.grading.child FD`` (started by the grader only).

It reads one job (JSON) from stdin, applies the limits, and reports on file descriptor ``FD``, one JSON
line per message, each carrying the job's nonce; the nonce is never handed to the student's code.

* ``verdict`` jobs: for each exercise, the preamble, then the definitions taken from the submission's
  cell, then ``evaluate(check, function, hide=True)``; the guard compares the libraries before and after.
* ``feedback`` jobs: run the preamble and the exercise and check cells as they are, and send each cell's
  printed output (for the executed notebook the student gets back).
"""
from __future__ import annotations

import contextlib
import io
import json
import sys

from . import limits, verdict
from .verdict import student_error


def _preamble(job: dict, send) -> dict | None:
    ns: dict = {"__name__": "__main__"}
    try:
        exec(compile(job.get("preamble", ""), "<preamble>", "exec"), ns)  # noqa: S102
    except BaseException as err:  # noqa: BLE001 -- the teacher's preamble: an environment error
        send("env_error", message=f"the manifest's preamble failed: {type(err).__name__}: {err}")
        return None
    return ns


def _display(value) -> list[dict]:
    if value is None:
        return []
    return [{"output_type": "execute_result", "data": {"text/plain": repr(value)}, "metadata": {},
             "execution_count": None}]


def _run_cell(source: str, number: int, ns: dict) -> list[dict]:
    import ast

    out = io.StringIO()
    outputs: list[dict] = []
    try:
        tree = ast.parse(source)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(compile(tree, f"<code cell {number}>", "exec"), ns)  # noqa: S102
            if last is not None:
                value = eval(compile(ast.Expression(last.value), f"<code cell {number}>", "eval"), ns)  # noqa: S307
                if not source.rstrip().endswith(";"):
                    outputs = _display(value)
    except BaseException as err:  # noqa: BLE001 -- shown in the executed notebook
        text = out.getvalue()
        stream = [{"output_type": "stream", "name": "stdout", "text": text}] if text else []
        return stream + [{"output_type": "error", "ename": type(err).__name__, "evalue": str(err),
                          "traceback": [student_error(err)]}]
    text = out.getvalue()
    return ([{"output_type": "stream", "name": "stdout", "text": text}] if text else []) + outputs


def run_feedback(job: dict, ns: dict, send) -> None:
    send("ready")
    for cell in job["cells"]:
        send("begin", index=cell["index"])
        send("result", index=cell["index"], outputs=_run_cell(cell["source"], cell["number"], ns))
    send("done")


def main(argv: list[str]) -> int:
    job = json.loads(sys.stdin.read())
    private = verdict.private_verdicts()  # before any student code: see verdict.py
    send = private.sender(int(argv[0]), job.pop("nonce"))
    try:
        limits.apply(job["limits"], job["workdir"])
        import torch

        torch.set_num_threads(int(job["limits"].get("threads", 1)))
        # loaded before the guard's first snapshot: what the checks import lazily (torchvision, which
        # dnnl.data imports when MNIST is loaded, imports torch._dynamo, which wraps torch.manual_seed)
        import torchvision  # noqa: F401

        import dnnl.data  # noqa: F401
        import dnnl.exercises  # noqa: F401
        import dnnl.models.ddpm  # noqa: F401
        from tqdm import tqdm

        tqdm.monitor_interval = 0  # no monitor thread: a new thread is a sign of tampering
    except Exception as err:  # noqa: BLE001 -- an environment error, reported as one
        send("env_error", message=f"the grading process could not start: {type(err).__name__}: {err}")
        return 3
    ns = _preamble(job, send)
    if ns is None:
        return 3
    (private.run if job["mode"] == "verdict" else run_feedback)(job, ns, send)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
