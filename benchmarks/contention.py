"""Several kernels on few cores: N copies of a chapter executed at once, against one copy alone.

    python benchmarks/contention.py                      # chapter 4, quick mode, 4 copies, both thread policies
    python benchmarks/contention.py --copies 2 --cap-s 600
    python benchmarks/contention.py --smoke              # a tiny notebook, 2 copies: proves the script runs

Each copy is a fresh Jupyter kernel that executes the chapter's solutions notebook (built from its .qmd
as the notebooks are), in quick mode, from the repository root, with its own DNNL_OUT, the way
tests/test_notebooks_execute.py runs it. Every copy gets the environment a reader's kernel has: this
process's, without OMP_NUM_THREADS and MKL_NUM_THREADS. Two thread policies are measured:

- ``dnnl``: what ``import dnnl`` does (dnnl/_threads.py): one torch thread per free CPU, and
  OMP_WAIT_POLICY=PASSIVE only where that leaves CPUs to other work (fewer threads than CPUs);
- ``torch``: ``DNNL_THREADS=torch`` and OMP_WAIT_POLICY removed, i.e. torch's own defaults (one spinning
  OpenMP thread per core in every kernel), as before dnnl chose threads.

For each policy: one copy alone on the idle machine (its time is the single-run time), then N copies
started together (their wall time runs until the last one finishes). The ideal for N copies is N × the
shorter of the single-run times; the goal is N copies within 1.3× of it. A run still going after
``--cap-s`` seconds is stopped (its kernels killed) and reported as not finished; its ratio is then a
lower bound. A copy that fails (a cell raises) stops the script with its error. Run it on an
otherwise idle machine: anything else running makes every number worse.

Writes benchmarks/results/contention.json (not with --smoke).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# a reader's kernel: no thread counts forced from outside (read before anything imports torch here)
READER_ENV = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
REPO = Path(__file__).resolve().parents[1]
POLICIES = {"dnnl": {"DNNL_THREADS": "auto"}, "torch": {"DNNL_THREADS": "torch"}}
GOAL = 1.3
SMOKE_CELLS = ["import dnnl\n\nprint(dnnl.runtime_info())",
               "import torch\n\nx = torch.randn(192, 192)\nfor _ in range(200):\n    x = torch.tanh(x @ x)"]
_THREADS = re.compile(r"torch threads \d+ \([^\n]*\)")


# --------------------------------------------------------------------------- one copy (a child process)

def _notebook(source: str):
    """The solutions notebook of a chapter .qmd, or the smoke notebook for 'smoke'."""
    import nbformat

    if source == "smoke":
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in SMOKE_CELLS])
    sys.path.insert(0, str(REPO))
    from booktools import chapter_notebook

    path = REPO / source
    return chapter_notebook(path.read_text(encoding="utf-8"), path.stem, solutions=True)


def _outputs_text(cells) -> str:
    return "".join(out.get("text", "") for cell in cells if cell.cell_type == "code" for out in cell.get("outputs", []))


def run_one(source: str, record: Path, timeout: int) -> int:
    """Execute one copy in a fresh kernel; write {"ok", "seconds", "threads", "error"} to ``record``."""
    from nbclient import NotebookClient

    nb = _notebook(source)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(REPO)}})
    pid_file = record.with_suffix(".pid")  # so that the parent can stop this copy's kernel at the cap
    client.on_notebook_start = lambda **_: pid_file.write_text(str(client.km.provisioner.pid))
    first_line = record.with_suffix(".threads")  # written as soon as it is printed: a stopped copy has it too

    def note_threads(cell, **_):
        found = None if first_line.exists() else _THREADS.search(_outputs_text([cell]))
        if found:
            first_line.write_text(found.group(0), encoding="utf-8")

    client.on_cell_executed = note_threads
    start, error = time.perf_counter(), None
    try:
        client.execute(env=dict(os.environ))
    except Exception as err:  # noqa: BLE001 - the record says what went wrong
        error = f"{type(err).__name__}: {str(err)[-500:]}"
    seconds = time.perf_counter() - start
    threads = _THREADS.search(_outputs_text(nb.cells))
    with open(record, "w", encoding="utf-8") as f:  # a note for the parent, not a result
        json.dump({"ok": error is None, "seconds": round(seconds, 1), "error": error,
                   "threads": threads.group(0) if threads else None}, f)
    return 0 if error is None else 1


# --------------------------------------------------------------------------- N copies at once

def _stop(proc: subprocess.Popen, pid_file: Path) -> None:
    """Kill a copy's kernel (it runs in a session of its own), then the copy."""
    try:
        os.killpg(int(pid_file.read_text()), signal.SIGKILL)
    except (OSError, ValueError):
        pass
    proc.kill()
    proc.wait()


