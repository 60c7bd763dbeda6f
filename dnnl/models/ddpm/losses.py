"""The simplified training objective L_simple (chapter 4, Algorithm 1)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ._rng import _check_generator, randint, randn_like
from ._validate import check_device, check_range, check_same_shape, check_tensor
from .diffusion import _q_sample
from .schedule import check_schedule


def noise_prediction_loss(model, schedule, x0: Tensor, *, generator=None) -> Tensor:
    """L_simple = E_{t, ε} ‖ε − ε_θ(x_t, t)‖², with t uniform over 0..T−1 (Eq. @eq-l-simple).

    ``model(xt, t)`` takes an int64 (B,) ``t`` and returns a tensor of x_t's shape; ``x0`` is a
    non-empty batch of data in [−1, 1], the scale the schedule is built for. Returns the scalar mean
    squared error. The checks read ``x0``'s range (a host–device sync off the CPU); a training loop
    checks its data once and calls ``_noise_prediction_loss``, which makes no sync.
    """
    check_schedule(schedule)
    check_tensor(x0, "x0", min_ndim=1, nonempty=True)
    check_device(schedule, x0, "x0")
    check_range(x0, "x0")
    _check_generator(generator)
    if not callable(model):
        raise TypeError(f"model must be callable as model(xt, t) (got {type(model).__name__})")
    return _noise_prediction_loss(model, schedule, x0, generator=generator)


def _noise_prediction_loss(model, schedule, x0: Tensor, *, generator=None) -> Tensor:
    """L_simple for arguments already checked; only the model's output shape is checked (no sync)."""
    t = randint(schedule.T, x0.shape[0], x0.device, generator)
    noise = randn_like(x0, generator)
    xt = _q_sample(schedule, x0, t, noise)
    eps = model(xt, t)
    check_tensor(eps, "model(xt, t)")
    check_same_shape(noise, "x0", eps, "model(xt, t)")
    return F.mse_loss(eps, noise)
