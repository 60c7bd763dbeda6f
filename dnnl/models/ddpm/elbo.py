"""The variational bound in bits/dim: Gaussian KL, the discretised decoder L_0 and the prior L_T (chapter 3)."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._rng import _check_generator, randn_like
from ._validate import check_device, check_float, check_range, check_same_shape, check_tensor
from .schedule import _gather, check_schedule
from .diffusion import _learned_log_variance, _p_mean_variance, _predict_x0, _q_posterior, _q_sample, _split

LN2 = math.log(2.0)
_KL_NAMES = ("mean1", "logvar1", "mean2", "logvar2")


def _check_broadcast(args: list[Tensor], names) -> None:
    """Tensors that are 0-d or share one ndim and broadcast to the shape of one of them: no accidents.

    (B, C, H, W) against (B, 1, 1, 1) is fine; (3,) against (3, 1), or (4,) against (4, 1, 4, 4), is not.
    """
    shaped = [(a, n) for a, n in zip(args, names) if a.ndim]
    shapes = ", ".join(f"{n} {tuple(a.shape)}" for a, n in shaped)
    ndims = {a.ndim for a, _ in shaped}
    try:
        out = torch.broadcast_shapes(*(a.shape for a, _ in shaped))
    except RuntimeError:
        out = None
    if len(ndims) > 1 or (shaped and out not in [a.shape for a, _ in shaped]):
        raise ValueError(f"{', '.join(n for _, n in shaped)} must have one shape, or sizes of 1 where they "
                         f"broadcast against the largest, or be 0-d (got {shapes})")


def normal_kl(mean1, logvar1, mean2, logvar2) -> Tensor:
    """Elementwise KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) in nats (Eq. @eq-gaussian-kl).

    At least one argument must be a tensor; Python numbers and 0-d tensors broadcast, and every other
    tensor has the result's number of dimensions, with size 1 where it broadcasts.
    """
    values = (mean1, logvar1, mean2, logvar2)
    ref = next((a for a in values if isinstance(a, Tensor)), None)
    if ref is None:
        raise TypeError("normal_kl needs at least one torch.Tensor argument (got only Python numbers)")
    args = []
    for name, a in zip(_KL_NAMES, values):
        if isinstance(a, Tensor):
            check_tensor(a, name)
        else:
            a = torch.tensor(check_float(a, name), dtype=ref.dtype, device=ref.device)
        args.append(a)
    _check_broadcast(args, _KL_NAMES)
    return _normal_kl(*args)


def _normal_kl(m1: Tensor, lv1: Tensor, m2, lv2) -> Tensor:
    return 0.5 * (-1.0 + lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2))


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale) -> Tensor:
    """Elementwise log-probability (nats) of 8-bit data x ∈ [−1, 1] under N(mean, e^{2·log_scale}) (Eq. @eq-decoder).

    Each of the 256 levels owns a bin of width 2/255; the two edge bins extend to ±∞.
    Φ is computed exactly with ``torch.special.ndtr``/``log_ndtr`` (not the tanh approximation).
    ``log_scale`` is a number or a tensor that is 0-d or broadcasts to x's shape.
    """
    check_tensor(x, "x")
    check_tensor(mean, "mean")
    check_same_shape(x, "x", mean, "mean")
    if isinstance(log_scale, Tensor):
        check_tensor(log_scale, "log_scale")
        _check_broadcast([x, log_scale], ("x", "log_scale"))
    else:
        log_scale = torch.as_tensor(check_float(log_scale, "log_scale"), dtype=x.dtype, device=x.device)
    check_range(x, "x")
    return _discretized_gaussian_log_likelihood(x, mean, log_scale)


def _discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
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
    """L_T = KL(q(x_T | x_0) ‖ N(0, I)) in bits/dim, one value per example (Eq. @eq-prior-term).

    ``x0`` is image data in [−1, 1], the scale the schedule is built for, with a batch dimension.
    """
    check_schedule(schedule)
    check_tensor(x0, "x0", min_ndim=1, nonempty=True)
    check_device(schedule, x0, "x0")
    check_range(x0, "x0")
    return _prior_bpd(schedule, x0)


def _prior_bpd(schedule, x0: Tensor) -> Tensor:
    last = schedule.T - 1
    mean = _gather(schedule.sqrt_alpha_bars, last, x0) * x0
    log_variance = _gather(torch.log1p(-schedule.alpha_bars), last, x0)
    zero = mean.new_zeros(())
    return _mean_flat(_normal_kl(mean, log_variance, zero, zero)) / LN2


def _check_inputs(schedule, eps_fn, x0, generator) -> None:
    check_schedule(schedule)
    check_tensor(x0, "x0", min_ndim=1, nonempty=True)
    check_device(schedule, x0, "x0")
    check_range(x0, "x0")
    _check_generator(generator)
    if not callable(eps_fn):
        raise TypeError(f"eps_fn must be callable as eps_fn(xt, t) (got {type(eps_fn).__name__})")


def _predictions(schedule, eps_fn, x0: Tensor, generator, stop: int, desc: str, progress: bool,
                 learned: bool = False):
    """Yield (i, t, x_t, ε̂, v) for code index i = T−1 down to ``stop``, one fresh x_t ~ q(x_t | x_0) per step.

    v is the learned-variance output with ``learned`` (eps_fn returns ε and v stacked), else None.
    """
    steps = range(schedule.T - 1, stop - 1, -1)
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc=desc, leave=False)
    for i in steps:
        t = torch.full((x0.shape[0],), i, dtype=torch.long, device=x0.device)
        xt = _q_sample(schedule, x0, t, randn_like(x0, generator))
        out = eps_fn(xt, t)
        check_tensor(out, "eps_fn(xt, t)")
        if learned:
            eps, v = _split(out, x0.shape[1])
        else:
            check_same_shape(xt, "xt", out, "eps_fn(xt, t)")
            eps, v = out, None
        yield i, t, xt, eps, v


def _check_variances(variances, T: int) -> Tensor:
    if not isinstance(variances, Tensor) or variances.is_complex():
        kind = f"dtype {variances.dtype}" if isinstance(variances, Tensor) else type(variances).__name__
        raise TypeError(f"variances must be a tensor of shape (T,) = ({T},), real and > 0 (got {kind})")
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
    _check_inputs(schedule, eps_fn, x0, generator)
    sq_err = torch.zeros(schedule.T, dtype=torch.float64, device=x0.device)
    with torch.no_grad():
        for i, t, xt, eps, _ in _predictions(schedule, eps_fn, x0, generator, 1, "optimal variances", progress):
            x0_hat = _predict_x0(schedule, xt, t, eps)
            if clip:
                x0_hat = x0_hat.clamp(-1.0, 1.0)
            sq_err[i] = (x0.double() - x0_hat.double()).pow(2).mean()
    variances = schedule.posterior_variance + schedule.posterior_mean_coef1 ** 2 * sq_err
    variances[0] = schedule.posterior_log_variance_clipped[0].exp()
    return variances


def vlb_terms(schedule, eps_fn, x0: Tensor, *, generator=None, clip: bool = False,
              variances: Tensor | None = None, learned_variance: bool = False,
              progress: bool = False) -> dict[str, Tensor]:
    """Every term of the bound (Eq. @eq-vlb-decomposition) in bits/dim, under ``torch.no_grad``.

    ``eps_fn(xt, t)`` predicts ε (t is an int64 (B,) tensor). Returns ``prior_bpd`` (B,), ``terms_bpd``
    (B, T) — index 0 is the decoder term L_0, index t > 0 is KL(q(x_{t−1}|x_t, x_0) ‖ p_θ(x_{t−1}|x_t)) —
    and ``total_bpd`` (B,). Each term uses a fresh draw of x_t. The reverse variances are β̃_t (log
    clipped at t = 0) unless ``variances`` (T,) gives others, e.g. from :func:`optimal_variances`, or
    ``learned_variance=True`` says that ``eps_fn`` returns ε and v stacked on the channel axis, whose
    variances are :func:`learned_log_variance` per pixel (Eq. @eq-learned-range).
    """
    _check_inputs(schedule, eps_fn, x0, generator)
    if not isinstance(learned_variance, bool):
        raise TypeError(f"learned_variance must be True or False (got {type(learned_variance).__name__})")
    if learned_variance and (variances is not None or x0.ndim < 2):
        raise ValueError("learned_variance=True takes the variances from the model: pass variances=None, and x0 "
                         "with a channel axis (B, C, ...)")
    if variances is not None:
        log_variances = _check_variances(variances, schedule.T).to(x0.device).log()
    terms = torch.zeros(x0.shape[0], schedule.T, dtype=torch.float64, device=x0.device)
    with torch.no_grad():
        for i, t, xt, eps, v in _predictions(schedule, eps_fn, x0, generator, 0, "VLB terms", progress,
                                             learned_variance):
            mean, _, log_variance = _p_mean_variance(schedule, eps, xt, t, clip)
            if v is not None:
                log_variance = _learned_log_variance(schedule, v.to(mean.dtype), t)
            elif variances is not None:
                log_variance = log_variances[i].to(mean.dtype).expand_as(mean)
            if i == 0:
                nll = -_discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_variance)
                terms[:, 0] = _mean_flat(nll).double() / LN2
            else:
                true_mean, _, true_log_variance = _q_posterior(schedule, x0, xt, t)
                kl = _normal_kl(true_mean, true_log_variance, mean, log_variance)
                terms[:, i] = _mean_flat(kl).double() / LN2
        prior = _prior_bpd(schedule, x0).double()
    return {"prior_bpd": prior, "terms_bpd": terms, "total_bpd": prior + terms.sum(dim=1)}
