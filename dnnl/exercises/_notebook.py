"""Run a notebook in a fresh kernel, and the message of an exercise stub.

The book's tooling (``booktools/``, not installed), the benchmarks and the tests run the chapters with
:func:`run_notebook`, so every notebook runs one way. The grader does not run notebooks from the top: it
checks each exercise function in its own process (:mod:`dnnl.exercises.grading`).
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

__all__ = ["STUB_MESSAGE", "run_notebook"]

#: What a generated exercise stub raises when its solution has no ``# HINT:`` line. The checks treat
#: it as "no hint" and print their own.
STUB_MESSAGE = "Replace this line with your solution."


def run_notebook(nb, *, cwd: str | Path, timeout: int = 600, env: dict[str, str] | None = None,
                 kernel_name: str = "python3", allow_errors: bool = False, quiet: bool = False) -> float:
    """Execute ``nb`` (an ``nbformat`` node, changed in place) from the top in a fresh kernel.

    ``cwd`` is the kernel's working folder, ``timeout`` the limit per cell in seconds, ``env`` extra
    environment variables on top of this process's, and ``quiet=True`` drops the kernel's own log lines.
    Returns the seconds it took. Raises nbclient's ``CellExecutionError`` (unless ``allow_errors``),
    ``CellTimeoutError`` or ``DeadKernelError``.
    """
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name, allow_errors=allow_errors,
                            resources={"metadata": {"path": str(cwd)}})
    kwargs = {"env": dict(os.environ, **(env or {}))}
    if quiet:
        kwargs["stderr"] = subprocess.DEVNULL
    start = time.perf_counter()
    client.execute(**kwargs)
    return time.perf_counter() - start
