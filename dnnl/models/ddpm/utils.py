"""The book's short calling style, ``add_noise(x0, betas, t)`` and ``denoise(x0, xt, t, betas)``.

Both build a :class:`NoiseSchedule` from ``betas`` (in float64) and call the package functions.
"""
from __future__ import annotations

from torch import Tensor

from .diffusion import oracle_denoise, q_sample
from .schedule import NoiseSchedule


def add_noise(x0: Tensor, betas, t, noise: Tensor | None = None, *, generator=None) -> Tensor:
    """x_t from x_0 in one jump, for the schedule ``betas`` (Eq. @eq-q-sample)."""
    return q_sample(NoiseSchedule(betas), x0, t, noise, generator=generator)


def denoise(x0: Tensor, xt: Tensor, t, betas, *, generator=None) -> Tensor:
    """One sample of q(x_{t−1} | x_t, x_0), noise z included (Eq. @eq-oracle-step)."""
    return oracle_denoise(NoiseSchedule(betas), x0, xt, t, generator=generator)
