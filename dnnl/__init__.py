"""dnnl: an executable textbook on denoising diffusion probabilistic models.

Helpers shared by every chapter: seeding, device choice, and the quick/full mode.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

__version__ = "0.1.0"
__all__ = ["set_seed", "get_device", "get_mode", "mode_reason", "runtime_info", "output_dir", "__version__"]

_DEVICE_ORDER = ("cuda", "mps", "xpu", "cpu")
_MODES = ("quick", "full")


def set_seed(seed: int) -> None:
    """Seed Python's `random`, NumPy and torch (CPU and every CUDA device)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int (got {type(seed).__name__})")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32) (got {seed})")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if kind == "xpu":
        return hasattr(torch, "xpu") and torch.xpu.is_available()
    return kind == "cpu"


def get_device() -> torch.device:
    """The best device here: cuda, then mps, then xpu, then cpu.

    Set ``DNNL_DEVICE`` (for example ``cpu`` or ``cuda:1``) to override the choice.
    """
    wanted = os.environ.get("DNNL_DEVICE", "").strip()
    if wanted:
        try:
            device = torch.device(wanted)
        except RuntimeError as err:
            raise ValueError(f"DNNL_DEVICE={wanted!r} is not a torch device name; "
                             f"use one of {', '.join(_DEVICE_ORDER)} (optionally with ':index')") from err
        if not _available(device.type):
            raise ValueError(f"DNNL_DEVICE={wanted!r} but no {device.type} device is available here; "
                             "unset DNNL_DEVICE to pick automatically")
        return device
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
    """One line for the top of a chapter: torch version, device and mode with its reason."""
    mode, why = _mode_and_reason()
    return f"torch {torch.__version__} | device {get_device()} | {mode} mode, because {why}"


def output_dir(*parts: str) -> Path:
    """A folder for files that chapters and scripts write (figures, GIFs, checkpoints).

    ``DNNL_OUT`` sets the root; the default is ``_output/`` in the working directory, which git ignores.
    The folder is created if needed.
    """
    root = Path(os.environ.get("DNNL_OUT", "") or "_output")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
