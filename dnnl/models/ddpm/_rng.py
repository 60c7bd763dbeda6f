"""Random draws from an optional ``torch.Generator``, made on the generator's own device.

A generator on the data's device draws in place; one on another device (say a CPU generator for CUDA
data) draws there and copies, which keeps runs reproducible across devices but costs a copy per draw.
"""
from __future__ import annotations

import torch
from torch import Tensor


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None (got {type(generator).__name__})")


def randn_like(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard normal noise shaped like ``x``, drawn from ``generator`` (on its own device)."""
    if generator is None:
        return torch.randn_like(x)
    _check_generator(generator)
    if generator.device == x.device:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def randint(high: int, size: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
    """``size`` uniform int64 draws in [0, high), from ``generator`` when given."""
    if generator is None:
        return torch.randint(0, high, (size,), device=device)
    _check_generator(generator)
    return torch.randint(0, high, (size,), generator=generator, device=generator.device).to(device)
