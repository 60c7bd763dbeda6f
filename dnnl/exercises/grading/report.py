"""What the teacher gets: grades.csv, grades.json, a feedback page and an executed notebook per student."""
from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path

from .runner import SubmissionResult

SYMBOLS = {"PASS": "✅", "FAIL": "❌", "TODO": "⏳", "ERROR": "⚠️", "MISSING": "➖", "TIMEOUT": "⏱",
           "CRASH": "💥"}
WORDS = {"PASS": "passed", "FAIL": "failed", "TODO": "not implemented", "ERROR": "the check could not run",
         "MISSING": "missing", "TIMEOUT": "time limit", "CRASH": "the grading process died"}


def _num(x: float) -> str:
    return f"{x:g}"


def columns(manifest: dict) -> list[tuple[int, str]]:
    """(chapter, check) in manifest order: one grades.csv column each."""
    return [(nb.get("chapter"), ex["check"]) for nb in manifest["notebooks"] for ex in nb["exercises"]]


def by_student(results: list[SubmissionResult]) -> dict[str, list[SubmissionResult]]:
    out: dict[str, list[SubmissionResult]] = defaultdict(list)
    for r in results:
        out[r.student].append(r)
    return dict(sorted(out.items()))


def _row(manifest: dict, subs: list[SubmissionResult]) -> dict:
    got = {e.check: e for s in subs for e in s.exercises}
    row, chapters, total = {}, defaultdict(float), 0.0
    for chapter, check in columns(manifest):
        points = got[check].points if check in got else 0.0
        row[check] = points
        chapters[chapter] += points
        total += points
    for chapter in sorted({c for c, _ in columns(manifest)}, key=str):
        row[f"chapter_{chapter}"] = chapters[chapter]
    row["total"] = total
    return row


def max_row(manifest: dict) -> dict:
    row, chapters = {}, defaultdict(float)
    for nb in manifest["notebooks"]:
        for ex in nb["exercises"]:
            row[ex["check"]] = float(ex["points"])
            chapters[nb.get("chapter")] += float(ex["points"])
    for chapter in sorted(chapters, key=str):
        row[f"chapter_{chapter}"] = chapters[chapter]
    row["total"] = sum(chapters.values())
    return row


def write_csv(manifest: dict, results: list[SubmissionResult], path: Path) -> None:
    """One row per student: points per check, per chapter, the total; then the notebooks graded."""
    top = max_row(manifest)
    head = ["student"] + list(top) + ["notebooks", "errors"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        w.writerow(["(max)"] + [_num(v) for v in top.values()] + ["", ""])
        for student, subs in by_student(results).items():
            row = _row(manifest, subs)
            w.writerow([student] + [_num(row[k]) for k in top] + [";".join(s.path for s in subs),
                                                                  "; ".join(s.error for s in subs if s.error)])


def to_json(manifest: dict, results: list[SubmissionResult]) -> dict:
    students = {}
    for student, subs in by_student(results).items():
        students[student] = {
            **{k: v for k, v in _row(manifest, subs).items() if k.startswith("chapter_") or k == "total"},
            "submissions": [{"path": s.path, "notebook": s.notebook, "chapter": s.chapter, "error": s.error,
                             "notes": s.notes, "points": s.points, "max_points": s.max_points,
                             "seconds": round(s.seconds, 2),
                             "checks": [{"check": e.check, "function": e.function, "status": e.status,
                                         "points": e.points, "max_points": e.max_points, "cell": e.cell,
                                         "message": e.message} for e in s.exercises]} for s in subs]}
    return {"max": max_row(manifest), "students": students}


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "student"


def feedback_markdown(sub: SubmissionResult) -> str:
    lines = [f"# Feedback: {sub.notebook or sub.path}", "", f"Student: {sub.student}  ", f"File: `{sub.path}`  ",
             f"Score: {_num(sub.points)} / {_num(sub.max_points)}", ""]
    if sub.error:
        lines += [f"**Not graded:** {sub.error}", ""]
    for e in sub.exercises:
        where = f", code cell {e.cell}" if e.cell else ""
        lines += [f"## {SYMBOLS.get(e.status, '')} `{e.check}`: {WORDS.get(e.status, e.status)} "
                  f"({_num(e.points)} / {_num(e.max_points)}{where})", "", "```text", e.message.strip(), "```", ""]
    if sub.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in sub.notes] + [""]
    return "\n".join(lines)


def executed_notebook(sub: SubmissionResult, preamble: str):
    """The cells the exercises need, with the outputs they printed in the grader's run."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_markdown_cell(
        f"Run by the grader: the notebook's imports, then only the exercise and check cells "
        f"(numbered as code cells of `{sub.path}`)."))
    nb.cells.append(nbformat.v4.new_code_cell(preamble))
    for cell in sub.executed or []:
        code = nbformat.v4.new_code_cell(cell["source"])
        code.metadata["dnnl_code_cell"] = cell["number"]
        code.outputs = [nbformat.from_dict(o) for o in cell.get("outputs", [])]
        nb.cells.append(nbformat.v4.new_markdown_cell(f"**Code cell {cell['number']}**"))
        nb.cells.append(code)
    return nb


def write_outputs(manifest: dict, results: list[SubmissionResult], out: Path) -> None:
    """grades.csv, grades.json, and feedback/<student>/<notebook>.md and .ipynb under ``out``."""
    import nbformat

    out.mkdir(parents=True, exist_ok=True)
    write_csv(manifest, results, out / "grades.csv")
    (out / "grades.json").write_text(json.dumps(to_json(manifest, results), indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    pre = {nb["name"]: nb["preamble"] for nb in manifest["notebooks"]}
    for sub in results:
        folder = out / "feedback" / safe_name(sub.student)
        folder.mkdir(parents=True, exist_ok=True)
        stem = Path(sub.notebook or sub.path).stem
        (folder / f"{stem}.md").write_text(feedback_markdown(sub), encoding="utf-8")
        if sub.executed:
            nbformat.write(executed_notebook(sub, pre.get(sub.notebook, "")), folder / f"{stem}.ipynb")


def format_table(manifest: dict, results: list[SubmissionResult]) -> str:
    """A plain-text summary: one row per student, one column per check, then points."""
    cols = [c for _, c in columns(manifest) if any(e.check == c for r in results for e in r.exercises)]
    head = ["student"] + [c.removeprefix("check_") for c in cols] + ["points"]
    rows = []
    for student, subs in by_student(results).items():
        got = {e.check: e for s in subs for e in s.exercises}
        pts, top = sum(s.points for s in subs), sum(s.max_points for s in subs)
        rows.append([student] + [SYMBOLS.get(got[c].status, "?") if c in got else "" for c in cols]
                    + [f"{_num(pts)}/{_num(top)}"])

    def width(s: str) -> int:  # emoji take two columns in a terminal
        return sum(2 if ord(ch) > 0x2000 else 0 if ch == "\ufe0f" else 1 for ch in s)

    widths = [max(width(r[i]) for r in [head] + rows) for i in range(len(head))]
    fmt = lambda r: " | ".join(c + " " * (w - width(c)) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    lines = [fmt(head), "-+-".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    lines += ["", "  ".join(f"{s} {WORDS[k]}" for k, s in SYMBOLS.items())]
    lines += [f"{r.student} ({r.path}): {r.error}" for r in results if r.error]
    return "\n".join(lines)
