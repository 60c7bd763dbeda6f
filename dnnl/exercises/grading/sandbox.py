"""Start a grading process, feed it one job, and watch it: per-cell and per-notebook time limits.

The process runs in its own session (so its whole process group, with any children the student's code
started, is killed at the end or on a timeout), in the submission's own temporary folder, with an
environment that holds only what grading needs. It reports over a pipe; a line without this run's
nonce is not the grader's and is ignored (and noted).
"""
from __future__ import annotations

import json
import os
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

STARTUP_SECONDS = 180  # importing torch on a busy machine; not counted against the student
_PASSED_ENV = ("PATH", "DNNL_DATA", "LANG", "LC_ALL", "SYSTEMROOT")


class GraderEnvironmentError(RuntimeError):
    """Grading cannot work here (the package, torch or the data is missing): not a student's failure."""


@dataclass
class Outcome:
    """What one grading process reported before it ended."""

    results: dict[int, dict] = field(default_factory=dict)
    ended: str = "done"          # done | cell-timeout | notebook-timeout | crash
    at: int | None = None        # the index being run when it ended early
    detail: str = ""
    forged: int = 0              # lines on the channel without the nonce
    seconds: float = 0.0


def _python_path() -> str | None:
    """The folder to put on PYTHONPATH when dnnl is not installed (None when it is)."""
    import dnnl

    root = str(Path(dnnl.__file__).resolve().parent.parent)
    probe = subprocess.run([sys.executable, "-I", "-c", "import dnnl"], capture_output=True, timeout=120,
                           cwd=tempfile.gettempdir(), env={"PATH": os.environ.get("PATH", "")})
    return None if probe.returncode == 0 else root


_PYTHONPATH: list = []


def child_command(fd: int) -> tuple[list[str], dict]:
    if not _PYTHONPATH:
        _PYTHONPATH.append(_python_path())
    path = _PYTHONPATH[0]
    flags = ["-I"] if path is None else ["-s", "-E"]
    extra = {} if path is None else {"PYTHONPATH": path}
    return [sys.executable, *flags, "-m", "dnnl.exercises.grading.child", str(fd)], extra


def child_env(workdir: str, threads: int, hints: str) -> dict:
    env = {k: os.environ[k] for k in _PASSED_ENV if os.environ.get(k)}
    env.update(HOME=workdir, TMPDIR=workdir, MPLCONFIGDIR=str(Path(workdir) / ".matplotlib"),
               MPLBACKEND="Agg", DNNL_MODE="quick", DNNL_OUT=str(Path(workdir) / "out"), PYTHONHASHSEED="0",
               DNNL_HINTS=hints, PYTHONDONTWRITEBYTECODE="1")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TORCH_NUM_THREADS"):
        env[var] = str(threads)
    return env


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


class _Watch:
    def __init__(self, cell_seconds: float, notebook_left: float):
        self.cell_seconds, self.notebook_left = cell_seconds, notebook_left
        self.started = self.cell_start = None
        self.current: int | None = None

    def timeout(self) -> float:
        now = time.monotonic()
        if self.started is None:
            return STARTUP_SECONDS - (now - self.spawned)
        left = self.notebook_left - (now - self.started)
        if self.current is not None:
            left = min(left, self.cell_seconds - (now - self.cell_start))
        return left

    def which(self) -> str:
        if self.started is None:
            return "startup"
        now = time.monotonic()
        if self.current is not None and now - self.cell_start >= self.cell_seconds - 0.05:
            return "cell-timeout"
        return "notebook-timeout"


def _handle(msg: dict, out: Outcome, watch: _Watch) -> bool:
    """Record one message; True when the process said it is done."""
    kind = msg.get("type")
    if kind == "ready":
        watch.started = time.monotonic()
    elif kind == "begin":
        watch.current, watch.cell_start = int(msg["index"]), time.monotonic()
    elif kind == "result":
        out.results[int(msg["index"])] = msg
        watch.current = None
    elif kind == "env_error":
        raise GraderEnvironmentError(msg.get("message", "the grading process could not start"))
    return kind == "done"


def run_job(job: dict, *, workdir: str, threads: int, hints: str, cell_seconds: float,
            notebook_seconds: float) -> Outcome:
    """Run ``job`` in a fresh grading process; see :class:`Outcome`."""
    nonce = secrets.token_hex(16)
    read_fd, write_fd = os.pipe()
    cmd, extra = child_command(write_fd)
    env = {**child_env(workdir, threads, hints), **extra}
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=(write_fd,),
                            cwd=workdir, env=env, start_new_session=True)
    os.close(write_fd)
    out, watch = Outcome(), _Watch(cell_seconds, notebook_seconds)
    watch.spawned = time.monotonic()
    try:
        proc.stdin.write(json.dumps({**job, "nonce": nonce, "workdir": workdir}).encode())
        proc.stdin.close()
        _read(read_fd, nonce, out, watch, proc, log)
    finally:
        os.close(read_fd)
        _kill(proc)
        log.close()
    out.seconds = time.monotonic() - (watch.started or watch.spawned)
    return out


def _read(fd: int, nonce: str, out: Outcome, watch: _Watch, proc, log) -> None:
    buf = b""
    while True:
        left = watch.timeout()
        ready = select.select([fd], [], [], max(left, 0))[0] if left > 0 else []
        if not ready:
            kind = watch.which()
            if kind == "startup":
                raise GraderEnvironmentError(f"the grading process did not start within {STARTUP_SECONDS} s")
            out.ended, out.at = kind, watch.current
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if not isinstance(msg, dict) or msg.get("nonce") != nonce:
                out.forged += 1
                continue
            if _handle(msg, out, watch):
                return
    _died(proc, out, watch, log)


def _died(proc, out: Outcome, watch: _Watch, log) -> None:
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        code = None
    if watch.started is None:
        log.seek(0)
        tail = log.read()[-3000:].decode("utf-8", "replace").strip()
        raise GraderEnvironmentError(f"the grading process stopped before it was ready (exit code {code})"
                                     + (f":\n{tail}" if tail else ""))
    out.ended, out.at = "crash", watch.current
    out.detail = (f"killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
                  else f"exit code {code}")
