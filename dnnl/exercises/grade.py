"""Grade a folder of submitted notebooks: run each one and tabulate its exercise checks.

    python -m dnnl.exercises.grade SUBMISSIONS_DIR [--timeout S] [--csv out.csv] [--mode quick|full]

Every ``*.ipynb`` under the folder is executed from the top in a fresh kernel (quick mode, Agg backend,
a temporary working folder and ``DNNL_OUT``), and the verdict line each ``check_<name>`` prints is read
back from the outputs. A notebook that stops early gets "not run" for the checks after the failing cell.
The exit code is 0 whenever grading itself worked, whatever the students scored.
"""
from __future__ import annotations

import argparse
import csv
import re
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._notebook import run_notebook
from .checks import STATUSES, TOKEN_ENV, list_checks

NOT_RUN = "NOT RUN"
SYMBOLS = {"PASS": "✅", "FAIL": "❌", "TODO": "⏳", "ERROR": "⚠️", NOT_RUN: "–"}
WORDS = {"PASS": "pass", "FAIL": "fail", "TODO": "not implemented", "ERROR": "check error", NOT_RUN: "not run"}
_CALL = re.compile(r"\b(check_[A-Za-z0-9_]+)\s*\(")


@dataclass
class NotebookResult:
    """The graded checks of one notebook: check name -> PASS, FAIL, TODO, ERROR or NOT RUN."""

    name: str
    checks: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        return sum(s == "PASS" for s in self.checks.values())


def find_notebooks(folder: Path) -> list[Path]:
    """Every .ipynb under ``folder``, sorted, skipping Jupyter's checkpoint copies."""
    return sorted(p for p in Path(folder).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def expected_checks(nb) -> list[str]:
    """The known checks a notebook calls, in the order they first appear."""
    known = set(list_checks())
    found: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for name in _CALL.findall(cell.source):
            if name in known and name not in found:
                found.append(name)
    return found


def _output_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out and "text/plain" in out["data"]:
                parts.append(out["data"]["text/plain"])
    return "\n".join(p if isinstance(p, str) else "".join(p) for p in parts)


def parse_verdicts(text: str, token: str | None) -> dict[str, str]:
    """The last verdict of each check in ``text``; with a token, only lines that carry it count."""
    prefix = re.escape(f"[dnnl-check:{token}]" if token else "[dnnl-check]")
    pattern = re.compile(rf"^{prefix} (check_[A-Za-z0-9_]+): ({'|'.join(STATUSES)})\s*$", re.MULTILINE)
    verdicts: dict[str, str] = {}
    for name, status in pattern.findall(text):
        verdicts[name] = status
    return verdicts


def grade_notebook(path: Path, *, timeout: int = 600, mode: str = "quick", kernel_name: str = "python3",
                   name: str | None = None) -> NotebookResult:
    """Execute one notebook in a fresh kernel and read its check verdicts."""
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    result = NotebookResult(name or path.name)
    start = time.perf_counter()
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # not a notebook: grade it as nothing run
        result.error = f"could not read the notebook ({type(err).__name__}: {err})"
        return result
    expected = expected_checks(nb)
    token = secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="dnnl-grade-") as tmp:
        env = dict(DNNL_MODE=mode, MPLBACKEND="Agg", DNNL_OUT=str(Path(tmp) / "out"),
                   PYTHONHASHSEED="0", **{TOKEN_ENV: token})
        try:  # quiet: the kernel's own log lines are noise here
            run_notebook(nb, cwd=tmp, timeout=timeout, env=env, kernel_name=kernel_name, quiet=True)
        except CellExecutionError as err:
            result.error = _summarise_cell_error(nb, err)
        except CellTimeoutError:
            result.error = f"a cell ran longer than the {timeout} s limit"
        except DeadKernelError as err:
            result.error = f"the kernel died ({err})"
        except Exception as err:
            result.error = f"could not run the notebook ({type(err).__name__}: {err})"
    verdicts = parse_verdicts(_output_text(nb), token)
    for check in expected + [c for c in verdicts if c not in expected]:
        result.checks[check] = verdicts.get(check, NOT_RUN)
    result.seconds = time.perf_counter() - start
    return result


def _summarise_cell_error(nb, err) -> str:
    index = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and any(
        o.get("output_type") == "error" for o in c.get("outputs", []))), None)
    ename = getattr(err, "ename", None) or type(err).__name__
    evalue = (getattr(err, "evalue", None) or "").strip().splitlines()
    where = f"cell {index + 1}" if index is not None else "a cell"
    return f"stopped at {where}: {ename}" + (f": {evalue[0][:120]}" if evalue else "")


