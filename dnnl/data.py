"""MNIST in the model's range [-1, 1], and helpers to move between pixel ranges.

The data folder is, in order: the ``root`` argument, the ``DNNL_DATA`` environment variable,
then a user cache folder (``$XDG_CACHE_HOME/dnnl/data``, by default ``~/.cache/dnnl/data``).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision import datasets, transforms

__all__ = ["data_root", "mnist", "mnist_tensors", "to_unit", "to_model_range", "MNIST_FILES"]

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_SPLITS = ("train", "test")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$DNNL_DATA``, else the user cache folder."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("DNNL_DATA", "").strip()
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(cache).expanduser() / "dnnl" / "data"


def _missing_files(root: Path) -> list[str]:
    raw = root / "MNIST" / "raw"
    return [name for name in MNIST_FILES if not (raw / name).is_file()]


def _missing_message(root: Path, missing: list[str], why: str) -> str:
    return (f"MNIST is not in {root / 'MNIST' / 'raw'} ({why}). Missing: {', '.join(missing)}. "
            f"Put the four uncompressed files {', '.join(MNIST_FILES)} in "
            f"'{root / 'MNIST' / 'raw'}/', or point DNNL_DATA (or root=) at a folder that holds MNIST/raw/.")


def mnist(split: str = "train", root: str | os.PathLike | None = None, *,
          download: bool = True) -> datasets.MNIST:
    """MNIST as float32 images of shape (1, 28, 28) in [-1, 1], with int labels.

    Files missing from ``<root>/MNIST/raw/`` are downloaded by torchvision when ``download`` is true
    and the network allows; otherwise a ``FileNotFoundError`` says which files to put where.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test' (got {split!r})")
    folder = data_root(root)
    missing = _missing_files(folder)
    if missing:
        if not download:
            raise FileNotFoundError(_missing_message(folder, missing, "download=False"))
        try:
            datasets.MNIST(root=str(folder), train=True, download=True)
        except Exception as err:  # no network, a proxy, a read-only folder, ...
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise FileNotFoundError(_missing_message(folder, _missing_files(folder),
                                                     f"download failed: {first_line}")) from err
    to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    return datasets.MNIST(root=str(folder), train=(split == "train"), download=False, transform=to_tensor)


def mnist_tensors(split: str = "test", root: str | os.PathLike | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """All of an MNIST split in memory: float32 images (N, 1, 28, 28) in [-1, 1] and int64 labels (N,).

    The same pixels as :func:`mnist` gives one by one, converted at once (no PIL round trip).
    """
    ds = mnist(split, root)
    return to_model_range(ds.data.unsqueeze(1)), ds.targets.clone().long()


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Images in the model's range [-1, 1] to displayable [0, 1], clamped."""
    return ((x + 1) / 2).clamp(0, 1)


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] or float images in [0, 1] to float32 in [-1, 1]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor (got {type(x).__name__})")
    if x.dtype == torch.uint8:
        return x.float().div(127.5).sub(1)
    if not x.is_floating_point():
        raise TypeError(f"x must be uint8 in [0, 255] or float in [0, 1] (got dtype {x.dtype})")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"float x must be in [0, 1] (got min {x.min().item():.3g}, max {x.max().item():.3g}); "
                         "images already in [-1, 1] need no conversion")
    return x * 2 - 1
