"""The forward process and the Gaussian posteriors of the reverse step (chapters 1 and 2).

Every function is one equation of the book; ``t`` is a 0-based index (paper step t+1).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._validate import check_same_shape, check_schedule, check_t, check_tensor, randn_like


def _setup(schedule, x: Tensor, name: str, t) -> Tensor:
    """Validate the common arguments; return ``t`` as a tensor."""
    check_schedule(schedule)
    check_tensor(x, name)
    return check_t(t, schedule.T, batch=x.shape[0] if x.ndim else None)


def _noise_mask(t: Tensor, like: Tensor) -> Tensor:
    """1 where t > 0 and 0 at t = 0, shaped to broadcast against ``like`` (no noise on the last step)."""
    mask = (t > 0).to(device=like.device, dtype=like.dtype)
    return mask.reshape((1,) * like.ndim) if t.ndim == 0 else mask.reshape((-1,) + (1,) * (like.ndim - 1))


def q_mean_variance(schedule, x0: Tensor, t) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, variance and log-variance of q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) (Eq. @eq-q-xt-x0)."""
    _setup(schedule, x0, "x0", t)
    mean = schedule.gather("sqrt_alpha_bars", t, x0) * x0
    variance = schedule.gather(1.0 - schedule.alpha_bars, t, x0).expand_as(x0)
    log_variance = schedule.gather(torch.log1p(-schedule.alpha_bars), t, x0).expand_as(x0)
    return mean, variance, log_variance


def q_sample(schedule, x0: Tensor, t, noise: Tensor | None = None, *, generator=None) -> Tensor:
    """Draw x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε in one jump (Eq. @eq-q-sample)."""
    _setup(schedule, x0, "x0", t)
    if noise is None:
        noise = randn_like(x0, generator)
    else:
        check_tensor(noise, "noise")
        check_same_shape(x0, "x0", noise, "noise")
    return schedule.gather("sqrt_alpha_bars", t, x0) * x0 + schedule.gather("sqrt_one_minus_alpha_bars", t, x0) * noise


def q_posterior(schedule, x0: Tensor, xt: Tensor, t) -> tuple[Tensor, Tensor, Tensor]:
    """Mean μ̃_t, variance β̃_t and clipped log-variance of q(x_{t−1} | x_t, x_0) (Eqs. @eq-posterior-mean, @eq-posterior-variance)."""
    _setup(schedule, x0, "x0", t)
    check_tensor(xt, "xt")
    check_same_shape(x0, "x0", xt, "xt")
    mean = schedule.gather("posterior_mean_coef1", t, xt) * x0 + schedule.gather("posterior_mean_coef2", t, xt) * xt
    variance = schedule.gather("posterior_variance", t, xt).expand_as(xt)
    log_variance = schedule.gather("posterior_log_variance_clipped", t, xt).expand_as(xt)
    return mean, variance, log_variance


def oracle_denoise(schedule, x0: Tensor, xt: Tensor, t, *, generator=None) -> Tensor:
    """One sample of q(x_{t−1} | x_t, x_0): μ̃_t + √β̃_t·z, z ~ N(0, I), and just μ̃ at t = 0 (Eq. @eq-oracle-step)."""
    mean, variance, _ = q_posterior(schedule, x0, xt, t)
    t = check_t(t, schedule.T, batch=xt.shape[0] if xt.ndim else None)
    z = randn_like(xt, generator)
    return mean + _noise_mask(t, xt) * variance.sqrt() * z


def predict_x0(schedule, xt: Tensor, t, eps: Tensor) -> Tensor:
    """x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t, the forward jump solved for x_0 (Eq. @eq-predict-x0)."""
    _setup(schedule, xt, "xt", t)
    check_tensor(eps, "eps")
    check_same_shape(xt, "xt", eps, "eps")
    return (xt - schedule.gather("sqrt_one_minus_alpha_bars", t, xt) * eps) / schedule.gather("sqrt_alpha_bars", t, xt)


def p_mean_variance(schedule, eps: Tensor, xt: Tensor, t, *, clip: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, variance and log-variance of p_θ(x_{t−1} | x_t) given an ε prediction (Eq. @eq-mu-theta).

    The variance is fixed to β̃_t (log clipped at t = 0); ``clip=True`` clamps x̂_0 to [−1, 1] first.
    """
    x0_hat = predict_x0(schedule, xt, t, eps)
    if clip:
        x0_hat = x0_hat.clamp(-1.0, 1.0)
    return q_posterior(schedule, x0_hat, xt, t)


def p_sample_step(schedule, eps: Tensor, xt: Tensor, t, *, generator=None, clip: bool = False) -> Tensor:
    """One step of Algorithm 2: x_{t−1} = μ_θ + σ_t z, with no noise on the last step (Eq. @eq-p-sample)."""
    mean, _, log_variance = p_mean_variance(schedule, eps, xt, t, clip=clip)
    t = check_t(t, schedule.T, batch=xt.shape[0] if xt.ndim else None)
    z = randn_like(xt, generator)
    return mean + _noise_mask(t, xt) * (0.5 * log_variance).exp() * z