def run_copies(source: str, n: int, policy: str, cap_s: float, work: Path) -> dict:
    """Start ``n`` copies together under ``policy``; wait for all, or stop them at ``cap_s`` seconds."""
    env = {**READER_ENV, **POLICIES[policy], "DNNL_MODE": "quick", "MPLBACKEND": "Agg"}
    if policy == "torch":  # torch's defaults: libgomp's own wait policy too
        env.pop("OMP_WAIT_POLICY", None)
    runs = []
    start = time.perf_counter()
    for i in range(n):
        record = work / f"{policy}-{n}-{i}.json"
        copy_env = {**env, "DNNL_OUT": str(work / f"out-{policy}-{n}-{i}")}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", source, "--record", str(record),
               "--timeout", str(int(cap_s) + 60)]
        runs.append((subprocess.Popen(cmd, cwd=REPO, env=copy_env), record))
    ends: dict[int, float] = {}
    try:
        while len(ends) < n and time.perf_counter() - start < cap_s:
            for i, (proc, _) in enumerate(runs):
                if i not in ends and proc.poll() is not None:
                    ends[i] = time.perf_counter() - start
            time.sleep(0.2)
    finally:
        for i, (proc, record) in enumerate(runs):
            if i not in ends:
                _stop(proc, record.with_suffix(".pid"))
    copies = []
    for i, (proc, record) in enumerate(runs):
        if i not in ends:
            first_line = record.with_suffix(".threads")
            copies.append({"ok": False, "wall_s": None, "error": f"still running after {cap_s:g} s; stopped",
                           "threads": first_line.read_text(encoding="utf-8") if first_line.is_file() else None})
            continue
        done = json.loads(record.read_text()) if record.is_file() else {"ok": False, "error": "no record written"}
        if not done["ok"]:
            raise RuntimeError(f"copy {i} ({policy}) failed: {done.get('error')}")
        copies.append({"ok": True, "wall_s": round(ends[i], 1), "threads": done["threads"], "error": None})
    finished = len(ends) == n
    return {"copies": copies, "wall_s": round(max(ends.values()), 1) if finished else None,
            "stopped_after_s": None if finished else cap_s}


# --------------------------------------------------------------------------- the comparison

def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", default="book/04-training.qmd", help="the chapter .qmd to execute")
    parser.add_argument("--copies", type=int, default=4, help="copies executed at once")
    parser.add_argument("--policies", default="dnnl,torch", help="comma-separated, from: " + ", ".join(POLICIES))
    parser.add_argument("--concurrent", default=None, help="the policies that also run N copies at once "
                        "(default: all of --policies; the others only run alone)")
    parser.add_argument("--cap-s", type=float, default=1800, help="stop a concurrent run after this long")
    parser.add_argument("--result", default="contention.json", help="file name in benchmarks/results/")
    parser.add_argument("--smoke", action="store_true", help="a tiny notebook, 2 copies; writes nothing")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: execute one copy
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=int, default=3600, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        sys.exit(run_one(args.one, args.record, args.timeout))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed run still stops its copies' kernels
    policies = [p.strip() for p in args.policies.split(",")]
    concurrent = policies if args.concurrent is None else [p.strip() for p in args.concurrent.split(",")]
    if not policies or any(p not in POLICIES for p in policies) or args.copies < 1 or set(concurrent) - set(policies):
        parser.error(f"--policies must name some of {', '.join(POLICIES)}, --concurrent some of those, "
                     "and --copies must be >= 1")
    source = "smoke" if args.smoke else args.chapter
    copies = 2 if args.smoke else args.copies

    result = {"chapter": source, "copies": copies, "mode": "quick", "cpus_usable": len(os.sched_getaffinity(0))
              if hasattr(os, "sched_getaffinity") else os.cpu_count(),
              "goal": f"{copies} copies at once within {GOAL:g} x the ideal ({copies} x the single-run time)"}
    rows = {}
    with tempfile.TemporaryDirectory(prefix="dnnl-contention-") as work:
        for policy in policies:  # every single run first: the machine is idle for each
            single = run_copies(source, 1, policy, args.cap_s, Path(work))
            rows[policy] = {"single_s": single["wall_s"], "single_threads": single["copies"][0]["threads"],
                            "single_error": single["copies"][0]["error"]}
            print(f"{policy}: one copy alone took {single['wall_s']} s ({single['copies'][0]['threads']})", flush=True)
        for policy in concurrent:
            together = run_copies(source, copies, policy, args.cap_s, Path(work))
            rows[policy]["concurrent"] = together
            print(f"{policy}: {copies} copies at once took {together['wall_s'] or f'> {args.cap_s:g}'} s", flush=True)
    singles = [r["single_s"] for r in rows.values() if r["single_s"] is not None]
    ideal = copies * min(singles) if singles else None
    for row in rows.values():
        if "concurrent" not in row:
            continue
        wall = row["concurrent"]["wall_s"]
        bound = wall if wall is not None else row["concurrent"]["stopped_after_s"]
        row["ratio_to_ideal"] = round(bound / ideal, 2) if ideal else None
        row["ratio_is_lower_bound"] = wall is None
        row["slowdown_vs_alone"] = round(bound / (copies * row["single_s"]), 2) if row["single_s"] else None
    result.update({"ideal_s": round(ideal, 1) if ideal else None, "policies": rows})
    if "dnnl" in rows:
        ratio = rows["dnnl"].get("ratio_to_ideal")
        result["goal_met"] = bool(ratio is not None and not rows["dnnl"]["ratio_is_lower_bound"] and ratio <= GOAL)
    if {"dnnl", "torch"} <= set(rows) and rows["torch"]["single_s"] and rows["dnnl"]["single_s"]:
        result["single_dnnl_over_torch"] = round(rows["dnnl"]["single_s"] / rows["torch"]["single_s"], 3)
    os.environ.clear()
    os.environ.update(READER_ENV)  # the machine line then shows the threads a reader's process gets
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _machine import provenance, save_result  # imports torch (and dnnl) only now, after the copies ran

    command = " ".join(["python benchmarks/contention.py"] + [a for a in (argv if argv is not None else sys.argv[1:])])
    result.update({"smoke": args.smoke, **provenance(), "command": command})
    return save_result(args.result, result, write=not args.smoke)


if __name__ == "__main__":
    main()
