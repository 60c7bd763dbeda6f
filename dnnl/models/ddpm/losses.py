"""The simplified training objective L_simple (chapter 4, Algorithm 1) and its min-SNR-γ weighting."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._rng import _check_generator, randint, randn_like
from ._validate import check_device, check_float, check_range, check_same_shape, check_tensor
from .diffusion import _q_sample
from .schedule import check_schedule


def min_snr_weights(schedule, gamma: float) -> Tensor:
    """The min-SNR-γ weight of each timestep for ε-prediction, min(SNR_t, γ) / SNR_t (Eq. @eq-ch4-min-snr).

    float64, shape (T,): 1 where the image is noisier than SNR = γ, smaller towards t = 0, where the
    loss would otherwise spend its effort on noise too faint to change a sample.
    """
    check_schedule(schedule)
    gamma = check_float(gamma, "min_snr_gamma", low=0.0, open_low=True)
    snr = schedule.snr()
    return torch.clamp(snr, max=gamma) / snr


def noise_prediction_loss(model, schedule, x0: Tensor, *, generator=None,
                          min_snr_gamma: float | None = None) -> Tensor:
    """L_simple = E_{t, ε} ‖ε − ε_θ(x_t, t)‖², with t uniform over 0..T−1 (Eq. @eq-l-simple).

    ``min_snr_gamma`` (γ > 0) weights each sample's squared error by :func:`min_snr_weights` at its t
    (Eq. @eq-ch4-min-snr); None keeps every timestep's weight at 1.

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
    weights = None if min_snr_gamma is None else min_snr_weights(schedule, min_snr_gamma)
    return _noise_prediction_loss(model, schedule, x0, generator=generator, weights=weights)


def _noise_prediction_loss(model, schedule, x0: Tensor, *, generator=None, weights: Tensor | None = None) -> Tensor:
    """L_simple for arguments already checked; only the model's output shape is checked (no sync).

    ``weights`` (T,) on x0's device, if given, weights each sample's mean squared error by weights[t].
    """
    t = randint(schedule.T, x0.shape[0], x0.device, generator)
    noise = randn_like(x0, generator)
    xt = _q_sample(schedule, x0, t, noise)
    eps = model(xt, t)
    check_tensor(eps, "model(xt, t)")
    check_same_shape(noise, "x0", eps, "model(xt, t)")
    if weights is None:
        return F.mse_loss(eps, noise)
    dtype = torch.promote_types(eps.dtype, torch.float32)  # bf16 autocast output: the error in fp32
    per_sample = (eps.to(dtype) - noise.to(dtype)).square().flatten(1).mean(1)
    return (weights[t].to(dtype) * per_sample).mean()
