"""Argument checks shared by every public function: one helper per kind of argument."""
from __future__ import annotations

import torch
from torch import Tensor


def check_schedule(schedule, name: str = "schedule"):
    from .schedule import NoiseSchedule

    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"{name} must be a NoiseSchedule (got {type(schedule).__name__}); "
                        "build one with NoiseSchedule.linear() or NoiseSchedule.cosine()")
    return schedule


def check_tensor(x, name: str, *, floating: bool = True, min_ndim: int = 0) -> Tensor:
    """A torch tensor, floating point unless ``floating=False``, with at least ``min_ndim`` dims."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (got {type(x).__name__})")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (got dtype {x.dtype}); "
                        f"convert it with {name}.float(), and scale 8-bit images to [-1, 1] first")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s) (got shape {tuple(x.shape)})")
    return x


def check_same_shape(a: Tensor, name_a: str, b: Tensor, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_b} must have the same shape as {name_a}: "
                         f"{name_a} has {tuple(a.shape)} but {name_b} has {tuple(b.shape)}")


def check_t(t, T: int, *, batch: int | None = None, name: str = "t") -> Tensor:
    """Return ``t`` as an int64 tensor: 0-d for a Python int, (B,) for a batch of timesteps.

    ``batch`` is the leading size of the data ``t`` indexes; a (B,) ``t`` must match it.
    """
    if isinstance(t, bool) or not isinstance(t, (int, Tensor)):
        raise TypeError(f"{name} must be a Python int or an int64 tensor of shape (B,) "
                        f"(got {type(t).__name__})")
    if isinstance(t, Tensor):
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{name} must hold integer timesteps (got dtype {t.dtype}); use t.long()")
        if t.ndim > 1:
            raise ValueError(f"{name} must be a scalar or have shape (B,) (got shape {tuple(t.shape)})")
        if t.ndim == 1 and batch is not None and t.shape[0] not in (1, batch):
            raise ValueError(f"{name} has {t.shape[0]} timesteps but the batch has {batch} examples; "
                             "give one timestep per example or a single int")
        t = t.long()
        lo, hi = (int(t.min()), int(t.max())) if t.numel() else (0, 0)
    else:
        lo = hi = t
        t = torch.tensor(t, dtype=torch.long)
    if lo < 0 or hi >= T:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name} must be in [0, {T - 1}] for a schedule with T={T} (got {bad}). "
                         "Code timesteps are 0-based: paper step t is index t-1.")
    return t


def check_device(schedule, x: Tensor, name: str) -> None:
    """A schedule kept on the CPU may serve any device; one moved elsewhere must match ``x``."""
    dev = schedule.device
    if dev.type != "cpu" and dev != x.device:
        raise ValueError(f"the schedule lives on {dev} but {name} is on {x.device}; "
                         f"call schedule.to({name}.device) or keep the schedule on the CPU")


def check_range(x: Tensor, name: str, lo: float = -1.0, hi: float = 1.0, tol: float = 1e-6) -> None:
    if x.numel() and (float(x.min()) < lo - tol or float(x.max()) > hi + tol):
        raise ValueError(f"{name} must lie in [{lo:g}, {hi:g}] (got values in [{float(x.min()):.4g}, "
                         f"{float(x.max()):.4g}]); scale 8-bit images with x / 127.5 - 1")


def randn_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise shaped like ``x``, drawn from ``generator`` (on its own device)."""
    if generator is None:
        return torch.randn_like(x)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None (got {type(generator).__name__})")
    z = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return z.to(x.device)


def randint(high: int, size: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
    """Uniform int64 draws in [0, high), from ``generator`` when given."""
    if generator is None:
        return torch.randint(0, high, (size,), device=device)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None (got {type(generator).__name__})")
    return torch.randint(0, high, (size,), generator=generator, device=generator.device).to(device)
