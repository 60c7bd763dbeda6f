"""DDIM: the η family of samplers, its non-Markovian posterior, and the spacing rules (chapter 6).

Song et al. (2021) keep the marginals q(x_t | x_0) of the forward process and change only the
posterior, q_σ(x_prev | x_t, x_0) (Song et al. 2021, Eq. 7). Its variance σ_t(η)² (Song et al. 2021, Eq. 16)
runs from 0 (deterministic DDIM, η = 0) to the DDPM posterior variance β̃ (η = 1); the sampler replaces
x_0 by the network's x̂_0 (Song et al. 2021, Eq. 12).

Every function takes a pair of 0-based timesteps ``t`` (the current one) and ``t_prev`` (the next one
the chain visits, ``-1`` after the last, where ᾱ_prev = 1), so it works on any strided chain. Each
checks its arguments once and calls a private twin that trusts them; coefficients are float64, cast
once to the data's dtype.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import Tensor

from ._rng import _check_generator, randn_like
from ._validate import _is_int_tensor, _min_max, check_device, check_float, check_int, check_same_shape, check_t, \
    check_tensor
from .schedule import SPACINGS, NoiseSchedule, _as_timesteps, check_schedule, timesteps_for  # noqa: F401

__all__ = ["ddim_sigma", "q_sigma_posterior", "ddim_step_eta", "ddim_inversion_step",
           "visits_step_T", "respaced_betas", "rescale_zero_terminal_snr"]



# ----------------------------------------------------------------- checks at the door
def _check_prev(t_prev, T: int, batch, name: str = "t_prev", low: int = -1):
    """``t_prev`` as for :func:`check_t`, but in [low, T − 1]: −1 marks the end of the chain (ᾱ_prev = 1)."""
    end = ", -1 meaning the end of the chain" if low < 0 else ""
    if isinstance(t_prev, numbers.Integral) and not isinstance(t_prev, bool):
        lo = hi = t_prev = int(t_prev)
    elif _is_int_tensor(t_prev):
        if t_prev.ndim > 1 or (t_prev.ndim == 1 and batch is not None and t_prev.shape[0] not in (1, batch)):
            raise ValueError(f"{name} must be a scalar or hold one timestep per example ({batch}) "
                             f"(got shape {tuple(t_prev.shape)})")
        t_prev = t_prev.long()
        lo, hi = _min_max(t_prev) if t_prev.numel() else (0, 0)
    else:
        raise TypeError(f"{name} must be a Python int or an int64 tensor of shape (B,){end} "
                        f"(got {type(t_prev).__name__})")
    if lo < low or hi >= T:
        raise ValueError(f"{name} must be in [{low}, {T - 1}] for a schedule with T={T}{end} "
                         f"(got {lo if lo < low else hi})")
    return t_prev


def _check_order(t, t_prev, names: tuple[str, str]) -> None:
    """Every ``t_prev`` is smaller than its ``t``: the chain runs down."""
    if bool(torch.as_tensor(t_prev >= t).any()):
        raise ValueError(f"{names[1]} must be smaller than {names[0]} (got {names[0]}={t!r}, {names[1]}={t_prev!r})")


def _door(schedule, x: Tensor, name: str, t, t_prev, *others, names=("t", "t_prev")):
    """Check the schedule, ``x``, tensors of its shape, ``t`` and ``t_prev``; return the timesteps checked."""
    check_schedule(schedule)
    check_tensor(x, name, min_ndim=1)
    check_device(schedule, x, name)
    for other, other_name in others:
        check_tensor(other, other_name)
        check_same_shape(x, name, other, other_name)
        check_device(schedule, other, other_name)
    t = check_t(t, schedule.T, batch=x.shape[0], name=names[0])
    t_prev = _check_prev(t_prev, schedule.T, x.shape[0], name=names[1])
    _check_order(t, t_prev, names)
    return t, t_prev


def _check_eta(eta) -> float:
    return check_float(eta, "eta", low=0.0, high=1.0)


# ----------------------------------------------------------------- private twins: no checks
def _at(values: Tensor, t, like: Tensor) -> Tensor:
    """``values[t]`` (float64, kept) on ``like``'s device, shaped to broadcast against ``like``."""
    if isinstance(t, Tensor) and t.device != values.device:
        t = t.to(values.device)
    out = values[t].to(like.device)
    return out.reshape((1,) * like.ndim) if out.ndim == 0 else out.reshape((-1,) + (1,) * (like.ndim - 1))


