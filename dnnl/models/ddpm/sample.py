"""Sampling: walk from pure noise back to data (chapter 4), and save what the walk looks like.

- ``steps = T``: Algorithm 2, one :func:`p_sample_step` per timestep (Eq. @eq-p-sample).
- ``steps < T``: the strided chain of :class:`DDPMScheduler` (``set_timesteps`` / ``step``), whose
  steps use the effective β = 1 − ᾱ_t/ᾱ_prev (Eq. @eq-respaced-beta).
- ``method="ddim"``: the deterministic DDIM update (η = 0) on the same timesteps (Eq. @eq-ch4-ddim; Song et al., 2021, Eq. 12 with σ = 0).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._validate import check_schedule, check_tensor, randn_like
from .diffusion import p_sample_step, predict_x0
from .schedule import NoiseSchedule
from .scheduler import DDPMScheduler

__all__ = ["sample", "ddim_step", "sampling_timesteps", "save_grid", "make_grid_image", "save_gif"]

METHODS = ("ddpm", "ddim")


# --------------------------------------------------------------------------- one step

def ddim_step(schedule, eps: Tensor, xt: Tensor, t, *, clip: bool = False) -> Tensor:
    """One DDIM step with η = 0: x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev) ε̂ (Eq. @eq-ch4-ddim; Song et al., 2021, Eq. 12 with σ = 0).

    ``schedule`` may be a strided chain (:meth:`NoiseSchedule.respaced`): its ``alpha_bars_prev[t]`` is
    ᾱ at the previous visited timestep (1 after the last). With ``clip``, x̂_0 is clamped to [−1, 1]
    and ε̂ recomputed from it, so the two stay consistent.
    """
    x0_hat = predict_x0(schedule, xt, t, eps)
    if clip:
        x0_hat = x0_hat.clamp(-1.0, 1.0)
        eps = (xt - schedule.gather("sqrt_alpha_bars", t, xt) * x0_hat) / schedule.gather(
            "sqrt_one_minus_alpha_bars", t, xt)
    ab_prev = schedule.gather("alpha_bars_prev", t, xt)
    return ab_prev.sqrt() * x0_hat + (1.0 - ab_prev).sqrt() * eps


# --------------------------------------------------------------------------- the sampler

def _check_steps(steps, T: int) -> int:
    if steps is None:
        return T
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"steps must be an int or None (got {type(steps).__name__})")
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}] for a schedule with T={T} (got {steps}); "
                         f"use steps=None for all {T} steps")
    return steps


def _check_shape(shape) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list, torch.Size)):
        raise TypeError(f"shape must be a tuple such as (16, 1, 28, 28) (got {type(shape).__name__})")
    shape = tuple(shape)
    if len(shape) < 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"shape must be a tuple of positive ints (batch, *sample_shape), "
                         f"for example (16, 1, 28, 28) (got {shape})")
    return shape


def sampling_timesteps(schedule, steps: int | None = None) -> Tensor:
    """The descending 0-based timesteps a ``steps``-step chain visits ("leading" spacing of DDPMScheduler)."""
    check_schedule(schedule)
    steps = _check_steps(steps, schedule.T)
    return _scheduler(schedule, steps, clip=False).timesteps.clone()


def _scheduler(schedule: NoiseSchedule, steps: int, clip: bool) -> DDPMScheduler:
    """A :class:`DDPMScheduler` that runs on ``schedule`` itself (any β's, not only its built-in ones)."""
    scheduler = DDPMScheduler.from_schedule(schedule, clip_sample=clip)
    scheduler.set_timesteps(steps)
    return scheduler


def _device_and_dtype(model, device, noise) -> tuple[torch.device, torch.dtype]:
    param = None
    if isinstance(model, nn.Module):
        param = next(iter(model.parameters()), None)
    if device is not None:
        device = torch.device(device)
    elif param is not None:
        device = param.device
    elif noise is not None:
        device = noise.device
    else:
        device = torch.device("cpu")
    if param is not None and param.is_floating_point():
        dtype = param.dtype
    elif noise is not None and noise.is_floating_point():
        dtype = noise.dtype
    else:
        dtype = torch.float32
    return device, dtype


def _eps(model, x: Tensor, t: int) -> Tensor:
    out = model(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device))
    if not isinstance(out, Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"model(x, t) must return an ε prediction of x's shape {tuple(x.shape)} (got {got})")
    return out.to(x.dtype)


