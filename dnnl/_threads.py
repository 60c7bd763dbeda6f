"""How many threads torch uses: chosen at ``import dnnl``, then kept to the load, so many kernels share few cores.

Left alone, every Python kernel that imports torch starts one OpenMP thread per core, and the threads spin
while they wait for work. One kernel on an idle machine gains from that; four kernels on two cores spend
most of their time spinning against each other. So before torch loads, dnnl

- measures for 0.2 s how busy the CPUs it may use are (other processes' CPU time over that window), and
  gives torch one thread per CPU that other work leaves free, at least one;
- when that leaves CPUs to other work, sets ``OMP_WAIT_POLICY=PASSIVE`` (unless it is set already): a
  waiting thread then sleeps instead of spinning. On an idle machine nothing changes: every CPU, and
  libgomp's own wait policy (passive waiting costs a single kernel time at every parallel region).

The choice is looked at again while a long loop runs: ``train`` and ``sample`` call :func:`rebalance` once a
step, which measures the load of the last 2 s and moves torch to one thread per CPU that other work leaves
free. A kernel that started alone thus gives a CPU back when other kernels start, and takes it again when they
finish. Only a count dnnl chose from the load is moved.

The CPUs this process may use are its affinity set (``os.sched_getaffinity``), capped by a cgroup CPU
quota (a container's ``--cpus``). A CPU counts as taken when other work kept it at least 3/4 busy.

``DNNL_THREADS=N`` (a whole number >= 1) sets the count; ``DNNL_THREADS=torch`` leaves torch's own choice and
the wait policy alone (what torch does without dnnl); ``DNNL_THREADS=auto`` is the default. An explicit
``OMP_NUM_THREADS`` is honoured as torch honours it. :func:`thread_info` says what was chosen and why.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ThreadChoice", "usable_cpus", "busy_cpus", "choose_threads", "rebalance", "thread_info"]

_TAKEN_AT = 0.75  # a CPU at least this busy with other work is not offered to torch
_MIN_WINDOW_S = 0.2  # how long the load is watched before torch loads
_RECHECK_S = 2.0  # how long a running loop watches the load before it looks again


@dataclass(frozen=True)
class ThreadChoice:
    """``threads``: the count given to torch.set_num_threads, or None to leave torch's own; ``reason``: why."""
    threads: int | None
    reason: str


# --------------------------------------------------------------------------- what this process may use

