"""The exact ideal denoiser for an empirical data set, and the score it implies (chapter 5).

When q(x_0) puts mass 1/N on each row of ``data``, the minimiser of L_simple is
ε*(x_t, t) = E[ε | x_t] = Σ_n w_n(x_t) ε_t(x_t | x_0^n) with posterior weights w_n = q(x_0^n | x_t)
(Eq. @eq-yun-identity), and ∇ log q(x_t) = −ε*/√(1 − ᾱ_t) (Eq. @eq-score-identity).
All weights are computed in float64 with a streaming log-sum-exp, ``chunk_size`` rows of ``data`` at a time.
These functions are deliberately general: ``data`` may be any real data set (the toy sets of chapter 5
are not images), so its values are not restricted to [−1, 1].
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._validate import check_device, check_int, check_t, check_tensor
from .schedule import _gather, check_schedule


def _check(schedule, xt: Tensor, t, data: Tensor, chunk_size):
    """Check the arguments every function here takes; return ``t`` checked."""
    check_schedule(schedule)
    check_tensor(xt, "xt", min_ndim=1, nonempty=True)
    check_device(schedule, xt, "xt")
    check_tensor(data, "data", min_ndim=1)
    if data.shape[1:] != xt.shape[1:]:
        raise ValueError(f"data rows must have the shape of one x_t: data is {tuple(data.shape)}, "
                         f"so rows are {tuple(data.shape[1:])}, but xt is {tuple(xt.shape)}")
    if data.shape[0] == 0:
        raise ValueError("data must hold at least one example, i.e. shape[0] >= 1 (got shape "
                         f"{tuple(data.shape)})")
    check_int(chunk_size, "chunk_size", low=1)
    return check_t(t, schedule.T, batch=xt.shape[0])


def _posterior_stats(schedule, xt: Tensor, t, data: Tensor, chunk_size: int, want_mean: bool):
    """log Σ_n exp(−‖x_t − √ᾱ x_0^n‖² / 2(1−ᾱ)) and, optionally, the posterior mean Σ_n w_n x_0^n (float64)."""
    B = xt.shape[0]
    x = xt.reshape(B, -1).to(torch.float64)
    x_sq = (x * x).sum(dim=1, keepdim=True)
    ab = _gather(schedule.alpha_bars, t, x_sq).expand(B, 1)      # (B, 1) float64
    run_max = run_sum = run_mean = None
    for start in range(0, data.shape[0], chunk_size):
        x0 = data[start:start + chunk_size].reshape(-1, x.shape[1]).to(device=xt.device, dtype=torch.float64)
        sq_dist = x_sq - 2 * ab.sqrt() * (x @ x0.T) + ab * (x0 * x0).sum(dim=1)     # ‖x_t − √ᾱ x_0‖², (B, n)
        logits = -sq_dist.clamp(min=0) / (2 * (1 - ab))
        m = logits.max(dim=1, keepdim=True).values
        if run_max is None:
            new_max = m
        else:
            new_max = torch.maximum(run_max, m)
        w = torch.exp(logits - new_max)
        chunk_sum = w.sum(dim=1, keepdim=True)
        if run_max is None:
            run_sum = chunk_sum
            run_mean = w @ x0 if want_mean else None
        else:
            scale = torch.exp(run_max - new_max)
            run_sum = run_sum * scale + chunk_sum
            run_mean = run_mean * scale + w @ x0 if want_mean else None
        run_max = new_max
    log_sum = (run_max + run_sum.log()).squeeze(1)
    mean = (run_mean / run_sum).reshape(xt.shape) if want_mean else None
    return log_sum, mean, ab


def ideal_x0(schedule, xt: Tensor, t, data: Tensor, *, chunk_size: int = 4096) -> Tensor:
    """E[x_0 | x_t] under the empirical data distribution (Tweedie's posterior mean, Eq. @eq-tweedie)."""
    t = _check(schedule, xt, t, data, chunk_size)
    _, mean, _ = _posterior_stats(schedule, xt, t, data, chunk_size, want_mean=True)
    return mean.to(xt.dtype)


def ideal_eps(schedule, xt: Tensor, t, data: Tensor, *, chunk_size: int = 4096) -> Tensor:
    """The exact minimiser of L_simple, E[ε | x_t] = (x_t − √ᾱ_t E[x_0|x_t]) / √(1 − ᾱ_t) (Eq. @eq-yun-identity)."""
    t = _check(schedule, xt, t, data, chunk_size)
    return _ideal_eps(schedule, xt, t, data, chunk_size)


def _ideal_eps(schedule, xt: Tensor, t, data: Tensor, chunk_size: int) -> Tensor:
    _, mean, ab = _posterior_stats(schedule, xt, t, data, chunk_size, want_mean=True)
    shape = (-1,) + (1,) * (xt.ndim - 1)
    ab = ab.reshape(shape)
    eps = (xt.to(torch.float64) - ab.sqrt() * mean) / (1 - ab).sqrt()
    return eps.to(xt.dtype)


def ideal_score(schedule, xt: Tensor, t, data: Tensor, *, chunk_size: int = 4096) -> Tensor:
    """∇_{x_t} log q(x_t) = −E[ε | x_t] / √(1 − ᾱ_t) (Eq. @eq-score-identity)."""
    t = _check(schedule, xt, t, data, chunk_size)
    eps = _ideal_eps(schedule, xt, t, data, chunk_size)
    return -eps / _gather(schedule.sqrt_one_minus_alpha_bars, t, xt)


def log_marginal(schedule, xt: Tensor, t, data: Tensor, *, chunk_size: int = 4096) -> Tensor:
    """log q(x_t) = log (1/N) Σ_n N(x_t; √ᾱ_t x_0^n, (1 − ᾱ_t) I), one value per example (Eq. @eq-marginal).

    Differentiable in ``xt``, so autograd can check the score identity.
    """
    t = _check(schedule, xt, t, data, chunk_size)
    log_sum, _, ab = _posterior_stats(schedule, xt, t, data, chunk_size, want_mean=False)
    D = xt[0].numel()
    log_norm = -0.5 * D * torch.log(2 * math.pi * (1 - ab.squeeze(1))) - math.log(data.shape[0])
    return (log_sum + log_norm).to(xt.dtype)