@torch.no_grad()
def sample(model: nn.Module | Callable[[Tensor, Tensor], Tensor], schedule, shape: Sequence[int], *,
           steps: int | None = None, generator: torch.Generator | None = None, clip: bool = True,
           progress: bool = True, return_trajectory: bool = False, method: str = "ddpm",
           noise: Tensor | None = None, device: torch.device | str | None = None, batch_size: int | None = None):
    """Draw ``shape[0]`` samples by running the reverse process from x_T ~ N(0, I) (Algorithm 2).

    ``model(x, t)`` predicts ε from x and an int64 (B,) ``t``; an ``nn.Module`` runs in eval mode on its
    own device. ``steps`` (default T) visits that many timesteps; ``method`` is ``"ddpm"`` (ancestral)
    or ``"ddim"`` (deterministic, η = 0). ``clip`` clamps x̂_0 to [−1, 1] at every step. ``noise`` fixes
    the starting x_T (shape ``shape``), so settings can be compared on the same noise.

    Returns x_0 of shape ``shape``; with ``return_trajectory`` also the list of states on the CPU,
    from x_T to x_0, and their paper steps: ``timesteps[k]`` is the paper t of ``trajectory[k]``
    (T for the starting noise of a full chain, 0 for the final sample), which the model saw at code
    index ``timesteps[k] - 1``.

    ``batch_size`` bounds memory: the samples are drawn ``batch_size`` at a time, one chunk after another
    from the same ``generator`` (so the result equals separate calls for the chunks, in order); the
    trajectory states are joined along the batch.
    """
    check_schedule(schedule)
    if not callable(model):
        raise TypeError(f"model must be an nn.Module or a callable eps_fn(x, t) (got {type(model).__name__})")
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)} (got {method!r})")
    shape = _check_shape(shape)
    steps = _check_steps(steps, schedule.T)
    device, dtype = _device_and_dtype(model, device, noise)
    if noise is not None:
        check_tensor(noise, "noise")
        if tuple(noise.shape) != shape:
            raise ValueError(f"noise must have shape {shape}, the shape argument (got {tuple(noise.shape)})")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)):
        raise TypeError(f"batch_size must be an int or None (got {type(batch_size).__name__})")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, or None for one batch of {shape[0]} (got {batch_size})")
    n, chunk = shape[0], batch_size or shape[0]
    parts = [_sample_chain(model, schedule, (min(chunk, n - lo), *shape[1:]), steps, generator, clip, progress,
                           return_trajectory, method, None if noise is None else noise[lo:lo + chunk], device, dtype)
             for lo in range(0, n, chunk)]
    if len(parts) == 1:
        return parts[0]
    if not return_trajectory:
        return torch.cat(parts)
    states = [torch.cat(step) for step in zip(*(p[1] for p in parts))]
    return torch.cat([p[0] for p in parts]), states, parts[0][2]


def _sample_chain(model, schedule, shape, steps, generator, clip, progress, return_trajectory, method, noise,
                  device, dtype):
    """One batch of :func:`sample`, its arguments already checked."""
    if noise is None:
        x = randn_like(torch.empty(shape, device=device, dtype=dtype), generator)
    else:
        x = noise.to(device=device, dtype=dtype)

    scheduler = _scheduler(schedule, steps, clip)
    timesteps = scheduler.timesteps.tolist()
    chain = NoiseSchedule.respaced(schedule, timesteps) if method == "ddim" else None

    was_training = model.training if isinstance(model, nn.Module) else None
    if was_training:
        model.eval()
    states, labels = [x.cpu()], [timesteps[0] + 1]  # paper t of each state; 0 is the final sample
    try:
        bar = tqdm(timesteps, desc=f"sampling ({method}, {steps} steps)", disable=not progress, leave=False)
        for i, t in enumerate(bar):
            eps = _eps(model, x, t)
            if method == "ddim":
                x = ddim_step(chain, eps, x, len(timesteps) - 1 - i, clip=clip)
            elif steps == schedule.T:
                x = p_sample_step(schedule, eps, x, t, generator=generator, clip=clip)
            else:
                x = scheduler.step(eps, t, x, generator=generator).prev_sample
            if return_trajectory:
                states.append(x.cpu())
                labels.append(timesteps[i + 1] + 1 if i + 1 < len(timesteps) else 0)
    finally:
        if was_training:
            model.train()
    if return_trajectory:
        return x, states, labels
    return x


# --------------------------------------------------------------------------- pictures

def _check_images(images, name: str = "images") -> Tensor:
    check_tensor(images, name)
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W) (got {tuple(images.shape)})")
    return images.detach().cpu().float()


def _grid(images: Tensor, nrow: int, padding: int) -> Tensor:
    from torchvision.utils import make_grid

    from ...data import to_unit

    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive int (got {nrow!r})")
    return make_grid(to_unit(images), nrow=nrow, padding=padding, pad_value=1.0)


def make_grid_image(images: Tensor, nrow: int = 8, *, padding: int = 2) -> np.ndarray:
    """Images (B, C, H, W) in [−1, 1] as one (H', W', 3) float array in [0, 1], ready for ``plt.imshow``."""
    return _grid(_check_images(images), nrow, padding).permute(1, 2, 0).numpy()


def save_grid(images: Tensor, path: str | os.PathLike, nrow: int = 8, *, padding: int = 2) -> Path:
    """Save images (B, C, H, W) in [−1, 1] as one PNG grid (torchvision ``save_image``); returns the path."""
    from torchvision.utils import save_image

    from ...data import to_unit

    images = _check_images(images)
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive int (got {nrow!r})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(to_unit(images), path, nrow=nrow, padding=padding, pad_value=1.0)
    return path


def save_gif(trajectory: Sequence[Tensor] | Tensor, path: str | os.PathLike, nrow: int = 8, *,
             frames: int = 40, duration_ms: int = 80, hold_last_ms: int = 1500, scale: int = 2) -> Path:
    """An animated GIF of the reverse chain: ``frames`` evenly spaced states of ``trajectory``.

    ``trajectory`` is the list ``sample(..., return_trajectory=True)`` returns (each (B, C, H, W) in
    [−1, 1]) or one (S, B, C, H, W) tensor. The last frame (the samples) is held ``hold_last_ms``;
    ``scale`` enlarges the pixels. Returns the path.
    """
    from PIL import Image

    if isinstance(trajectory, Tensor):
        trajectory = list(trajectory)
    if not isinstance(trajectory, (list, tuple)) or len(trajectory) == 0:
        raise ValueError("trajectory must be a non-empty list of (B, C, H, W) tensors, "
                         "as returned by sample(..., return_trajectory=True)")
    for name, value, low in (("frames", frames, 1), ("duration_ms", duration_ms, 1),
                             ("hold_last_ms", hold_last_ms, 0), ("scale", scale, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low} (got {value!r})")
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