def _alpha_bars(schedule, t, t_prev, like: Tensor, final: float = 1.0) -> tuple[Tensor, Tensor]:
    """ᾱ_t and ᾱ_prev (``final`` where t_prev = −1), float64, shaped for ``like``."""
    ab = schedule.alpha_bars
    return _at(ab, t, like), _at(torch.cat([ab.new_full((1,), final), ab]), t_prev + 1, like)


def _sigma(ab_t: Tensor, ab_prev: Tensor, eta: float) -> Tensor:
    return eta * ((1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev)).sqrt()


def _x0_and_eps(ab_t: Tensor, xt: Tensor, eps: Tensor, clip: bool):
    """x̂_0 from ε (Eq. @eq-predict-x0); with ``clip`` clamped to [−1, 1] and ε recomputed from it."""
    a, s = ab_t.sqrt().to(xt.dtype), (1.0 - ab_t).sqrt().to(xt.dtype)
    x0_hat = (xt - s * eps) / a
    if not clip:
        return x0_hat, eps
    x0_hat = x0_hat.clamp(-1.0, 1.0)
    return x0_hat, (xt - a * x0_hat) / s


def _ddim_update(ab_prev: Tensor, sigma: Tensor, x0_hat: Tensor, eps: Tensor, z: Tensor | None) -> Tensor:
    """√ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε̂ + σ z (Eq. @eq-ddim-step)."""
    dtype = x0_hat.dtype
    direction = (1.0 - ab_prev - sigma ** 2).clamp(min=0.0).sqrt()
    out = ab_prev.sqrt().to(dtype) * x0_hat + direction.to(dtype) * eps
    return out if z is None else out + sigma.to(dtype) * z


def _noise(xt: Tensor, eta: float, noise, generator):
    if eta == 0.0:
        return None
    return noise if noise is not None else randn_like(xt, generator)


# ----------------------------------------------------------------- the η family
def ddim_sigma(schedule, t, t_prev, eta) -> Tensor:
    """σ_t(η) = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev) (Eq. @eq-ddim-sigma; Song et al. 2021, Eq. 16).

    η = 1 gives the DDPM posterior standard deviation √β̃ of the chain t → t_prev, η = 0 gives 0.
    ``t_prev = -1`` is the end of the chain (ᾱ_prev = 1, so σ = 0). Returns float64, shape () or (B,).
    """
    check_schedule(schedule)
    eta = _check_eta(eta)
    t = check_t(t, schedule.T)
    t_prev = _check_prev(t_prev, schedule.T, t.shape[0] if isinstance(t, Tensor) and t.ndim else None)
    _check_order(t, t_prev, ("t", "t_prev"))
    ab_t, ab_prev = _alpha_bars(schedule, t, t_prev, torch.empty(0, device=schedule.device))
    return _sigma(ab_t, ab_prev, eta).reshape(torch.broadcast_shapes(torch.as_tensor(t).shape,
                                                                     torch.as_tensor(t_prev).shape))


def q_sigma_posterior(schedule, x0: Tensor, xt: Tensor, t, t_prev, eta) -> tuple[Tensor, Tensor]:
    """Mean and variance of q_σ(x_prev | x_t, x_0) (Eq. @eq-ddim-q-sigma; Song et al. 2021, Eq. 7).

    mean = √ᾱ_prev x_0 + √(1 − ᾱ_prev − σ²)·(x_t − √ᾱ_t x_0)/√(1 − ᾱ_t), variance σ_t(η)². For every η,
    x_t ~ q(x_t | x_0) followed by this step gives x_prev ~ q(x_prev | x_0) (Eq. @eq-ddim-marginal).
    """
    t, t_prev = _door(schedule, xt, "xt", t, t_prev, (x0, "x0"))
    eta = _check_eta(eta)
    ab_t, ab_prev = _alpha_bars(schedule, t, t_prev, xt)
    sigma = _sigma(ab_t, ab_prev, eta)
    eps = (xt - ab_t.sqrt().to(xt.dtype) * x0) / (1.0 - ab_t).sqrt().to(xt.dtype)
    return _ddim_update(ab_prev, sigma, x0, eps, None), (sigma ** 2).to(xt.dtype).expand_as(xt)


