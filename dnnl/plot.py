"""Pictures for the book: how a reader sees steps, grids and chains.

Everything a reader sees is labelled in paper steps (paper step = code index + 1). Images are
(B, C, H, W) tensors in [−1, 1] with 1 (grey) or 3 (RGB) channels: :func:`make_grid_image` for
``plt.imshow``, :func:`save_grid` for a PNG, :func:`save_gif` for an animated reverse chain.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .models.ddpm._validate import check_int, check_tensor

__all__ = ["paper_step", "step_label", "make_grid_image", "save_grid", "save_gif"]


def paper_step(t) -> int:
    """The paper's step number for code index ``t`` (0-based): ``t + 1``."""
    return check_int(t, "t", low=0) + 1


def step_label(t, *, index: bool = False) -> str:
    """The label a reader sees for code index ``t``: "t = 100" for index 99 (paper steps).

    ``index=True`` adds the code index: "t = 100 (code index 99)".
    """
    p = paper_step(t)
    return f"t = {p} (code index {p - 1})" if index else f"t = {p}"


# --------------------------------------------------------------------------- image grids and GIFs

def _check_images(images, name: str = "images") -> Tensor:
    """(B, C, H, W) with B ≥ 1, C ∈ {1, 3} and every value finite, as a float CPU tensor."""
    check_tensor(images, name)
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W) (got {tuple(images.shape)})")
    if images.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image (got an empty batch of shape {tuple(images.shape)})")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have 1 (grey) or 3 (RGB) channels, shape (B, C, H, W) with C in {{1, 3}} "
                         f"(got C={images.shape[1]})")
    images = images.detach().cpu().float()
    bad = (~torch.isfinite(images)).flatten(1).any(1).nonzero().flatten().tolist()
    if bad:
        shown = ", ".join(map(str, bad[:8])) + (", …" if len(bad) > 8 else "")
        raise ValueError(f"{name} must be finite: image(s) {shown} of {images.shape[0]} hold NaN or inf")
    return images


def _grid(images: Tensor, nrow, padding) -> Tensor:
    from torchvision.utils import make_grid

    from .data import to_unit

    nrow = check_int(nrow, "nrow", low=1)
    padding = check_int(padding, "padding", low=0)
    return make_grid(to_unit(images), nrow=nrow, padding=padding, pad_value=1.0)


def make_grid_image(images: Tensor, nrow: int = 8, *, padding: int = 2) -> np.ndarray:
    """Images (B, C, H, W) in [−1, 1] as one (H', W', 3) float array in [0, 1], ready for ``plt.imshow``."""
    return _grid(_check_images(images), nrow, padding).permute(1, 2, 0).numpy()


def save_grid(images: Tensor, path: str | os.PathLike, nrow: int = 8, *, padding: int = 2) -> Path:
    """Save images (B, C, H, W) in [−1, 1] as one PNG grid; returns the path.

    C is 1 (grey) or 3 (RGB); NaN or inf values are refused rather than drawn as black.
    """
    from torchvision.utils import save_image

    grid = _grid(_check_images(images), nrow, padding)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, path)
    return path


def _check_frames(trajectory) -> list[Tensor]:
    if isinstance(trajectory, Tensor):
        trajectory = list(trajectory)
    if not isinstance(trajectory, (list, tuple)) or len(trajectory) == 0:
        raise ValueError("trajectory must be a non-empty list of (B, C, H, W) tensors, "
                         "as in sample(..., return_trajectory=True).trajectory")
    first = trajectory[0]
    for k, frame in enumerate(trajectory):
        check_tensor(frame, f"trajectory[{k}]")
        if frame.shape != first.shape:
            raise ValueError(f"every frame of trajectory must have one shape: trajectory[{k}] has "
                             f"{tuple(frame.shape)} but trajectory[0] has {tuple(first.shape)}")
    return list(trajectory)


def save_gif(trajectory: Sequence[Tensor] | Tensor, path: str | os.PathLike, nrow: int = 8, *,
             frames: int = 40, duration_ms: int = 80, hold_last_ms: int = 1500, scale: int = 2) -> Path:
    """An animated GIF of the reverse chain: ``frames`` evenly spaced states of ``trajectory``.

    ``trajectory`` is ``sample(..., return_trajectory=True).trajectory`` (each state (B, C, H, W) in
    [−1, 1], all of one shape) or one (S, B, C, H, W) tensor. The last frame (the samples) is held
    ``hold_last_ms``; ``scale`` enlarges the pixels. Returns the path.
    """
    from PIL import Image

    trajectory = _check_frames(trajectory)
    frames, duration_ms = check_int(frames, "frames", low=1), check_int(duration_ms, "duration_ms", low=1)
    hold_last_ms, scale = check_int(hold_last_ms, "hold_last_ms", low=0), check_int(scale, "scale", low=1)
    picks = np.unique(np.linspace(0, len(trajectory) - 1, min(frames, len(trajectory))).round().astype(int))
    images = []
    for k in picks:
        grid = _grid(_check_images(trajectory[k], f"trajectory[{k}]"), nrow, 2)
        array = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        image = Image.fromarray(array[..., 0] if trajectory[k].shape[1] == 1 else array)
        if scale > 1:
            image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
        images.append(image)
    durations = [duration_ms] * (len(images) - 1) + [max(duration_ms, hold_last_ms)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return path
