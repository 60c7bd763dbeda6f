"""Faults the training loop survives: NaN, two runs in one folder, a full or read-only disk, Ctrl-C and SIGTERM,
corrupted checkpoints, stale temp files. Tiny models, a few steps, on the CPU."""
import errno
import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dnnl.models.ddpm import TrainConfig, TrainingInterrupted, load_checkpoint, train

train_module = importlib.import_module("dnnl.models.ddpm.train")
ckpt_module = importlib.import_module("dnnl.models.ddpm.checkpoint")
REPO = Path(__file__).resolve().parents[1]


from _train_helpers import one_thread  # noqa: E402,F401
from _train_helpers import read_only  # noqa: E402
from _train_helpers import tiny as _tiny  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(root, out, **kw):
    """The shared tiny run, shorter, logging and saving often so that faults land between saves."""
    return _tiny(root, out, **{"steps": 12, "log_every": 3, "checkpoint_every": 4, **kw})


def all_finite(state):
    return all(torch.isfinite(v).all() for part in ("model", "ema") for v in state[part].values()
               if v.is_floating_point())


def same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --------------------------------------------------------------------------- NaN and inf

def test_an_exploding_lr_saves_no_non_finite_checkpoint(mnist_root, tmp_path):
    """lr 1e41 with a checkpoint every step: step 1's loss is finite but its update is not."""
    with pytest.raises(RuntimeError, match=r"non-finite weights after step 1; .*Last good checkpoint: none"):
        train(tiny(mnist_root, tmp_path, lr=1e41, checkpoint_every=1), progress=False)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_weight_that_turns_nan_names_the_newest_finite_checkpoint(mnist_root, tmp_path, monkeypatch):
    real, calls = train_module.ema_update, []

    def poison_at_step_6(ema, model, decay):
        calls.append(1)
        real(ema, model, decay)
        if len(calls) == 6:  # the loss stays finite until the next step: only the weights show it
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = float("inf")

    monkeypatch.setattr(train_module, "ema_update", poison_at_step_6)
    with pytest.raises(RuntimeError, match=r"non-finite .* Last good checkpoint: .*checkpoint.pt \(step 4\)"):
        train(tiny(mnist_root, tmp_path, checkpoint_every=2, log_every=100), progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 4 and all_finite(state)


# --------------------------------------------------------------------------- two runs, one folder

def test_a_second_run_in_a_locked_folder_is_refused_with_the_holders_pid(mnist_root, tmp_path):
    code = ("import sys, time; from dnnl.models.ddpm.checkpoint import lock_folder\n"
            "with lock_folder(sys.argv[1]):\n    print('locked', flush=True); time.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RuntimeError, match=rf"in use by another training run \(pid {holder.pid}\)"):
            train(tiny(mnist_root, tmp_path), progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / "checkpoint.pt").exists()
    assert train(tiny(mnist_root, tmp_path, steps=2), progress=False).steps == 2  # free again


# --------------------------------------------------------------------------- full or read-only disk

def test_a_full_disk_is_found_before_the_first_step(mnist_root, tmp_path, monkeypatch):
    usage = type("Usage", (), {"total": 10**9, "used": 10**9 - 1000, "free": 1000})
    monkeypatch.setattr(ckpt_module.shutil, "disk_usage", lambda p: usage)
    started = []
    monkeypatch.setattr(train_module, "train_step", lambda *a, **k: started.append(1))
    with pytest.raises(OSError, match=r"not enough room in .*ENOSPC") as info:
        train(tiny(mnist_root, tmp_path), progress=False)
    assert str(tmp_path) in str(info.value) and started == []


def test_a_read_only_folder_is_found_before_the_first_step(mnist_root, tmp_path, monkeypatch):
    read_only(monkeypatch, tmp_path)
    with pytest.raises(OSError, match=r"^\[Errno 30\] cannot write in .*EROFS") as info:
        train(tiny(mnist_root, tmp_path), progress=False)
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_a_disk_that_fills_up_mid_run_keeps_the_previous_checkpoint(mnist_root, tmp_path, monkeypatch):
    import stat

    real_fsync, files = os.fsync, []

    def fsync(fd):
        if stat.S_ISREG(os.fstat(fd).st_mode):
            files.append(fd)
            if len(files) == 2:  # the second checkpoint's write
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(ckpt_module.os, "fsync", fsync)
    with pytest.raises(OSError, match=r"^\[Errno 28\] cannot save checkpoint.pt in .*ENOSPC") as info:
        train(tiny(mnist_root, tmp_path), progress=False)
    assert str(tmp_path) in str(info.value)
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "checkpoint.pt"]


# --------------------------------------------------------------------------- Ctrl-C and SIGTERM

def test_ctrl_c_saves_the_current_step_and_a_resume_is_bit_identical(mnist_root, tmp_path, monkeypatch):
    whole = train(tiny(mnist_root, tmp_path / "whole"), progress=False)
    real, calls = train_module.ema_update, []

    def ctrl_c_at_step_7(*args):
        calls.append(1)
        real(*args)
        if len(calls) == 7:
            os.kill(os.getpid(), signal.SIGINT)  # mid-run, as a user's Ctrl-C

    monkeypatch.setattr(train_module, "ema_update", ctrl_c_at_step_7)
    with pytest.raises(TrainingInterrupted, match=r"stopped by SIGINT at step 7; checkpoint .* saved"):
        train(tiny(mnist_root, tmp_path / "split"), progress=False)
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["step"] == 7
    resumed = train(tiny(mnist_root, tmp_path / "split"), resume=True, progress=False)
    a, b = load_checkpoint(whole.checkpoint), load_checkpoint(resumed.checkpoint)
    for key in ("model", "ema"):
        same(a[key], b[key])
    assert a["losses"] == b["losses"] and len(b["losses"]) == 12


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_the_command_line_stops_on_a_signal_in_one_line(mnist_root, tmp_path, signum, code):
    args = [sys.executable, "-m", "dnnl.models.ddpm", "--preset", "quick", "--steps", "100000", "--subset", "64",
            "--batch-size", "8", "--checkpoint-every", "2", "--out", str(tmp_path), "--data-root", str(mnist_root),
            "--no-progress"]
    proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1", "DNNL_DEVICE": "cpu"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (tmp_path / "checkpoint.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == code, out + err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"interrupted: stopped by {signal.Signals(signum).name} at step")
    step = load_checkpoint(tmp_path / "checkpoint.pt")["step"]
    assert step >= 2 and f"at step {step};" in err


