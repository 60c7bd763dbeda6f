"""Before grading: is this machine able to grade at all? Problems here are the grader's, never a student's."""
from __future__ import annotations

import os
import tempfile

from .sandbox import GraderEnvironmentError, run_job


def _data_problem() -> str | None:
    from dnnl.data import MNIST_FILES, data_root

    root = data_root()
    raw = root / "MNIST" / "raw"
    missing = [f for f in MNIST_FILES if not (raw / f).is_file()]
    if not missing:
        return None
    where = "DNNL_DATA" if os.environ.get("DNNL_DATA", "").strip() else "DNNL_DATA is not set, so the default"
    return (f"the manifest needs MNIST, but {where} folder {raw} lacks {', '.join(missing)}. Set DNNL_DATA to a "
            "folder that holds MNIST/raw/ before grading.")


def preflight(manifest: dict, *, threads: int = 1) -> list[str]:
    """The problems found (empty: ready). Checks the package, the data, and that a grading process starts."""
    problems = []
    try:
        from ..checks import evaluate, list_checks  # noqa: F401
    except Exception as err:  # noqa: BLE001
        return [f"the checks cannot be imported: {type(err).__name__}: {err}"]
    if any(nb.get("needs_data") for nb in manifest["notebooks"]):
        problem = _data_problem()
        if problem:
            problems.append(problem)
    preambles = {nb["preamble"] for nb in manifest["notebooks"]}
    with tempfile.TemporaryDirectory(prefix="dnnl-preflight-") as tmp:
        job = {"mode": "verdict", "limits": {**manifest["limits"], "threads": threads},
               "preamble": "\n".join(sorted(preambles)), "exercises": []}
        try:
            out = run_job(job, workdir=tmp, threads=threads, hints="terse", cell_seconds=60, notebook_seconds=120)
            if out.ended != "done":
                problems.append(f"a grading process started but did not finish an empty job ({out.ended} "
                                f"{out.detail}); is the memory limit ({manifest['limits']['memory_mb']} MB) "
                                "too small for torch?")
        except GraderEnvironmentError as err:
            problems.append(f"a grading process could not start: {err}")
    return problems


def require(manifest: dict, *, threads: int = 1) -> None:
    """Raise :class:`GraderEnvironmentError` listing every problem :func:`preflight` finds."""
    problems = preflight(manifest, threads=threads)
    if problems:
        raise GraderEnvironmentError("grading cannot run here:\n" + "\n".join(f"  - {p}" for p in problems))
