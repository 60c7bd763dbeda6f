"""The thread policy of ``import dnnl`` (dnnl/_threads.py): the choice, its inputs, and that it happens before torch loads."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import dnnl
from dnnl import _threads
from dnnl._threads import busy_cpus, choose_threads, usable_cpus

# ------------------------------------------------------------------ the choice (a pure function)


@pytest.mark.parametrize("cpus, busy, expected", [
    (2, 0.0, 2), (2, 0.7, 2),      # an idle machine, or light background work: every CPU
    (2, 0.8, 1), (2, 1.7, 1),      # a CPU at least 3/4 busy with other work is not offered
    (2, 6.0, 1), (1, 0.0, 1),      # never fewer than one thread
    (8, 2.9, 5), (8, None, 8),     # load unknown: every usable CPU
])
def test_threads_follow_the_free_cpus(cpus, busy, expected):
    choice = choose_threads({}, cpus, busy)
    assert choice.threads == expected and f"{cpus} usable CPU(s)" in choice.reason


def test_dnnl_threads_decides_first():
    assert choose_threads({"DNNL_THREADS": "3"}, 2, 1.9).threads == 3  # the user's count, even on a busy machine
    assert choose_threads({"DNNL_THREADS": " 1 ", "OMP_NUM_THREADS": "2"}, 2, 0.0).threads == 1
    assert choose_threads({"DNNL_THREADS": "auto"}, 2, 1.9).threads == 1
    leave = choose_threads({"DNNL_THREADS": "torch"}, 2, 1.9)
    assert leave.threads is None and "torch's own choice" in leave.reason


def test_an_explicit_omp_num_threads_is_honoured():
    choice = choose_threads({"OMP_NUM_THREADS": "1"}, 2, 0.0)
    assert choice.threads is None and "OMP_NUM_THREADS=1 is set" in choice.reason  # torch reads it itself
    assert choose_threads({"OMP_NUM_THREADS": " "}, 2, 0.0).threads == 2  # blank is unset


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5", "2 threads", "off"])
def test_bad_dnnl_threads_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"DNNL_THREADS must be a whole number of threads >= 1, 'auto' .* "
                                         r"or 'torch' .*got '" + bad):
        choose_threads({"DNNL_THREADS": bad}, 2, 0.0)


# ------------------------------------------------------------------ its inputs

def test_usable_cpus_are_the_affinity_set_capped_by_the_quota(monkeypatch):
    assert usable_cpus({0, 1, 2, 3}) == 4
    assert usable_cpus({0, 1, 2, 3}, quota=1.5) == 2 and usable_cpus({0, 1, 2, 3}, quota=0.5) == 1
    assert usable_cpus({3}, quota=8.0) == 1
    if hasattr(os, "sched_getaffinity"):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5})
        assert usable_cpus() == 1


def test_cgroup_quota_v2_and_v1(tmp_path):
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _threads._cgroup_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _threads._cgroup_quota(tmp_path) == 1.5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert _threads._cgroup_quota(v1) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    assert _threads._cgroup_quota(v1) == 2.0
    assert _threads._cgroup_quota(tmp_path / "missing") is None


def test_busy_ticks_count_only_this_process_cpus_and_not_idle_time():
    stat = textwrap.dedent("""\
        cpu  900 0 300 5000 100 0 0 0 0 0
        cpu0 100 10 20 400 30 1 2 3 0 0
        cpu1 500 0 100 50 0 0 0 0 0 0
        cpu2 7 0 0 0 0 0 0 0 0 0
        intr 12345
        """)
    busy, total = _threads._busy_ticks(stat, {0, 1})
    assert busy == (100 + 10 + 20 + 1 + 2 + 3) + (500 + 100)  # user nice system irq softirq steal
    assert total == busy + 400 + 30 + 50  # idle and iowait are not busy
    assert _threads._busy_ticks(stat, {7}) == (0, 0)


def test_busy_cpus_subtract_this_process():
    assert busy_cpus(used_cpu_s=3.0, own_cpu_s=1.0, wall_s=2.0) == 1.0
    assert busy_cpus(used_cpu_s=0.5, own_cpu_s=1.0, wall_s=2.0) == 0.0  # tick rounding never goes below 0
    assert busy_cpus(1.0, 0.0, 0.0) == 0.0


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="the probe reads /proc/stat")
def test_the_probe_measures_a_window_of_at_least_0_2_s():
    probe = _threads._Probe()
    busy = probe.busy()
    assert busy is not None and 0.0 <= busy <= len(os.sched_getaffinity(0)) + 0.5


# ------------------------------------------------------------------ applied by `import dnnl`, before torch loads

_SEE_TORCH_LOAD = textwrap.dedent("""\
    import os, sys
    seen = []
    class Watch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" and not seen:
                seen.append(os.environ.get("OMP_WAIT_POLICY"))
            return None
    sys.meta_path.insert(0, Watch())
    {before}
    import dnnl, torch
    print("at-torch-import", seen[0] if seen else "torch-already-loaded")
    print("threads", torch.get_num_threads())
    print(dnnl.runtime_info())
    """)


def _python(env: dict, before: str = "") -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "DNNL_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return subprocess.run([sys.executable, "-c", _SEE_TORCH_LOAD.format(before=before)], env={**clean, **env},
                          capture_output=True, text=True, timeout=300)


def test_import_dnnl_sets_the_wait_policy_before_torch_loads():
    out = _python({"DNNL_THREADS": "1"})  # fewer threads than CPUs: the others are left to other work
    assert out.returncode == 0, out.stderr
    assert "at-torch-import PASSIVE" in out.stdout and "threads 1\n" in out.stdout
    assert "torch threads 1 (DNNL_THREADS=1; OMP_WAIT_POLICY=PASSIVE)" in out.stdout


def test_every_cpu_keeps_the_default_wait_policy():
    """Passive waiting costs a lone kernel time at every parallel region: with all CPUs it is not set."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out = _python({"DNNL_THREADS": str(cpus)})
    assert out.returncode == 0 and "at-torch-import None" in out.stdout, out.stderr
    assert f"torch threads {cpus} (DNNL_THREADS={cpus}; OMP_WAIT_POLICY unset)" in out.stdout


