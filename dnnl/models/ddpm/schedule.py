"""Noise schedules β_1..β_T and every coefficient derived from them (chapter 1, @eq-alpha-bar).

All buffers are float64 and are cast once, when :meth:`NoiseSchedule.gather` reads them at ``t``.
Index ``t`` is 0-based: ``betas[t]`` is the paper's β_{t+1}.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._validate import check_device, check_t, check_tensor

_BUFFERS = (
    "betas", "alphas", "alpha_bars", "alpha_bars_prev", "sqrt_alpha_bars", "sqrt_one_minus_alpha_bars",
    "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
)


class NoiseSchedule:
    """A variance schedule and its derived float64 buffers.

    - ``alpha_bars`` is ᾱ_t = ∏ α_s (Eq. @eq-alpha-bar); ``alpha_bars_prev[0] = 1``.
    - ``posterior_variance`` is β̃_t (Eq. @eq-posterior-variance), 0 at index 0.
    - ``posterior_log_variance_clipped`` replaces index 0 by log β̃[1], as Ho et al. do.
    - ``posterior_mean_coef1/2`` multiply x_0 and x_t in μ̃_t (Eq. @eq-posterior-mean).
    """

    def __init__(self, betas, *, _min_steps: int = 2):
        if isinstance(betas, Tensor):
            betas = betas.detach()
            device = betas.device
        else:
            device = torch.device("cpu")
        try:
            betas = torch.as_tensor(betas, dtype=torch.float64, device=device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"betas must be a 1-D sequence or tensor of floats (got {type(betas).__name__})") from err
        if betas.ndim != 1:
            raise ValueError(f"betas must be 1-D (got shape {tuple(betas.shape)})")
        if betas.numel() < _min_steps:
            raise ValueError(f"betas must hold at least {_min_steps} steps (got {betas.numel()})")
        if device.type != "meta":
            if not torch.isfinite(betas).all():
                raise ValueError("betas must be finite (found NaN or inf)")
            if not ((betas > 0) & (betas < 1)).all():
                raise ValueError(f"every beta must lie in the open interval (0, 1) "
                                 f"(got min {betas.min().item():.3g}, max {betas.max().item():.3g})")
        self.T = betas.numel()
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)
        self.alpha_bars_prev = torch.cat([betas.new_ones(1), self.alpha_bars[:-1]])
        self.sqrt_alpha_bars = self.alpha_bars.sqrt()
        self.sqrt_one_minus_alpha_bars = (1.0 - self.alpha_bars).sqrt()
        self.posterior_variance = betas * (1.0 - self.alpha_bars_prev) / (1.0 - self.alpha_bars)
        first = self.posterior_variance[1:2] if self.T > 1 else betas[:1]  # a one-step chain has no β̃[1]
        self.posterior_log_variance_clipped = torch.log(torch.cat([first, self.posterior_variance[1:]]))
        self.posterior_mean_coef1 = betas * self.alpha_bars_prev.sqrt() / (1.0 - self.alpha_bars)
        self.posterior_mean_coef2 = (1.0 - self.alpha_bars_prev) * self.alphas.sqrt() / (1.0 - self.alpha_bars)

    # ----------------------------------------------------------------- constructors
    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "NoiseSchedule":
        """β rising linearly from ``beta_start`` to ``beta_end`` (Ho et al.; Eq. @eq-linear-schedule)."""
        _check_T(T)
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1 (got beta_start={beta_start}, beta_end={beta_end})")
        return cls(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "NoiseSchedule":
        """ᾱ_t = f(t)/f(0) with f(t) = cos²((t/T + s)/(1 + s)·π/2), β clipped at ``max_beta`` (Eq. @eq-cosine-schedule)."""
        _check_T(T)
        if not s >= 0:
            raise ValueError(f"s must be >= 0 (got {s})")
        if not 0 < max_beta < 1:
            raise ValueError(f"max_beta must lie in (0, 1) (got {max_beta})")
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
        return cls(betas)

    @classmethod
    def respaced(cls, schedule: "NoiseSchedule", timesteps) -> "NoiseSchedule":
        """The schedule of a strided chain that visits ``timesteps`` (any order), keeping ᾱ at each.

        Its β_i = 1 − ᾱ[τ_i]/ᾱ[τ_{i−1}] are the effective steps of the shorter chain (Eq. @eq-respaced-beta).
        """
        taus = torch.as_tensor(timesteps, dtype=torch.long).flatten().unique(sorted=True)
        check_t(taus, schedule.T, name="timesteps")
        ab = schedule.alpha_bars[taus.to(schedule.device)]
        ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
        return cls(1.0 - ab / ab_prev, _min_steps=1)

    # ----------------------------------------------------------------- helpers
    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device) -> "NoiseSchedule":
        """A copy whose buffers live on ``device`` (still float64)."""
        new = object.__new__(NoiseSchedule)
        new.T = self.T
        for name in _BUFFERS:
            setattr(new, name, getattr(self, name).to(device))
        return new

    def snr(self) -> Tensor:
        """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t), float64 (Eq. @eq-snr)."""
        return self.alpha_bars / (1.0 - self.alpha_bars)

    def gather(self, buffer, t, like: Tensor) -> Tensor:
        """Read ``buffer`` (a name or a length-T tensor) at ``t``, cast to ``like``'s dtype and device.

        The result broadcasts against ``like``: shape (B, 1, …, 1) for a (B,) ``t``, all ones for an int.
        """
        check_tensor(like, "x")
        values = getattr(self, buffer) if isinstance(buffer, str) else buffer
        check_device(self, like, "x")
        t = check_t(t, self.T, batch=like.shape[0] if like.ndim else None)
        out = values[t.to(values.device)].to(device=like.device, dtype=like.dtype)
        if t.ndim == 0:
            return out.reshape((1,) * like.ndim)
        if like.ndim == 0:
            raise ValueError(f"a batch of timesteps (shape {tuple(t.shape)}) needs batched data, got a scalar")
        return out.reshape((-1,) + (1,) * (like.ndim - 1))

    def __len__(self) -> int:
        return self.T

    def __repr__(self) -> str:
        return (f"NoiseSchedule(T={self.T}, beta[0]={self.betas[0].item():.4g}, beta[T-1]={self.betas[-1].item():.4g}, "
                f"alpha_bar[T-1]={self.alpha_bars[-1].item():.4g})")


def _check_T(T) -> None:
    if isinstance(T, bool) or not isinstance(T, int):
        raise TypeError(f"T must be an int (got {type(T).__name__})")
    if T < 2:
        raise ValueError(f"T must be at least 2 (got {T})")
