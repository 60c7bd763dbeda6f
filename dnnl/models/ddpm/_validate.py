"""Argument checks for the public functions: one helper per kind of argument.

Public functions call these once, at their door; the private helpers behind them trust their inputs.
Every message names the argument and what is allowed.
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor


def _is_int_tensor(value) -> bool:
    return isinstance(value, Tensor) and not (value.is_floating_point() or value.is_complex()
                                              or value.dtype == torch.bool)


def check_int(value, name: str, *, low: int | None = 1, high: int | None = None) -> int:
    """``value`` as a Python int in [low, high] (NumPy and 0-d integer tensors accepted; bools, floats refused)."""
    if _is_int_tensor(value) and value.ndim == 0:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int{_allowed(low, high)} (got {type(value).__name__} {value!r})")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be an int{_allowed(low, high)} (got {value})")
    return value


def _fmt(v) -> str:
    return str(v) if isinstance(v, int) else f"{v:g}"


def _allowed(low, high, open_low: bool = False, open_high: bool = False) -> str:
    """' >= 1', ' in [0, 9]', ' in (0, 1)', or '' when unbounded."""
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if open_low else '>='} {_fmt(low)}"
    if low is None:
        return f" {'<' if open_high else '<='} {_fmt(high)}"
    return f" in {'(' if open_low else '['}{_fmt(low)}, {_fmt(high)}{')' if open_high else ']'}"


def check_float(value, name: str, *, low: float | None = None, high: float | None = None,
                open_low: bool = False, open_high: bool = False) -> float:
    """``value`` as a finite Python float in the given range (ints, NumPy and 0-d real tensors accepted)."""
    if isinstance(value, Tensor) and value.ndim == 0 and not (value.is_complex() or value.dtype == torch.bool):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number{_allowed(low, high, open_low, open_high)} "
                        f"(got {type(value).__name__} {value!r})")
    value = float(value)
    bad = not math.isfinite(value)
    bad = bad or (low is not None and (value <= low if open_low else value < low))
    bad = bad or (high is not None and (value >= high if open_high else value > high))
    if bad:
        raise ValueError(f"{name} must be a finite number{_allowed(low, high, open_low, open_high)} (got {value!r})")
    return value


def check_tensor(x, name: str, *, floating: bool = True, min_ndim: int = 0, nonempty: bool = False) -> Tensor:
    """A torch tensor, floating point unless ``floating=False``, with at least ``min_ndim`` dims.

    ``nonempty=True`` also asks for at least one example along the first dimension.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (got {type(x).__name__})")
    if floating and x.is_complex():
        raise TypeError(f"{name} must be a real floating-point tensor (got dtype {x.dtype})")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (got dtype {x.dtype}); "
                        f"convert it with {name}.float(), and scale 8-bit images to [-1, 1] first")
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s) (got shape {tuple(x.shape)})")
    if nonempty and (x.ndim == 0 or x.shape[0] == 0):
        raise ValueError(f"{name} must hold at least one example, i.e. shape[0] >= 1 (got shape {tuple(x.shape)})")
    return x


def check_same_shape(a: Tensor, name_a: str, b: Tensor, name_b: str) -> None:
    """The two shapes are equal: no accidental broadcasting."""
    if a.shape != b.shape:
        raise ValueError(f"{name_b} must have the same shape as {name_a}: "
                         f"{name_a} has {tuple(a.shape)} but {name_b} has {tuple(b.shape)}")


def _min_max(x: Tensor) -> tuple[float, float]:
    """min and max of a non-empty tensor, read with one transfer (one host–device sync off the CPU)."""
    lo, hi = torch.aminmax(x.detach().reshape(-1))
    return tuple(torch.stack([lo, hi]).tolist())


def check_t(t, T: int, *, batch: int | None = None, name: str = "t"):
    """``t`` checked against a T-step schedule: a Python int for an int, an int64 tensor for a tensor.

    Python and NumPy ints and integer tensors of shape () or (B,) are accepted; ``batch`` is the leading
    size of the data ``t`` indexes, which a (B,) ``t`` must match. The range 0..T−1 is always checked:
    for a tensor on an accelerator this reads its min and max back in one host–device sync, which is
    why loops call the private helpers, which take ``t`` unchecked, after checking once at their door.
    """
    if isinstance(t, numbers.Integral) and not isinstance(t, bool):
        lo = hi = int(t)
        t = lo
    elif _is_int_tensor(t):
        if t.ndim > 1:
            raise ValueError(f"{name} must be a scalar or have shape (B,) (got shape {tuple(t.shape)})")
        if t.ndim == 1 and batch is not None and t.shape[0] not in (1, batch):
            raise ValueError(f"{name} must hold one timestep per example or a single one: {name} has "
                             f"{t.shape[0]} timesteps but the batch has {batch} examples")
        t = t.long()
        lo, hi = _min_max(t) if t.numel() else (0, 0)
    elif isinstance(t, Tensor):
        raise TypeError(f"{name} must hold integer timesteps (got dtype {t.dtype}); use {name}.long()")
    else:
        raise TypeError(f"{name} must be a Python int or an int64 tensor of shape (B,) "
                        f"(got {type(t).__name__})")
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
    """Every value of ``x`` is finite and in [lo, hi] (one host–device sync off the CPU)."""
    if not x.numel():
        return
    x_lo, x_hi = _min_max(x)
    if not (math.isfinite(x_lo) and math.isfinite(x_hi)) or x_lo < lo - tol or x_hi > hi + tol:
        raise ValueError(f"{name} must lie in [{lo:g}, {hi:g}] (got values in [{x_lo:.4g}, {x_hi:.4g}]); "
                         "scale 8-bit images with x / 127.5 - 1")