# --------------------------------------------------------------------------- resume, corruption, stale files

def test_resume_without_a_checkpoint_says_it_starts_fresh(mnist_root, tmp_path, capsys):
    result = train(tiny(mnist_root, tmp_path, steps=2, sample_every=2, sample_steps=2), resume=True, progress=False)
    assert f"no checkpoint in {tmp_path}; starting fresh" in capsys.readouterr().out
    assert result.steps == 2 and (tmp_path / "samples" / "step_000002.png").is_file()  # previews still work


def test_resume_from_a_corrupted_checkpoint_says_so(mnist_root, tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(os.urandom(3000))
    with pytest.raises(ValueError, match="is corrupted or not a dnnl checkpoint"):
        train(tiny(mnist_root, tmp_path), resume=True, progress=False)


def test_stale_temp_files_of_a_killed_save_are_removed(mnist_root, tmp_path):
    stale = [tmp_path / ".checkpoint.pt.tmp", tmp_path / ".checkpoint.pt.999.0badf00d.tmp"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    train(tiny(mnist_root, tmp_path, steps=2), progress=False)
    assert not any(p.exists() for p in stale)


def test_the_command_line_reports_a_bad_argument_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "dnnl.models.ddpm", "--steps", "0", "--out", str(tmp_path)],
                         cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1 and out.stderr.strip() == "error: steps must be an int >= 1 (got 0)", out.stderr
