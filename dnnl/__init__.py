"""dnnl: an executable textbook on denoising diffusion probabilistic models.

Helpers shared by every chapter: seeding, device choice, and the quick/full mode.
Importing dnnl first (the setup cell of every chapter does) also picks torch's thread count for the CPUs
that are free (looked at again while train and sample run) and, on a busy machine, sets
``OMP_WAIT_POLICY=PASSIVE`` before torch loads (``_threads.py``;
``DNNL_THREADS``).
"""
from __future__ import annotations

import os
import random
from pathlib import Path

from . import _threads

_threads.before_torch()  # before torch loads: the OpenMP wait policy is read once, when the library loads
import numpy as np  # noqa: E402
import torch  # noqa: E402

_threads.after_torch()

__version__ = "0.1.0"
__all__ = ["set_seed", "get_device", "resolve_device", "available_devices", "get_mode", "mode_reason",
           "runtime_info", "output_dir", "__version__"]

_DEVICE_ORDER = ("cuda", "mps", "xpu", "cpu")
_MODES = ("quick", "full")


def set_seed(seed: int) -> None:
    """Seed Python's `random`, NumPy and torch (CPU and every CUDA device); ``seed`` in [0, 2**32 - 1]."""
    from .models.ddpm._validate import check_int

    seed = check_int(seed, "seed", low=0, high=2**32 - 1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds the CPU and every CUDA device


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if kind == "xpu":
        return hasattr(torch, "xpu") and torch.xpu.is_available()
    return kind == "cpu"


def _count(kind: str) -> int:
    if not _available(kind):
        return 0
    if kind == "cuda":
        return torch.cuda.device_count()
    if kind == "xpu":
        return torch.xpu.device_count()
    return 1


def available_devices() -> list[str]:
    """The device names usable here, e.g. ``['cuda', 'cuda:0', 'cpu']``."""
    names = []
    for kind in _DEVICE_ORDER:
        n = _count(kind)
        if n and kind in ("cuda", "xpu"):
            names += [kind] + [f"{kind}:{i}" for i in range(n)]
        elif n:
            names.append(kind)
    return names


def _checked_device(device, name: str) -> torch.device:
    shown = f"{name}={device!r}"
    here = ", ".join(available_devices())
    if isinstance(device, str):
        try:
            device_ = torch.device(device.strip())
        except RuntimeError as err:
            raise ValueError(f"{shown} is not a torch device name; {name} must be one of: {here}") from err
    elif isinstance(device, torch.device):
        device_ = device
    else:
        raise TypeError(f"{name} must be a device name such as 'cpu' or 'cuda:0', a torch.device or None "
                        f"(got {type(device).__name__}); available here: {here}")
    if not _available(device_.type):
        raise ValueError(f"{shown}, but no {device_.type} device is available here; {name} must be one of: {here}")
    if device_.index is not None and device_.index >= _count(device_.type):
        raise ValueError(f"{shown}, but this machine has {_count(device_.type)} {device_.type} device(s); "
                         f"{name} must be one of: {here}")
    return device_


def resolve_device(device=None, name: str = "device") -> torch.device:
    """``device`` (a name such as 'cuda:0', a torch.device, or None for :func:`get_device`) as a torch.device.

    A name that is not a device, or a device this machine lacks, is a ValueError that lists the ones it has.
    """
    return get_device() if device is None else _checked_device(device, name)


def get_device() -> torch.device:
    """The best device here: cuda, then mps, then xpu, then cpu.

    Set ``DNNL_DEVICE`` (for example ``cpu`` or ``cuda:1``) to override the choice.
    """
    wanted = os.environ.get("DNNL_DEVICE", "").strip()
    if wanted:
        return _checked_device(wanted, "DNNL_DEVICE")
    for kind in _DEVICE_ORDER:
        if _available(kind):
            return torch.device(kind)
    return torch.device("cpu")  # pragma: no cover


def _mode_and_reason() -> tuple[str, str]:
    wanted = os.environ.get("DNNL_MODE", "").strip().lower()
    if wanted:
        if wanted not in _MODES:
            raise ValueError(f"DNNL_MODE must be 'quick' or 'full' (got {wanted!r})")
        return wanted, f"DNNL_MODE={wanted} is set"
    device = get_device()
    if device.type == "cpu":
        return "quick", "no GPU was found (set DNNL_MODE=full to force the full sizes)"
    return "full", f"a {device.type} accelerator was found (set DNNL_MODE=quick for the small sizes)"


def get_mode() -> str:
    """'quick' (small sizes, CPU-friendly) or 'full' (GPU sizes).

    ``DNNL_MODE=quick|full`` decides; otherwise full on an accelerator and quick on CPU.
    """
    return _mode_and_reason()[0]


def mode_reason() -> str:
    """One sentence saying why :func:`get_mode` chose its mode."""
    return _mode_and_reason()[1]


def runtime_info() -> str:
    """One line for the top of a chapter: torch version, device, mode with its reason, and torch's threads."""
    mode, why = _mode_and_reason()
    return (f"torch {torch.__version__} | device {get_device()} | {mode} mode, because {why} | "
            f"{_threads.thread_info()}")


def output_dir(*parts: str) -> Path:
    """A folder for files that chapters and scripts write (figures, GIFs, checkpoints).

    ``DNNL_OUT`` sets the root; the default is ``_output/`` in the working directory, which git ignores.
    The folder is created if needed.
    """
    root = Path(os.environ.get("DNNL_OUT", "") or "_output")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
