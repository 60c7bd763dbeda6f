"""The forward process and the Gaussian posteriors of the reverse step (chapters 1 to 3).

Every function is one equation of the book; ``t`` is a 0-based index (paper step t+1).
Each public function checks its arguments once and calls a private twin (``_q_sample`` for
``q_sample``, ...) that trusts them: loops check once at their door, then call the twins, so a
reverse step makes no host–device sync when the schedule lives on the data's device.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._rng import _check_generator, randn_like
from ._validate import check_device, check_int, check_same_shape, check_t, check_tensor
from .schedule import _gather, check_schedule


def _setup(schedule, x: Tensor, name: str, t, *others: tuple[Tensor, str]):
    """Check the schedule, ``x``, tensors that must share its shape, and ``t``; return ``t`` checked."""
    check_schedule(schedule)
    check_tensor(x, name)
    check_device(schedule, x, name)
    for other, other_name in others:
        check_tensor(other, other_name)
        check_same_shape(x, name, other, other_name)
        check_device(schedule, other, other_name)
    t = check_t(t, schedule.T, batch=x.shape[0] if x.ndim else None)
    if x.ndim == 0 and isinstance(t, Tensor) and t.ndim == 1:
        raise ValueError(f"a batch of timesteps (shape {tuple(t.shape)}) needs batched data, "
                         f"but {name} is a scalar")
    return t


def _noise_mask(t, like: Tensor):
    """1 where t > 0 and 0 at t = 0, shaped to broadcast against ``like`` (no noise on the last step)."""
    if not isinstance(t, Tensor):
        return 1.0 if t > 0 else 0.0
    mask = (t > 0).to(device=like.device, dtype=like.dtype)
    return mask.reshape((1,) * like.ndim) if t.ndim == 0 else mask.reshape((-1,) + (1,) * (like.ndim - 1))


# At paper step 1 β̃ is 0: there the learned range runs from β_1 · DECODER_FLOOR (v = −1) up to β_1 (v = +1).
DECODER_FLOOR = 1e-4


# ----------------------------------------------------------------- private twins: no checks
def _q_sample(schedule, x0: Tensor, t, noise: Tensor) -> Tensor:
    return _gather(schedule.sqrt_alpha_bars, t, x0) * x0 + _gather(schedule.sqrt_one_minus_alpha_bars, t, x0) * noise


def _q_posterior(schedule, x0: Tensor, xt: Tensor, t) -> tuple[Tensor, Tensor, Tensor]:
    mean = _gather(schedule.posterior_mean_coef1, t, xt) * x0 + _gather(schedule.posterior_mean_coef2, t, xt) * xt
    variance = _gather(schedule.posterior_variance, t, xt).expand_as(xt)
    log_variance = _gather(schedule.posterior_log_variance_clipped, t, xt).expand_as(xt)
    return mean, variance, log_variance


def _predict_x0(schedule, xt: Tensor, t, eps: Tensor) -> Tensor:
    return (xt - _gather(schedule.sqrt_one_minus_alpha_bars, t, xt) * eps) / _gather(schedule.sqrt_alpha_bars, t, xt)


def _p_mean_variance(schedule, eps: Tensor, xt: Tensor, t, clip: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    x0_hat = _predict_x0(schedule, xt, t, eps)
    if clip:
        x0_hat = x0_hat.clamp(-1.0, 1.0)
    return _q_posterior(schedule, x0_hat, xt, t)


def _range_ends(schedule) -> tuple[Tensor, Tensor]:
    """(log of the lower end, log β) per code step, float64 (T,): β̃_t, and β_1 × DECODER_FLOOR at t = 0."""
    log_beta = schedule.betas.log()
    low = schedule.posterior_variance.clamp(min=1e-300).log()
    low[0] = log_beta[0] + math.log(DECODER_FLOOR)
    return low, log_beta


def _learned_log_variance(schedule, v: Tensor, t) -> Tensor:
    low, high = _range_ends(schedule)
    frac = (v + 1.0) / 2.0
    return frac * _gather(high, t, v) + (1.0 - frac) * _gather(low, t, v)


def _split(out: Tensor, channels: int) -> tuple[Tensor, Tensor]:
    if not isinstance(out, Tensor) or out.ndim < 2 or out.shape[1] != 2 * channels:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"a learned-variance model must return 2 x {channels} channels, ε then v "
                         f"(got shape {got}); build it with UNet(out_channels={2 * channels})")
    return out[:, :channels], out[:, channels:]


def _p_sample_step(schedule, eps: Tensor, xt: Tensor, t, *, generator=None, clip: bool = False) -> Tensor:
    mean, _, log_variance = _p_mean_variance(schedule, eps, xt, t, clip)
    z = randn_like(xt, generator)
    return mean + _noise_mask(t, xt) * (0.5 * log_variance).exp() * z


# ----------------------------------------------------------------- the public functions
def q_mean_variance(schedule, x0: Tensor, t) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, variance and log-variance of q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I) (Eq. @eq-q-xt-x0)."""
    t = _setup(schedule, x0, "x0", t)
    mean = _gather(schedule.sqrt_alpha_bars, t, x0) * x0
    variance = _gather(1.0 - schedule.alpha_bars, t, x0).expand_as(x0)
    log_variance = _gather(torch.log1p(-schedule.alpha_bars), t, x0).expand_as(x0)
    return mean, variance, log_variance


