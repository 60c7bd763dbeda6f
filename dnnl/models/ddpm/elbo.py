"""The variational bound in bits/dim: Gaussian KL, the discretised decoder L_0 and the prior L_T (chapter 3)."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._validate import check_range, check_same_shape, check_schedule, check_tensor, randn_like
from .diffusion import p_mean_variance, predict_x0, q_mean_variance, q_posterior, q_sample

LN2 = math.log(2.0)


def normal_kl(mean1, logvar1, mean2, logvar2) -> Tensor:
    """Elementwise KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) in nats (Eq. @eq-gaussian-kl).

    Arguments broadcast; at least one must be a tensor.
    """
    ref = next((a for a in (mean1, logvar1, mean2, logvar2) if isinstance(a, Tensor)), None)
    if ref is None:
        raise TypeError("normal_kl needs at least one torch.Tensor argument (got only Python numbers)")
    names = ("mean1", "logvar1", "mean2", "logvar2")
    args = []
    for name, a in zip(names, (mean1, logvar1, mean2, logvar2)):
        if isinstance(a, Tensor):
            check_tensor(a, name)
        elif isinstance(a, bool) or not isinstance(a, (int, float)):
            raise TypeError(f"{name} must be a tensor or a number (got {type(a).__name__})")
        else:
            a = torch.tensor(float(a), dtype=ref.dtype, device=ref.device)
        args.append(a)
    m1, lv1, m2, lv2 = args
    return 0.5 * (-1.0 + lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2))


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """Elementwise log-probability (nats) of 8-bit data x ∈ [−1, 1] under N(mean, e^{2·log_scale}) (Eq. @eq-decoder).

    Each of the 256 levels owns a bin of width 2/255; the two edge bins extend to ±∞.
    Φ is computed exactly with ``torch.special.ndtr``/``log_ndtr`` (not the tanh approximation).
    """
    check_tensor(x, "x")
    check_tensor(mean, "mean")
    check_same_shape(x, "x", mean, "mean")
    log_scale = check_tensor(log_scale, "log_scale") if isinstance(log_scale, Tensor) else torch.as_tensor(
        float(log_scale), dtype=x.dtype, device=x.device)
    check_range(x, "x")
    centered = x - mean
    inv_std = torch.exp(-log_scale)
    upper = inv_std * (centered + 1.0 / 255.0)
    lower = inv_std * (centered - 1.0 / 255.0)
    log_cdf_upper = torch.special.log_ndtr(upper)            # log Φ(upper): the open bin at −1
    log_sf_lower = torch.special.log_ndtr(-lower)            # log(1 − Φ(lower)): the open bin at +1
    mass = (torch.special.ndtr(upper) - torch.special.ndtr(lower)).clamp(min=1e-12)
    return torch.where(x < -0.999, log_cdf_upper, torch.where(x > 0.999, log_sf_lower, torch.log(mass)))


def _mean_flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).mean(dim=1) if x.ndim > 1 else x


def prior_bpd(schedule, x0: Tensor) -> Tensor:
    """L_T = KL(q(x_T | x_0) ‖ N(0, I)) in bits/dim, one value per example (Eq. @eq-prior-term)."""
    check_schedule(schedule)
    check_tensor(x0, "x0", min_ndim=1)
    mean, _, log_variance = q_mean_variance(schedule, x0, schedule.T - 1)
    return _mean_flat(normal_kl(mean, log_variance, 0.0, 0.0)) / LN2


def _check_inputs(schedule, eps_fn, x0) -> None:
    check_schedule(schedule)
    check_tensor(x0, "x0", min_ndim=1)
    check_range(x0, "x0")
    if not callable(eps_fn):
        raise TypeError(f"eps_fn must be callable as eps_fn(xt, t) (got {type(eps_fn).__name__})")


def _predictions(schedule, eps_fn, x0: Tensor, generator, stop: int, desc: str, progress: bool):
    """Yield (i, t, x_t, ε̂) for code index i = T−1 down to ``stop``, with one fresh x_t ~ q(x_t | x_0) per step."""
    steps = range(schedule.T - 1, stop - 1, -1)
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc=desc, leave=False)
    for i in steps:
        t = torch.full((x0.shape[0],), i, dtype=torch.long, device=x0.device)
        xt = q_sample(schedule, x0, t, randn_like(x0, generator))
        eps = eps_fn(xt, t)
        check_tensor(eps, "eps_fn(xt, t)")
        check_same_shape(xt, "xt", eps, "eps_fn(xt, t)")
        yield i, t, xt, eps


def _check_variances(variances, T: int) -> Tensor:
    if not isinstance(variances, Tensor):
        raise TypeError(f"variances must be a tensor of shape (T,) = ({T},) (got {type(variances).__name__})")
    if variances.shape != (T,):
        raise ValueError(f"variances must have shape (T,) = ({T},) (got {tuple(variances.shape)})")
    if not (torch.isfinite(variances).all() and (variances > 0).all()):
        raise ValueError("variances must be finite and > 0 (got a value outside (0, inf))")
    return variances.double()


def optimal_variances(schedule, eps_fn, x0: Tensor, *, generator=None, clip: bool = False,
                      progress: bool = False) -> Tensor:
    """The fixed reverse variances that minimise each expected KL term of ``eps_fn`` (Eq. @eq-optimal-variance).

    σ*²_t = β̃_t + c_t² · mean (x_0 − x̂_0)² for t ≥ 1, where c_t multiplies x_0 in μ̃_t (Eq. @eq-posterior-mean)
    and the mean runs over ``x0`` (calibration images, not the ones the bound is reported on), pixels and
    one draw of x_t per image and step; Bao et al. (2022) reach the same optimum from the score. Index 0,
    the discretised decoder, has no such closed form and keeps the fixed σ² = β̃ at paper step 2.
    Returns float64 (T,), for ``vlb_terms(..., variances=...)``.
    """
    _check_inputs(schedule, eps_fn, x0)
    sq_err = torch.zeros(schedule.T, dtype=torch.float64, device=x0.device)
    with torch.no_grad():
        for i, t, xt, eps in _predictions(schedule, eps_fn, x0, generator, 1, "optimal variances", progress):
            x0_hat = predict_x0(schedule, xt, t, eps)
            if clip:
                x0_hat = x0_hat.clamp(-1.0, 1.0)
            sq_err[i] = (x0.double() - x0_hat.double()).pow(2).mean()
    variances = schedule.posterior_variance + schedule.posterior_mean_coef1 ** 2 * sq_err
    variances[0] = schedule.posterior_log_variance_clipped[0].exp()
    return variances


def vlb_terms(schedule, eps_fn, x0: Tensor, *, generator=None, clip: bool = False,
              variances: Tensor | None = None, progress: bool = False) -> dict[str, Tensor]:
    """Every term of the bound (Eq. @eq-vlb-decomposition) in bits/dim, under ``torch.no_grad``.

    ``eps_fn(xt, t)`` predicts ε (t is an int64 (B,) tensor). Returns ``prior_bpd`` (B,), ``terms_bpd``
    (B, T) — index 0 is the decoder term L_0, index t > 0 is KL(q(x_{t−1}|x_t, x_0) ‖ p_θ(x_{t−1}|x_t)) —
    and ``total_bpd`` (B,). Each term uses a fresh draw of x_t. The reverse variances are β̃_t (log
    clipped at t = 0) unless ``variances`` (T,) gives others, e.g. from :func:`optimal_variances`.
    """
    _check_inputs(schedule, eps_fn, x0)
    if variances is not None:
        log_variances = _check_variances(variances, schedule.T).to(x0.device).log()
    terms = torch.zeros(x0.shape[0], schedule.T, dtype=torch.float64, device=x0.device)
    with torch.no_grad():
        for i, t, xt, eps in _predictions(schedule, eps_fn, x0, generator, 0, "VLB terms", progress):
            mean, _, log_variance = p_mean_variance(schedule, eps, xt, t, clip=clip)
            if variances is not None:
                log_variance = log_variances[i].to(mean.dtype).expand_as(mean)
            if i == 0:
                nll = -discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_variance)
                terms[:, 0] = _mean_flat(nll).double() / LN2
            else:
                true_mean, _, true_log_variance = q_posterior(schedule, x0, xt, t)
                kl = normal_kl(true_mean, true_log_variance, mean, log_variance)
                terms[:, i] = _mean_flat(kl).double() / LN2
        prior = prior_bpd(schedule, x0).double()
    return {"prior_bpd": prior, "terms_bpd": terms, "total_bpd": prior + terms.sum(dim=1)}
