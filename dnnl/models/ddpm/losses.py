"""The training objectives: L_simple (chapter 4, Algorithm 1), its min-SNR-γ weighting, and L_hybrid (chapter 3),
which also trains a learned variance (Nichol & Dhariwal, 2021)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._rng import _check_generator, randint, randn_like
from ._validate import check_device, check_float, check_range, check_same_shape, check_tensor
from .diffusion import _learned_log_variance, _p_mean_variance, _q_posterior, _q_sample, _split
from .elbo import _discretized_gaussian_log_likelihood, _normal_kl
from .schedule import check_schedule


def _check_loss_args(model, schedule, x0, generator, *, min_ndim: int) -> None:
    """The checks both losses share: schedule, a non-empty batch x0 in [−1, 1] on its device, generator, model."""
    check_schedule(schedule)
    check_tensor(x0, "x0", min_ndim=min_ndim, nonempty=True)
    check_device(schedule, x0, "x0")
    check_range(x0, "x0")
    _check_generator(generator)
    if not callable(model):
        raise TypeError(f"model must be callable as model(xt, t) (got {type(model).__name__})")


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
    _check_loss_args(model, schedule, x0, generator, min_ndim=1)
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


# --------------------------------------------------------------------------- L_hybrid (chapter 3)

def _vlb_nats(schedule, x0: Tensor, xt: Tensor, t: Tensor, eps: Tensor, v: Tensor) -> Tensor:
    """L_{t−1} per sample in nats/dim with the mean held fixed: the KL for t > 0, the decoder NLL at t = 0."""
    mean, _, _ = _p_mean_variance(schedule, eps.detach(), xt, t)
    log_variance = _learned_log_variance(schedule, v, t)
    true_mean, _, true_log_variance = _q_posterior(schedule, x0, xt, t)
    kl = _normal_kl(true_mean, true_log_variance, mean, log_variance).flatten(1).mean(1)
    nll = -_discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_variance).flatten(1).mean(1)
    return torch.where(t == 0, nll, kl)


def _draw_t(T: int, n: int, device, generator, decoder_share: float | None) -> tuple[Tensor, Tensor]:
    """t and its importance weight 1/(T p_t): uniform, or t = 0 with probability ``decoder_share``."""
    if decoder_share is None:
        return randint(T, n, device, generator), torch.ones(n, device=device)
    at_zero = randint(1_000_000, n, device, generator) < round(decoder_share * 1_000_000)
    t = torch.where(at_zero, 0, randint(T - 1, n, device, generator) + 1)
    weight = torch.where(at_zero, 1.0 / (T * decoder_share), (T - 1) / (T * (1.0 - decoder_share)))
    return t, weight.float()


def _hybrid_loss(model, schedule, x0: Tensor, *, vlb_weight: float, decoder_share: float | None = None,
                 weights: Tensor | None = None, generator=None) -> Tensor:
    """L_hybrid for arguments already checked; only the model's output shape is checked (no sync)."""
    t, importance = _draw_t(schedule.T, x0.shape[0], x0.device, generator, decoder_share)
    noise = randn_like(x0, generator)
    xt = _q_sample(schedule, x0, t, noise)
    eps, v = _split(model(xt, t), x0.shape[1])
    dtype = torch.promote_types(eps.dtype, torch.float32)  # bf16 autocast output: the terms in fp32
    eps, v = eps.to(dtype), v.to(dtype)
    mse = (eps - noise.to(dtype)).square().flatten(1).mean(1)
    if weights is not None:
        mse = weights[t].to(dtype) * mse
    vlb = _vlb_nats(schedule, x0.to(dtype), xt.to(dtype), t, eps, v)
    return (importance.to(dtype) * (mse + vlb_weight * schedule.T * vlb)).mean()


def hybrid_loss(model, schedule, x0: Tensor, *, vlb_weight: float = 1e-3, decoder_share: float | None = None,
                min_snr_gamma: float | None = None, generator=None) -> Tensor:
    """L_hybrid = L_simple + λ L_vlb, with the mean in L_vlb held fixed (Eq. @eq-l-hybrid; λ = ``vlb_weight``).

    ``model(xt, t)`` returns ε and v stacked on the channel axis (:func:`split_prediction`); ``x0`` is a batch
    of 8-bit images in [−1, 1]. L_vlb = Σ_t L_t is estimated from one t per image: uniform, as in Nichol &
    Dhariwal, or, with ``decoder_share`` in (0, 1), t = 0 with that probability and uniform over the rest,
    each image weighted by 1/(T p_t), so both terms keep their expectation and the decoder is seen more often.
    ``min_snr_gamma`` weights the L_simple part as in :func:`noise_prediction_loss`.
    """
    _check_loss_args(model, schedule, x0, generator, min_ndim=2)
    vlb_weight = check_float(vlb_weight, "vlb_weight", low=0.0)
    if decoder_share is not None:
        decoder_share = check_float(decoder_share, "decoder_share (None or a float)", low=0.0, high=1.0,
                                    open_low=True, open_high=True)
    weights = None if min_snr_gamma is None else min_snr_weights(schedule, min_snr_gamma)
    return _hybrid_loss(model, schedule, x0, vlb_weight=vlb_weight, decoder_share=decoder_share, weights=weights,
                        generator=generator)
