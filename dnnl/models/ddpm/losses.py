"""The simplified training objective L_simple (chapter 4, Algorithm 1)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ._validate import check_schedule, check_tensor, randint, randn_like
from .diffusion import q_sample


def noise_prediction_loss(model, schedule, x0: Tensor, *, generator=None) -> Tensor:
    """L_simple = E_{t, ε} ‖ε − ε_θ(x_t, t)‖², with t uniform over 0..T−1 (Eq. @eq-l-simple).

    ``model(xt, t)`` takes an int64 (B,) ``t``; returns the scalar mean squared error.
    """
    check_schedule(schedule)
    check_tensor(x0, "x0", min_ndim=1)
    if not callable(model):
        raise TypeError(f"model must be callable as model(xt, t) (got {type(model).__name__})")
    t = randint(schedule.T, x0.shape[0], x0.device, generator)
    noise = randn_like(x0, generator)
    xt = q_sample(schedule, x0, t, noise)
    return F.mse_loss(model(xt, t), noise)
