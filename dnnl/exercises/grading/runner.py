"""Grade one submitted notebook against its manifest entry: verdicts first, then the feedback notebook."""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .extract import Definition, find_definition
from .manifest import code_cells
from .sandbox import Outcome, run_job


@dataclass
class ExerciseResult:
    check: str
    function: str
    status: str
    message: str
    points: float
    max_points: float
    cell: int | None = None
    seconds: float = 0.0


@dataclass
class SubmissionResult:
    student: str
    path: str
    notebook: str | None
    chapter: int | None
    exercises: list[ExerciseResult] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    executed: object = None  # the feedback notebook (an nbformat node), or None

    @property
    def points(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def max_points(self) -> float:
        return sum(e.max_points for e in self.exercises)


def _score(ex: dict, status: str) -> float:
    return float(ex["points"]) * float(ex["credit"].get(status, 0.0))


def _result(ex: dict, status: str, message: str, cell: int | None, seconds: float = 0.0) -> ExerciseResult:
    return ExerciseResult(ex["check"], ex["function"], status, message, _score(ex, status), float(ex["points"]),
                          cell, seconds)


def _early_message(outcome: Outcome, ex: dict, cell: int | None, limits: dict) -> tuple[str, str]:
    where = f"code cell {cell}" if cell else "the submission"
    if outcome.ended == "cell-timeout":
        return "TIMEOUT", (f"⏱ {ex['check']}: stopped after {limits['cell_seconds']} s, the time limit for one "
                           f"exercise (defining and checking `{ex['function']}` from {where}).")
    if outcome.ended == "notebook-timeout":
        return "TIMEOUT", (f"⏱ {ex['check']}: stopped when the notebook reached its time limit of "
                           f"{limits['notebook_seconds']} s (while checking `{ex['function']}` from {where}).")
    return "CRASH", (f"💥 {ex['check']}: the grading process died while it ran `{ex['function']}` from {where} "
                     f"({outcome.detail}; for example os._exit, a crash in native code, or the memory limit "
                     f"of {limits['memory_mb']} MB).")


def _verdicts(todo: list[tuple[int, dict, Definition]], preamble: str, workdir: str, limits: dict,
              threads: int, hints: str, notes: list[str]) -> dict[int, ExerciseResult]:
    """Run the exercises in fresh grading processes, one more after each timeout, crash or tampering."""
    results: dict[int, ExerciseResult] = {}
    left = float(limits["notebook_seconds"])
    pending = list(todo)
    while pending:
        job = {"mode": "verdict", "limits": {**limits, "threads": threads}, "preamble": preamble,
               "exercises": [{"index": i, "check": ex["check"], "function": ex["function"], "hints": ex["hints"],
                              "cell": d.cell, "source": d.source} for i, ex, d in pending]}
        outcome = run_job(job, workdir=workdir, threads=threads, hints=hints,
                          cell_seconds=float(limits["cell_seconds"]), notebook_seconds=left)
        left -= outcome.seconds
        if outcome.forged:
            notes.append(f"{outcome.forged} line(s) on the grader's report channel did not carry this run's code "
                         "and were ignored: the submission wrote to it.")
        for i, ex, d in pending:
            msg = outcome.results.get(i)
            if msg is not None:
                results[i] = _result(ex, msg["status"], msg["message"], d.cell, msg.get("seconds", 0.0))
        progressed = len(pending)
        pending = [p for p in pending if p[0] not in results]
        if outcome.ended == "done" and len(pending) == progressed:  # stopped without a word: a crash
            outcome.ended, outcome.at, outcome.detail = "crash", pending[0][0], "no verdict came back"
        if outcome.ended != "done" and pending:
            i, ex, d = next((p for p in pending if p[0] == outcome.at), pending[0])
            status, message = _early_message(outcome, ex, d.cell, limits)
            if outcome.ended == "notebook-timeout" or left <= 0:
                for j, exj, dj in pending:
                    results[j] = _result(exj, "TIMEOUT", message if j == i else (
                        f"⏱ {exj['check']}: not graded: the notebook reached its time limit of "
                        f"{limits['notebook_seconds']} s before this exercise."), dj.cell)
                return results
            results[i] = _result(ex, status, message, d.cell)
            pending = [p for p in pending if p[0] != i]
        elif outcome.ended == "done" and pending:  # tampering stopped the process: go on in a fresh one
            continue
    return results


def _missing(ex: dict, d: Definition) -> ExerciseResult:
    if d.cell is None:
        return _result(ex, "MISSING", f"➖ {ex['check']}: missing: no code cell defines `{ex['function']}`, "
                                      f"the function this check grades.", None)
    return _result(ex, "FAIL", f"❌ {ex['check']}: code cell {d.cell}, which defines `{ex['function']}`, has "
                               f"{d.problem}.", d.cell)


def grade_cells(cells: list[str], entry: dict, limits: dict, *, threads: int = 1, hints: str = "terse",
                feedback: bool = True) -> tuple[list[ExerciseResult], list, list[str]]:
    """(results in manifest order, the feedback notebook's cells, notes) for one submission's code cells."""
    defs = [find_definition(cells, ex["function"], ex["check"]) for ex in entry["exercises"]]
    results: dict[int, ExerciseResult] = {}
    todo = []
    for i, (ex, d) in enumerate(zip(entry["exercises"], defs)):
        if d.cell is None or d.problem:
            results[i] = _missing(ex, d)
        else:
            todo.append((i, ex, d))
    notes = [f"{ex['check']}: the check cell `{ex['check']}({ex['function']})` is not in the notebook; the "
             f"function was graded all the same." for ex, d in zip(entry["exercises"], defs)
             if d.cell is not None and d.check_cell is None]
    workdir = tempfile.mkdtemp(prefix="dnnl-grade-")
    try:
        if todo:
            results.update(_verdicts(todo, entry["preamble"], workdir, limits, threads, hints, notes))
        executed = _feedback(entry, defs, workdir, limits, threads, hints) if feedback else []
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return [results[i] for i in range(len(entry["exercises"]))], executed, notes


def _feedback_cells(entry: dict, defs: list[Definition]) -> list[dict]:
    cells, seen = [], set()
    for ex, d in zip(entry["exercises"], defs):
        if d.cell is not None and d.cell not in seen:
            cells.append({"number": d.cell, "source": d.full_source})
            seen.add(d.cell)
        if d.check_cell is not None and d.check_cell not in seen:
            cells.append({"number": d.check_cell, "source": d.check_source})
            seen.add(d.check_cell)
    return [{**c, "index": k} for k, c in enumerate(cells)]


def _feedback(entry: dict, defs: list[Definition], workdir: str, limits: dict, threads: int,
              hints: str) -> list[dict]:
    """The exercise and check cells with the outputs they printed when run after the preamble."""
    cells = _feedback_cells(entry, defs)
    if not cells:
        return []
    job = {"mode": "feedback", "limits": {**limits, "threads": threads}, "preamble": entry["preamble"],
           "cells": cells}
    outcome = run_job(job, workdir=workdir, threads=threads, hints=hints,
                      cell_seconds=float(limits["cell_seconds"]), notebook_seconds=float(limits["notebook_seconds"]))
    for cell in cells:
        msg = outcome.results.get(cell["index"])
        if msg is not None:
            cell["outputs"] = msg["outputs"]
        elif outcome.at == cell["index"]:
            what = {"cell-timeout": f"stopped after the per-cell limit of {limits['cell_seconds']} s",
                    "notebook-timeout": f"stopped at the notebook limit of {limits['notebook_seconds']} s",
                    }.get(outcome.ended, f"the process running it died ({outcome.detail})")
            cell["outputs"] = [{"output_type": "error", "ename": "GradingLimit", "evalue": what,
                                "traceback": [f"code cell {cell['number']}: {what}"]}]
        else:
            cell["outputs"] = []
    return cells


def grade_submission(path: Path, student: str, rel: str, entry: dict | None, limits: dict, *,
                     threads: int = 1, hints: str = "terse", feedback: bool = True) -> SubmissionResult:
    """Grade the notebook at ``path`` for ``student`` against manifest ``entry`` (None: not a known notebook)."""
    import nbformat

    start = time.perf_counter()
    result = SubmissionResult(student, rel, entry["name"] if entry else None, entry.get("chapter") if entry else None)
    try:
        nb = nbformat.read(path, as_version=4)
        cells = code_cells(nb)
    except Exception as err:  # noqa: BLE001 -- not a notebook: every exercise is missing
        cells, result.error = [], f"could not read the notebook ({type(err).__name__}: {err})"
    if entry is None:
        result.error = result.error or "no notebook of the manifest matches this file"
        return result
    result.exercises, result.executed, result.notes = grade_cells(
        cells, entry, limits, threads=threads, hints=hints, feedback=feedback)
    result.seconds = time.perf_counter() - start
    return result
