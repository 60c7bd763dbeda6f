"""Checkpoints that survive their faults: atomic, checksummed, one run per folder.

- :func:`save_checkpoint` writes to a uniquely named temporary file, fsyncs, then renames it over the
  target, so a crash leaves the old checkpoint or the new one and two writers never share a temp file.
  A failed write (a full disk, a read-only folder) raises one ``OSError`` naming the folder and the errno.
- The state carries a SHA-256 of its tensors and values; :func:`load_checkpoint` verifies it and turns
  every unreadable file into ``ValueError("checkpoint <path> is corrupted or not a dnnl checkpoint: ...")``.
  Files without a checksum (older checkpoints, exported weights) load unverified.
- :func:`lock_folder` holds an exclusive lock on the output folder; a second run is refused with the
  holder's pid. Everything loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are then not protected from each other
    fcntl = None

__all__ = ["CHECKPOINT_NAME", "save_checkpoint", "load_checkpoint", "atomic_save", "state_checksum", "lock_folder",
           "check_folder", "remove_stale_temps", "all_finite"]

CHECKPOINT_NAME = "checkpoint.pt"
LOCK_NAME = ".lock"


# --------------------------------------------------------------------------- checksum

def _digest(h, obj) -> None:
    """Feed ``obj`` (nested dicts, lists, tensors, plain values) into the hash ``h`` in a fixed order."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k, v in obj.items():
            h.update(repr(k).encode())
            _digest(h, v)
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())  # lists and tuples hash alike: a load may turn one into the other
        for v in obj:
            _digest(h, v)
    else:
        h.update(f"V{obj!r}".encode())


def state_checksum(state: dict) -> str:
    """``"sha256:<hex>"`` of every entry of ``state`` except ``"checksum"`` itself."""
    h = hashlib.sha256()
    _digest(h, {k: v for k, v in state.items() if k != "checksum"})
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------- save and load

def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _os_error(err: OSError, message: str) -> OSError:
    """``OSError`` with ``err``'s errno and a one-line message: "[Errno 28] <message> (ENOSPC: No space ...)"."""
    if not err.errno:
        return OSError(f"{message} ({err})")
    return OSError(err.errno, f"{message} ({errno.errorcode.get(err.errno, '?')}: {err.strerror})")


def _save_error(err: OSError, path: Path) -> OSError:
    return _os_error(err, f"cannot save {path.name} in {path.parent}; the previous file is kept")


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically: a unique temp file in the same folder, fsync, rename."""
    path = Path(path)
    tmp = _temp_name(path)
    try:
        buffer = io.BytesIO()  # serialise first, so a write error reaches us as an OSError with its errno
        torch.save(obj, buffer)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
            fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise _save_error(err, path) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_checkpoint(state: dict, path: str | os.PathLike) -> Path:
    """Write ``state`` and its :func:`state_checksum` atomically (see :func:`atomic_save`)."""
    return atomic_save({**state, "checksum": state_checksum(state)}, path)


def _corrupted(path: Path, reason: str) -> ValueError:
    return ValueError(f"checkpoint {path} is corrupted or not a dnnl checkpoint: {reason}")


def load_checkpoint(path: str | os.PathLike, map_location=None) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``) and verify its checksum."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise _corrupted(path, "the file is empty (0 bytes)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torn zip, text, random bytes, a pickle that is not plain tensors ...
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise _corrupted(path, f"torch.load failed ({type(err).__name__}: {first[:200]})") from err
    if not isinstance(state, dict):
        raise _corrupted(path, f"it holds a {type(state).__name__}, not a dict")
    if "checksum" in state:
        saved = state.pop("checksum")
        if saved != state_checksum(state):
            raise _corrupted(path, "the checksum of its contents does not match the one stored at save time")
    return state


def remove_stale_temps(folder: str | os.PathLike, name: str = CHECKPOINT_NAME) -> list[Path]:
    """Delete temp files a killed save left behind (call it while holding :func:`lock_folder`)."""
    stale = sorted(Path(folder).glob(f".{name}.*tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


# --------------------------------------------------------------------------- the run folder

@contextmanager
def lock_folder(folder: str | os.PathLike):
    """Hold an exclusive lock on ``folder`` (a ``.lock`` file holding our pid) for the ``with`` block."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield folder
        return
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RuntimeError(f"{folder} is in use by another training run (pid {holder}); wait for it to "
                               "finish or choose another out_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield folder
    finally:
        os.close(fd)  # closing releases the lock


def check_folder(folder: str | os.PathLike, need_bytes: int) -> None:
    """Fail early, in one line, if ``folder`` is not writable or has less than ``need_bytes`` free."""
    folder = Path(folder)
    probe = _temp_name(folder / CHECKPOINT_NAME)
    try:
        with open(probe, "wb") as f:
            f.write(b"dnnl")
        probe.unlink()
    except OSError as err:
        raise _os_error(err, f"cannot write in {folder}, the run's output folder") from err
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise OSError(errno.ENOSPC, f"not enough room in {folder}: {free / 2**20:.1f} MiB free, about "
                                    f"{need_bytes / 2**20:.1f} MiB needed (twice a checkpoint; ENOSPC)")


def all_finite(*modules: torch.nn.Module) -> bool:
    """Whether every parameter and buffer of ``modules`` is finite (one host-device sync)."""
    tensors = [t for m in modules for t in (*m.parameters(), *m.buffers()) if t.is_floating_point()]
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()) if tensors else True


# --------------------------------------------------------------------------- random state

def rng_state() -> dict:
    """Every RNG a run draws from (torch, CUDA, NumPy, Python), as weights_only-safe values."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
