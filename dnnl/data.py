"""MNIST in the model's range [-1, 1], and helpers to move between pixel ranges.

The data folder is, in order: the ``root`` argument, the ``DNNL_DATA`` environment variable,
then a user cache folder (``$XDG_CACHE_HOME/dnnl/data``, by default ``~/.cache/dnnl/data``).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torchvision import datasets

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


def _idx_error(path: Path, what: str) -> ValueError:
    return ValueError(f"MNIST file {path} is damaged or not an MNIST file: {what}. Delete it and download it "
                      "again, or put the original uncompressed file there.")


def _check_idx(path: Path, shape_tail: tuple[int, ...]) -> int:
    """Check the IDX header and size of ``path`` (uint8, (N, *shape_tail)); return N."""
    ndim = 1 + len(shape_tail)
    size = path.stat().st_size
    if size == 0:
        raise _idx_error(path, "the file is empty")
    with open(path, "rb") as f:
        header = f.read(4 + 4 * ndim)
    if len(header) < 4 or header[:2] != b"\0\0" or header[2] != 0x08:
        raise _idx_error(path, f"bad magic number {header[:4].hex() or '(none)'} (expected 0000080{ndim}, "
                               "an IDX file of unsigned bytes)")
    if header[3] != ndim:
        raise _idx_error(path, f"it holds a {header[3]}-D array, expected {ndim}-D")
    if len(header) < 4 + 4 * ndim:
        raise _idx_error(path, f"the header is truncated ({size} bytes)")
    dims = [int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if tuple(dims[1:]) != shape_tail:
        raise _idx_error(path, f"items of shape {tuple(dims[1:])}, expected {shape_tail}")
    expected = len(header) + dims[0] * math.prod(shape_tail)
    if size != expected:
        raise _idx_error(path, f"{size} bytes, but its header ({dims[0]} items of shape {shape_tail}) needs "
                               f"{expected}; the file is {'truncated' if size < expected else 'too long'}")
    return dims[0]


def _check_split(folder: Path, split: str) -> None:
    """The images and labels of ``split`` are well-formed IDX files of the same length, labels in 0..9."""
    prefix = "train" if split == "train" else "t10k"
    raw = folder / "MNIST" / "raw"
    images, labels = raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"
    n_images, n_labels = _check_idx(images, (28, 28)), _check_idx(labels, ())
    if n_images != n_labels:
        raise ValueError(f"MNIST files do not match: {images} holds {n_images} images but {labels} holds "
                         f"{n_labels} labels; both must come from the same split")
    top = max(labels.read_bytes()[8:], default=0)
    if top > 9:
        raise _idx_error(labels, f"a label of {top}; MNIST labels are 0..9")


def _torchvision():
    """torchvision's datasets and transforms, imported when MNIST is first loaded: importing torchvision takes
    seconds (it loads torch._dynamo), which ``import dnnl`` should not pay."""
    from torchvision import datasets, transforms

    return datasets, transforms


def _one_line(err: BaseException) -> str:
    """An exception's whole message on one line (torchvision puts the reason after the first line)."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    text = text or type(err).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def mnist(split: str = "train", root: str | os.PathLike | None = None, *,
          download: bool = True) -> datasets.MNIST:
    """MNIST as float32 images of shape (1, 28, 28) in [-1, 1], with int labels.

    Files missing from ``<root>/MNIST/raw/`` are downloaded by torchvision when ``download`` is true
    and the network allows; otherwise a ``FileNotFoundError`` says which files to put where. A damaged
    file (empty, truncated, a bad header, images and labels of different lengths) raises a ``ValueError``
    naming the file and what is wrong.
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test' (got {split!r})")
    datasets, transforms = _torchvision()
    folder = data_root(root)
    missing = _missing_files(folder)
    if missing:
        if not download:
            raise FileNotFoundError(_missing_message(folder, missing, "download=False"))
        try:
            datasets.MNIST(root=str(folder), train=True, download=True)
        except Exception as err:  # no network, a proxy, a read-only folder, ...
            raise FileNotFoundError(_missing_message(folder, _missing_files(folder),
                                                     f"download failed: {_one_line(err)}")) from err
    _check_split(folder, split)
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