def q_sample(schedule, x0: Tensor, t, noise: Tensor | None = None, *, generator=None) -> Tensor:
    """Draw x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε in one jump (Eq. @eq-q-sample)."""
    t = _setup(schedule, x0, "x0", t, *(() if noise is None else ((noise, "noise"),)))
    _check_generator(generator)
    if noise is None:
        noise = randn_like(x0, generator)
    return _q_sample(schedule, x0, t, noise)


def q_posterior(schedule, x0: Tensor, xt: Tensor, t) -> tuple[Tensor, Tensor, Tensor]:
    """Mean μ̃_t, variance β̃_t and clipped log-variance of q(x_{t−1} | x_t, x_0) (Eqs. @eq-posterior-mean, @eq-posterior-variance)."""
    t = _setup(schedule, x0, "x0", t, (xt, "xt"))
    return _q_posterior(schedule, x0, xt, t)


def oracle_denoise(schedule, x0: Tensor, xt: Tensor, t, *, generator=None) -> Tensor:
    """One sample of q(x_{t−1} | x_t, x_0): μ̃_t + √β̃_t·z, z ~ N(0, I), and just μ̃ at t = 0 (Eq. @eq-oracle-step)."""
    t = _setup(schedule, x0, "x0", t, (xt, "xt"))
    _check_generator(generator)
    mean, variance, _ = _q_posterior(schedule, x0, xt, t)
    z = randn_like(xt, generator)
    return mean + _noise_mask(t, xt) * variance.sqrt() * z


def predict_x0(schedule, xt: Tensor, t, eps: Tensor) -> Tensor:
    """x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t, the forward jump solved for x_0 (Eq. @eq-predict-x0)."""
    t = _setup(schedule, xt, "xt", t, (eps, "eps"))
    return _predict_x0(schedule, xt, t, eps)


def p_mean_variance(schedule, eps: Tensor, xt: Tensor, t, *, clip: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, variance and log-variance of p_θ(x_{t−1} | x_t) given an ε prediction (Eq. @eq-mu-theta).

    The variance is fixed to β̃_t (log clipped at t = 0); ``clip=True`` clamps x̂_0 to [−1, 1] first.
    """
    t = _setup(schedule, xt, "xt", t, (eps, "eps"))
    return _p_mean_variance(schedule, eps, xt, t, clip)


def learned_log_variance(schedule, v: Tensor, t) -> Tensor:
    """log σ²_θ = frac · log β_t + (1 − frac) · log β̃_t with frac = (v + 1)/2 (Eq. @eq-learned-range).

    ``v`` is a learned-variance network's second output (:func:`split_prediction`), any real value: frac
    is not clamped, as in Nichol & Dhariwal and diffusers' ``"learned_range"``. At t = 0, where β̃ = 0, the
    lower end is β_1 × ``DECODER_FLOOR``, so the decoder L_0 can narrow below β_1 where it is sure.
    """
    t = _setup(schedule, v, "v", t)
    return _learned_log_variance(schedule, v, t)


def split_prediction(out: Tensor, channels: int) -> tuple[Tensor, Tensor]:
    """(ε, v) from a learned-variance U-Net's output of 2 × ``channels`` channels, ε first (as in diffusers)."""
    return _split(out, check_int(channels, "channels", low=1))


def p_sample_step(schedule, eps: Tensor, xt: Tensor, t, *, generator=None, clip: bool = False) -> Tensor:
    """One step of Algorithm 2: x_{t−1} = μ_θ + σ_t z, with no noise on the last step (Eq. @eq-p-sample)."""
    t = _setup(schedule, xt, "xt", t, (eps, "eps"))
    _check_generator(generator)
    return _p_sample_step(schedule, eps, xt, t, generator=generator, clip=clip)