def grade(folder, *, timeout: int = 600, mode: str = "quick", kernel_name: str = "python3",
          progress: bool = False) -> list[NotebookResult]:
    """Grade every notebook under ``folder``; one :class:`NotebookResult` each, in path order."""
    folder = Path(folder)
    results = []
    for path in find_notebooks(folder):
        name = str(path.relative_to(folder))
        if progress:
            print(f"grading {name} …", file=sys.stderr, flush=True)
        res = grade_notebook(path, timeout=timeout, mode=mode, kernel_name=kernel_name, name=name)
        if progress:
            print(f"  {res.passed}/{len(res.checks)} checks passed in {res.seconds:.1f} s", file=sys.stderr)
        results.append(res)
    return results


def _columns(results: list[NotebookResult]) -> list[str]:
    order = list_checks()
    seen = {c for r in results for c in r.checks}
    return [c for c in order if c in seen] + sorted(seen - set(order))


def format_table(results: list[NotebookResult]) -> str:
    """A plain-text table: one row per notebook, one column per check, then totals and notes."""
    cols = _columns(results)
    head = ["notebook"] + [c.removeprefix("check_") for c in cols] + ["passed"]
    rows = []
    for r in results:
        cells = [SYMBOLS[r.checks[c]] if c in r.checks else "" for c in cols]
        rows.append([r.name] + cells + [f"{r.passed}/{len(r.checks)}"])
    totals = []
    for c in cols:
        graded = [r for r in results if c in r.checks]
        totals.append(f"{sum(r.checks[c] == 'PASS' for r in graded)}/{len(graded)}")
    all_checks = sum(len(r.checks) for r in results)
    rows.append(["total"] + totals + [f"{sum(r.passed for r in results)}/{all_checks}"])

    def width(s: str) -> int:  # emoji take two columns in a terminal
        return sum(2 if ord(ch) > 0x2000 and ch not in "–" else 0 if ch == "\ufe0f" else 1 for ch in s)

    widths = [max(width(row[i]) for row in [head] + rows) for i in range(len(head))]

    def line(row):
        return " | ".join(cell + " " * (w - width(cell)) for cell, w in zip(row, widths)).rstrip()

    out = [line(head), "-+-".join("-" * w for w in widths)]
    out += [line(row) for row in rows[:-1]]
    out += ["-+-".join("-" * w for w in widths), line(rows[-1])]
    out.append("")
    out.append("✅ passed   ❌ failed   ⏳ not implemented   ⚠️ the check could not run   – not run "
               "(the notebook stopped before it)")
    notes = [f"{r.name}: {r.error}" for r in results if r.error]
    if notes:
        out.append("")
        out += notes
    return "\n".join(out)


def write_csv(results: list[NotebookResult], path) -> None:
    """One row per notebook: each check's verdict in words, the number passed, and any error."""
    cols = _columns(results)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["notebook"] + cols + ["passed", "checks", "seconds", "error"])
        for r in results:
            writer.writerow([r.name] + [WORDS[r.checks[c]] if c in r.checks else "" for c in cols]
                            + [r.passed, len(r.checks), f"{r.seconds:.1f}", r.error or ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dnnl.exercises.grade", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a folder of submitted .ipynb files (searched recursively)")
    parser.add_argument("--timeout", type=int, default=600, metavar="S",
                        help="time limit per cell, in seconds (default 600)")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="also write the results to this CSV file")
    parser.add_argument("--mode", choices=("quick", "full"), default="quick",
                        help="DNNL_MODE for the runs (default quick)")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    if args.timeout < 1:
        print(f"error: --timeout must be a positive number of seconds (got {args.timeout})", file=sys.stderr)
        return 2
    try:
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError:
        print("error: grading needs nbclient and nbformat: pip install 'dnnl[book]'", file=sys.stderr)
        return 2
    notebooks = find_notebooks(args.folder)
    if not notebooks:
        print(f"error: no .ipynb files under {args.folder}", file=sys.stderr)
        return 1
    results = grade(args.folder, timeout=args.timeout, mode=args.mode, kernel_name=args.kernel, progress=True)
    print(format_table(results))
    if args.csv:
        write_csv(results, args.csv)
        print(f"\nwrote {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
