"""Checkpoint files: atomic, checksummed, unique temp names, one clear error for every unreadable file."""
import errno
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dnnl.models.ddpm.checkpoint import (CHECKPOINT_NAME, check_folder, load_checkpoint, lock_folder,
                                         remove_stale_temps, save_checkpoint, state_checksum)

ckpt_module = importlib.import_module("dnnl.models.ddpm.checkpoint")
REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "dnnl" / "models" / "ddpm" / "weights" / "ddpm_mnist_quick.pt"


def a_state(value=1.0):
    return {"model": {"w": torch.full((64, 64), value), "b": torch.arange(3)}, "step": 3, "losses": [0.5, 0.25],
            "config": {"channels": [8, 16], "lr": 1e-3}, "rng": [{"python": (3, (1, 2, 3), None)}]}


def corrupted(path):
    return pytest.raises(ValueError, match=f"^checkpoint {path} is corrupted or not a dnnl checkpoint: ")


def test_round_trip_stores_and_verifies_a_checksum(tmp_path):
    path = save_checkpoint(a_state(), tmp_path / CHECKPOINT_NAME)
    raw = torch.load(path, weights_only=True)
    assert raw["checksum"] == state_checksum(a_state()) and raw["checksum"].startswith("sha256:")
    state = load_checkpoint(path)
    assert "checksum" not in state and state["step"] == 3
    assert torch.equal(state["model"]["w"], a_state()["model"]["w"])


def test_the_checksum_sees_every_value():
    base = state_checksum(a_state())
    changed = a_state()
    changed["model"]["w"][5, 5] = 1.0 + 2**-20
    assert state_checksum(changed) != base
    assert state_checksum({**a_state(), "step": 4}) != base
    assert state_checksum({**a_state(), "checksum": "anything"}) == base  # the checksum does not hash itself


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("this is a text file\n" * 50), "torch.load failed"),
    (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "torch.load failed"),
    (lambda p: p.write_bytes(os.urandom(5000)), "torch.load failed"),
])
def test_unreadable_files_give_one_clear_error(tmp_path, damage, reason):
    path = save_checkpoint(a_state(), tmp_path / CHECKPOINT_NAME)
    damage(path)
    with corrupted(path) as info:
        load_checkpoint(path)
    assert reason in str(info.value)


def test_scrambled_bytes_inside_the_file_fail_the_checksum(tmp_path):
    """4 KiB of the tensor data scrambled: the zip still opens, so only the checksum can tell."""
    path = save_checkpoint(a_state(), tmp_path / CHECKPOINT_NAME)
    blob = bytearray(path.read_bytes())
    start = blob.find(bytes(torch.full((4,), 1.0).numpy().tobytes()))  # the start of w's data
    assert start > 0
    blob[start:start + 4096] = os.urandom(4096)
    path.write_bytes(bytes(blob))
    torch.load(path, weights_only=True)  # torch itself does not notice
    with corrupted(path) as info:
        load_checkpoint(path)
    assert "checksum" in str(info.value)


def test_a_file_that_is_not_a_dict_is_refused(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.ones(2)], path)
    with corrupted(path) as info:
        load_checkpoint(path)
    assert "not a dict" in str(info.value)


def test_a_pickle_of_arbitrary_objects_is_refused_not_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": Path("x")}, path)  # not loadable with weights_only=True
    with corrupted(path):
        load_checkpoint(path)


def test_a_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "none.pt")


def test_checkpoints_without_a_checksum_still_load(tmp_path):
    path = tmp_path / "old.pt"
    torch.save(a_state(), path)  # the format before checksums
    assert load_checkpoint(path)["step"] == 3
    shipped = load_checkpoint(SHIPPED)  # the shipped weights: a plain state dict of the EMA U-Net
    assert "stem.weight" in shipped and "checksum" not in shipped


def test_each_save_uses_its_own_temp_file(tmp_path, monkeypatch):
    seen, real_replace = [], os.replace

    def spy(src, dst):
        seen.append(Path(src))
        return real_replace(src, dst)

    monkeypatch.setattr(ckpt_module.os, "replace", spy)
    for i in range(3):
        save_checkpoint(a_state(i), tmp_path / CHECKPOINT_NAME)
    assert len(set(seen)) == 3 and all(p.parent == tmp_path and p.name.startswith(".checkpoint.pt.") for p in seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]


def _regular_fsync_fails(monkeypatch, code):
    real = os.fsync

    def fsync(fd):
        import stat
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(code, os.strerror(code))
        return real(fd)

    monkeypatch.setattr(ckpt_module.os, "fsync", fsync)


def test_a_full_disk_names_the_folder_and_errno_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_checkpoint(a_state(1.0), tmp_path / CHECKPOINT_NAME)
    _regular_fsync_fails(monkeypatch, errno.ENOSPC)
    with pytest.raises(OSError) as info:
        save_checkpoint(a_state(2.0), path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message and "[Errno 28]" in message and "ENOSPC" in message
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((64, 64), 1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]


from _train_helpers import read_only as _read_only  # noqa: E402


def test_a_read_only_folder_fails_in_one_line(tmp_path, monkeypatch):
    _read_only(monkeypatch, tmp_path)
    with pytest.raises(OSError, match=r"^\[Errno 30\] cannot save checkpoint.pt in .*EROFS") as info:
        save_checkpoint(a_state(), tmp_path / CHECKPOINT_NAME)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(OSError, match=r"^\[Errno 30\] cannot write in .*EROFS"):
        check_folder(tmp_path, 10)


def test_check_folder_wants_room_for_two_checkpoints(tmp_path, monkeypatch):
    check_folder(tmp_path, 1000)
    usage = type("Usage", (), {"total": 10**9, "used": 10**9 - 5 * 2**20, "free": 5 * 2**20})
    monkeypatch.setattr(ckpt_module.shutil, "disk_usage", lambda p: usage)
    with pytest.raises(OSError, match=r"not enough room in .*5.0 MiB free, about 8.0 MiB needed") as info:
        check_folder(tmp_path, 8 * 2**20)
    assert info.value.errno == errno.ENOSPC and str(tmp_path) in str(info.value)
    assert list(tmp_path.iterdir()) == []  # the probe file is gone


def test_stale_temp_files_are_removed(tmp_path):
    keep = tmp_path / CHECKPOINT_NAME
    keep.write_bytes(b"x")
    stale = [tmp_path / ".checkpoint.pt.tmp", tmp_path / ".checkpoint.pt.1234.abcdef12.tmp"]
    for p in stale:
        p.write_bytes(b"partial")
    assert sorted(remove_stale_temps(tmp_path)) == sorted(stale)
    assert list(tmp_path.iterdir()) == [keep]


def test_a_locked_folder_refuses_a_second_holder_and_names_the_pid(tmp_path):
    code = ("import sys; from dnnl.models.ddpm.checkpoint import lock_folder\n"
            "try:\n    with lock_folder(sys.argv[1]): print('got it')\n"
            "except RuntimeError as e: print(e)\n")
    with lock_folder(tmp_path):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO)
        assert f"in use by another training run (pid {os.getpid()})" in out.stdout, out.stdout + out.stderr
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO)
    assert out.stdout.strip() == "got it", out.stdout + out.stderr  # released on exit