def ddim_step_eta(schedule, eps: Tensor, xt: Tensor, t, t_prev, *, eta, noise: Tensor | None = None,
                  generator=None, clip: bool = False) -> Tensor:
    """One generalized DDIM step x_t → x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε̂ + σ z (Eq. @eq-ddim-step).

    σ = σ_t(η) of :func:`ddim_sigma`; η = 1 with t_prev = t − 1 is the DDPM step (Algorithm 2), η = 0
    deterministic DDIM. ``z`` is ``noise`` when given, else drawn from ``generator`` (none is drawn for
    η = 0). With ``clip=True``, x̂_0 is clamped to [−1, 1] and ε̂ is recomputed from the clamped x̂_0,
    ε̂ = (x_t − √ᾱ_t x̂_0)/√(1 − ᾱ_t), so both terms describe the same x_t.
    """
    others = ((eps, "eps"),) + (() if noise is None else ((noise, "noise"),))
    t, t_prev = _door(schedule, xt, "xt", t, t_prev, *others)
    eta = _check_eta(eta)
    _check_generator(generator)
    if noise is not None and generator is not None:
        raise ValueError("give either noise or generator, not both (noise is the z of the step itself)")
    if not isinstance(clip, bool):
        raise TypeError(f"clip must be True or False (got {type(clip).__name__} {clip!r})")
    ab_t, ab_prev = _alpha_bars(schedule, t, t_prev, xt)
    x0_hat, eps = _x0_and_eps(ab_t, xt, eps, clip)
    return _ddim_update(ab_prev, _sigma(ab_t, ab_prev, eta), x0_hat, eps, _noise(xt, eta, noise, generator))


def ddim_inversion_step(schedule, eps: Tensor, x: Tensor, t, t_next) -> Tensor:
    """DDIM run backwards, x_t → x_next = √ᾱ_next x̂_0 + √(1 − ᾱ_next) ε̂ with t_next > t (Eq. @eq-ddim-inversion).

    ``t = -1`` starts from clean data (ᾱ = 1). With the same ε̂ it exactly undoes :func:`ddim_step_eta`
    at η = 0 from t_next to t (both are one affine map of x and its inverse). In practice ε̂ is the
    network's at (x_t, t), an approximation that improves as the steps shrink.
    """
    t_next, t = _door(schedule, x, "x", t_next, t, (eps, "eps"), names=("t_next", "t"))
    ab_next, ab_t = _alpha_bars(schedule, t_next, t, x)
    a, s = ab_t.sqrt().to(x.dtype), (1.0 - ab_t).sqrt().to(x.dtype)
    return _ddim_update(ab_next, torch.zeros_like(ab_next), (x - s * eps) / a, eps, None)


def visits_step_T(timesteps, T) -> bool:
    """Whether a chain visiting ``timesteps`` (0-based) starts at paper step T, i.e. index T − 1.

    "trailing" chains do; "leading" ones with steps < T do not (10 of 1000 start at paper step 901), so
    their first step sees an x_T that is purer noise than the one the network was trained on there.
    """
    T = check_int(T, "T", low=1)
    taus = _as_timesteps(timesteps)
    check_t(taus, T, name="timesteps")
    return int(taus[-1]) == T - 1


def respaced_betas(schedule, timesteps) -> Tensor:
    """β′_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_{i−1}}, ᾱ_{τ_0} = 1, of the chain visiting ``timesteps`` (Eq. @eq-respaced-beta).

    Ascending in τ, float64: the β's of :meth:`NoiseSchedule.respaced`, which this reads.
    """
    return NoiseSchedule.respaced(schedule, timesteps).betas


def rescale_zero_terminal_snr(betas) -> Tensor:
    """β's whose √ᾱ is shifted and scaled to reach 0 at the last step, keeping √ᾱ_1 (Eq. @eq-ddim-zero-snr).

    Lin et al. (2023), Algorithm 1: √ᾱ′ = (√ᾱ − √ᾱ_T)·√ᾱ_1/(√ᾱ_1 − √ᾱ_T). The last β′ is 1 (SNR 0 at
    paper step T), so x̂_0 cannot be read from an ε prediction there: such schedules go with v or x_0
    prediction, and a :class:`NoiseSchedule` (which asks β < 1) cannot hold them. Float64.
    """
    s = NoiseSchedule(betas).sqrt_alpha_bars
    s = (s - s[-1]) * s[0] / (s[0] - s[-1])
    ab = s ** 2
    return 1.0 - torch.cat([ab[:1], ab[1:] / ab[:-1]])