def test_a_wait_policy_the_user_set_is_kept_and_torch_mode_sets_none():
    out = _python({"OMP_WAIT_POLICY": "ACTIVE", "DNNL_THREADS": "1"})
    assert out.returncode == 0 and "at-torch-import ACTIVE" in out.stdout, out.stderr
    out = _python({"DNNL_THREADS": "torch"})
    assert out.returncode == 0 and "at-torch-import None" in out.stdout, out.stderr
    assert "DNNL_THREADS=torch: torch's own choice; OMP_WAIT_POLICY unset" in out.stdout


def test_torch_imported_first_is_reported():
    out = _python({"DNNL_THREADS": "1"}, before="import torch")
    assert out.returncode == 0, out.stderr
    assert "torch threads 1 (DNNL_THREADS=1; torch was imported before dnnl" in out.stdout


def test_a_bad_dnnl_threads_stops_the_import_with_its_name():
    out = _python({"DNNL_THREADS": "0"})
    assert out.returncode != 0 and "ValueError: DNNL_THREADS must be a whole number of threads >= 1" in out.stderr


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="the load is measured from /proc/stat")
def test_busy_cpus_get_fewer_threads():
    """With every usable CPU kept busy by another process, `import dnnl` gives torch one thread."""
    cpus = len(os.sched_getaffinity(0))
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cpus)]
    try:
        out = _python({})
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()
    assert out.returncode == 0, out.stderr
    assert "threads 1\n" in out.stdout and "kept busy by other work; OMP_WAIT_POLICY=PASSIVE" in out.stdout


def test_runtime_info_reports_the_threads():
    info = dnnl.runtime_info()
    assert f"torch threads {torch.get_num_threads()} (" in info and "OMP_WAIT_POLICY" in info


# ------------------------------------------------------------------ looked at again while a loop runs

class _FakeProbe:
    """A probe whose window began ``age_s`` ago and saw ``busy`` CPUs of other work."""

    def __init__(self, busy=0.0, age_s=3.0):
        self.start, self.quota, self._busy = (_threads.time.perf_counter() - age_s, 0.0, 0.0), None, busy

    def busy(self):
        return self._busy