def _cgroup_dir() -> Path:
    """This process's cgroup (v2) folder, or the cgroup root when that cannot be told."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                here = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
                if (here / "cpu.max").is_file():
                    return here
    except OSError:
        pass
    return Path("/sys/fs/cgroup")


def _cgroup_quota(root: Path | None = None) -> float | None:
    """The CPU quota in CPUs (cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), or None when there is none."""
    root = _cgroup_dir() if root is None else root
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        return set(range(os.cpu_count() or 1))


def usable_cpus(affinity: set[int] | None = None, quota: float | None = None) -> int:
    """The CPUs this process may use: its affinity set, capped by the cgroup quota (rounded up), at least 1."""
    n = len(_affinity() if affinity is None else affinity)
    if quota is not None:
        n = min(n, math.ceil(quota))
    return max(1, n)


# --------------------------------------------------------------------------- how busy they are

def _busy_ticks(stat_text: str, cpus: set[int]) -> tuple[int, int]:
    """(busy, total) clock ticks of ``cpus`` in the text of /proc/stat; idle and iowait are not busy."""
    busy = total = 0
    for line in stat_text.splitlines():
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
        total += sum(ticks)
        busy += sum(ticks) - ticks[3] - ticks[4]
    return busy, total


def busy_cpus(used_cpu_s: float, own_cpu_s: float, wall_s: float) -> float:
    """CPUs kept busy by other work during a window: (all CPU time used − this process's) / wall time, >= 0."""
    return max(0.0, (used_cpu_s - own_cpu_s) / wall_s) if wall_s > 0 else 0.0


class _Probe:
    """CPU time used on this process's CPUs (or by its cgroup, under a quota) between start and :meth:`busy`."""

    def __init__(self):
        self.cpus = _affinity()
        self.quota = _cgroup_quota()
        self.usage = (_cgroup_dir() / "cpu.stat") if self.quota is not None else None
        self.start = self._read()

    def _read(self) -> tuple[float, float, float] | None:
        """(wall s, this process's CPU s, CPU s used by all), or None where the OS does not say."""
        try:
            if self.usage is not None:
                fields = dict(line.split() for line in self.usage.read_text().splitlines())
                used = int(fields["usage_usec"]) / 1e6
            else:
                busy, _ = _busy_ticks(Path("/proc/stat").read_text(), self.cpus)
                used = busy / os.sysconf("SC_CLK_TCK")  # CPU seconds on this process's CPUs
        except (OSError, ValueError, KeyError):
            return None
        return time.perf_counter(), time.process_time(), used

    def busy(self) -> float | None:
        """Other work's busy CPUs since the start (waiting until the window is 0.2 s long)."""
        if self.start is None:
            return None
        wait = _MIN_WINDOW_S - (time.perf_counter() - self.start[0])
        if wait > 0:
            time.sleep(wait)
        end = self._read()
        if end is None:
            return None
        return busy_cpus(end[2] - self.start[2], end[1] - self.start[1], end[0] - self.start[0])


# --------------------------------------------------------------------------- the choice

def _requested(environ) -> str:
    """DNNL_THREADS, checked: 'auto', 'torch' or a whole number >= 1 (as text)."""
    raw = environ.get("DNNL_THREADS", "").strip().lower()
    if raw in ("", "auto"):
        return "auto"
    if raw == "torch" or (raw.isdigit() and int(raw) >= 1):
        return raw
    raise ValueError(f"DNNL_THREADS must be a whole number of threads >= 1, 'auto' (the default: one per free "
                     f"CPU) or 'torch' (torch's own choice); got {environ.get('DNNL_THREADS')!r}")


def choose_threads(environ, cpus: int, busy: float | None) -> ThreadChoice:
    """The torch thread count for ``cpus`` usable CPUs of which other work keeps ``busy`` busy (None: unknown).

    ``DNNL_THREADS`` decides first, then an explicit ``OMP_NUM_THREADS`` (torch reads it itself), then the
    free CPUs: ``cpus`` minus those at least 3/4 busy, at least 1.
    """
    wanted = _requested(environ)
    if wanted == "torch":
        return ThreadChoice(None, "DNNL_THREADS=torch: torch's own choice")
    if wanted != "auto":
        return ThreadChoice(int(wanted), f"DNNL_THREADS={wanted}")
    omp = environ.get("OMP_NUM_THREADS", "").strip()
    if omp:
        return ThreadChoice(None, f"OMP_NUM_THREADS={omp} is set")
    if busy is None:
        return ThreadChoice(cpus, f"{cpus} usable CPU(s); their load is unknown here")
    taken = min(cpus, int(busy + 1 - _TAKEN_AT))
    return ThreadChoice(max(1, cpus - taken),
                        f"{cpus} usable CPU(s), {busy:.1f} kept busy by other work")


# --------------------------------------------------------------------------- applied by dnnl/__init__.py

_state: dict = {}


def before_torch(environ=os.environ) -> None:
    """Choose the thread count (:func:`choose_threads`, from a 0.2 s look at the load) before torch loads, and
    set OMP_WAIT_POLICY=PASSIVE (if unset) when the choice leaves CPUs to other work."""
    wanted = _requested(environ)
    _state.clear()
    _state["torch_was_loaded"] = "torch" in sys.modules
    probe = _Probe() if wanted == "auto" and not environ.get("OMP_NUM_THREADS", "").strip() else None
    cpus = usable_cpus(quota=_cgroup_quota())
    busy = probe.busy() if probe else None
    choice = choose_threads(environ, cpus, busy)
    _state["choice"] = choice
    _state["from_load"] = busy is not None
    shared = choice.threads is not None and choice.threads < cpus
    if shared and not environ.get("OMP_WAIT_POLICY") and not _state["torch_was_loaded"]:
        environ["OMP_WAIT_POLICY"] = "PASSIVE"  # on a busy machine, a waiting thread must not spin


def after_torch() -> ThreadChoice:
    """Give the chosen count to torch.set_num_threads; a count chosen from the load is then kept up to date."""
    import torch

    choice = _state["choice"]
    if choice.threads is not None and choice.threads != torch.get_num_threads():
        torch.set_num_threads(choice.threads)
    _state["moves"] = 0
    if _state.pop("from_load", False):
        _state["watch"] = {"probe": _Probe(), "threads": torch.get_num_threads()}
    return choice


def rebalance() -> int | None:
    """Look at the load again (at most every 2 s) and move torch to one thread per CPU other work leaves free.

    ``train`` and ``sample`` call this once a step. It changes only a count dnnl chose from the load: not one
    set by DNNL_THREADS, OMP_NUM_THREADS, or the user's own torch.set_num_threads (which ends the watching).
    Returns the new thread count when it moved, else None.
    """
    watch = _state.get("watch")
    if watch is None or time.perf_counter() - watch["probe"].start[0] < _RECHECK_S:
        return None
    import torch

    current = torch.get_num_threads()
    if current != watch["threads"]:  # someone else set the count: theirs stands
        _state.pop("watch")
        return None
    busy = watch["probe"].busy()
    watch["probe"] = _Probe()
    if busy is None or watch["probe"].start is None:
        _state.pop("watch")  # the load can no longer be read
        return None
    threads = choose_threads({}, usable_cpus(quota=watch["probe"].quota), busy).threads
    if threads == current:
        return None
    torch.set_num_threads(threads)
    watch["threads"] = threads
    _state["moves"] += 1
    return threads


def thread_info() -> str:
    """For example 'torch threads 1 (2 usable CPU(s), 1.6 kept busy by other work; OMP_WAIT_POLICY=PASSIVE)'."""
    import torch

    choice = _state.get("choice")
    reason = choice.reason if choice else "not chosen by dnnl"
    policy = os.environ.get("OMP_WAIT_POLICY")
    if _state.get("torch_was_loaded"):
        policy_text = "torch was imported before dnnl, so dnnl set no OMP_WAIT_POLICY"
    else:
        policy_text = f"OMP_WAIT_POLICY={policy}" if policy else "OMP_WAIT_POLICY unset"
    moves = _state.get("moves", 0)
    moved = f"; moved {moves} time(s) since, as the load changed" if moves else ""
    return f"torch threads {torch.get_num_threads()} ({reason}; {policy_text}{moved})"