@pytest.fixture
def watched(monkeypatch):
    """A count dnnl chose from the load (2 threads of 2 usable CPUs); torch's own count restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setattr(_threads, "_state", {"moves": 0, "watch": {"probe": _FakeProbe(), "threads": 2}})
    monkeypatch.setattr(_threads, "usable_cpus", lambda quota=None: 2)
    yield _threads._state
    torch.set_num_threads(before)


def test_rebalance_follows_the_load_both_ways(watched, monkeypatch):
    watched["watch"]["probe"] = _FakeProbe(busy=1.6)  # another kernel started: a CPU is taken
    monkeypatch.setattr(_threads, "_Probe", lambda: _FakeProbe(busy=0.1, age_s=0.5))
    assert _threads.rebalance() == 1 and torch.get_num_threads() == 1
    assert _threads.rebalance() is None and torch.get_num_threads() == 1  # 0.5 s: too soon to look again
    monkeypatch.setattr(_threads, "_Probe", lambda: _FakeProbe(busy=0.1))
    watched["watch"]["probe"] = _FakeProbe(busy=0.1)  # it finished: both CPUs are free again
    assert _threads.rebalance() == 2 and torch.get_num_threads() == 2
    assert _threads.rebalance() is None and watched["moves"] == 2
    assert "; moved 2 time(s) since, as the load changed)" in _threads.thread_info()


def test_a_count_set_by_the_user_ends_the_watching(watched, monkeypatch):
    monkeypatch.setattr(_threads, "_Probe", lambda: _FakeProbe(busy=1.6))
    watched["watch"]["probe"] = _FakeProbe(busy=1.6)
    torch.set_num_threads(1)  # the reader's own choice
    assert _threads.rebalance() is None and "watch" not in watched
    torch.set_num_threads(2)
    assert _threads.rebalance() is None and torch.get_num_threads() == 2


@pytest.mark.parametrize("env", [{"DNNL_THREADS": "2"}, {"DNNL_THREADS": "torch"}, {"OMP_NUM_THREADS": "2"}])
def test_a_count_not_chosen_from_the_load_is_not_watched(env):
    clean = {k: v for k, v in os.environ.items() if k not in ("DNNL_THREADS", "OMP_NUM_THREADS")}
    code = "import dnnl; from dnnl import _threads; print('watched' if 'watch' in _threads._state else 'left')"
    for extra, expected in ((env, "left"), ({}, "watched")):
        out = subprocess.run([sys.executable, "-c", code], env={**clean, **extra}, capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0 and out.stdout.strip() == expected, (extra, out.stdout, out.stderr)


_SAMPLE_WHILE_OTHERS_RUN = textwrap.dedent("""\
    import subprocess, sys, time
    import dnnl, torch
    from dnnl.models import ddpm

    def busy_model(x, t):  # 10 ms of work a step, however slow the machine is made
        end, a = time.perf_counter() + 0.01, torch.randn(128, 128)
        while time.perf_counter() < end:
            a = torch.tanh(a @ a)
        return torch.zeros_like(x)

    def run():
        ddpm.sample(busy_model, ddpm.NoiseSchedule.linear(1000), (1, 1, 4, 4), steps=450, progress=False)
        return torch.get_num_threads()

    print("alone", torch.get_num_threads())
    others = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range({cpus})]
    try:
        print("shared", run())
    finally:
        for p in others:
            p.kill()
            p.wait()
    print("alone-again", run())
    print(dnnl.runtime_info())
    """)


@pytest.mark.skipif(not os.path.exists("/proc/stat") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs /proc/stat and at least 2 CPUs")
def test_sampling_gives_cpus_back_while_other_work_runs_and_takes_them_again():
    """The case the first look misses: a kernel that started on an idle machine, then found others there."""
    cpus = len(os.sched_getaffinity(0))
    clean = {k: v for k, v in os.environ.items() if k not in ("DNNL_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", _SAMPLE_WHILE_OTHERS_RUN.format(cpus=cpus)], env=clean,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    if f"alone {cpus}\n" not in out.stdout:
        pytest.skip(f"other work was running when the test started: {out.stdout.splitlines()[0]}")
    assert "shared 1\n" in out.stdout and f"alone-again {cpus}\n" in out.stdout, out.stdout
    assert "moved 2 time(s) since, as the load changed" in out.stdout
