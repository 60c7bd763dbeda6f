"""Noise schedules β_1..β_T and every coefficient derived from them (chapter 1, @eq-alpha-bar).

All buffers are float64 and are cast once, when :meth:`NoiseSchedule.gather` reads them at ``t``.
Index ``t`` is 0-based: ``betas[t]`` is the paper's β_{t+1}.
"""
from __future__ import annotations

import math

import numpy as np

import torch
from torch import Tensor

from ._validate import check_device, check_float, check_int, check_t, check_tensor


def check_schedule(schedule, name: str = "schedule") -> "NoiseSchedule":
    """``schedule`` is a :class:`NoiseSchedule`."""
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"{name} must be a NoiseSchedule (got {type(schedule).__name__}); "
                        "build one with NoiseSchedule.linear() or NoiseSchedule.cosine()")
    return schedule


def _gather(values: Tensor, t, like: Tensor) -> Tensor:
    """``values[t]`` cast to ``like``'s dtype and device, shaped to broadcast against it. No checks.

    ``t`` is a Python int or an int64 tensor of shape () or (B,), already in range. No host–device
    sync when ``values`` and a tensor ``t`` live on ``like``'s device.
    """
    if isinstance(t, Tensor) and t.device != values.device:
        t = t.to(values.device)
    out = values[t].to(device=like.device, dtype=like.dtype)
    if out.ndim == 0:
        return out.reshape((1,) * like.ndim)
    return out.reshape((-1,) + (1,) * (like.ndim - 1))


class NoiseSchedule:
    """A variance schedule and its derived float64 buffers.

    - ``alpha_bars`` is ᾱ_t = ∏ α_s (Eq. @eq-alpha-bar); ``alpha_bars_prev[0] = 1``.
    - ``posterior_variance`` is β̃_t (Eq. @eq-posterior-variance), 0 at index 0.
    - ``posterior_log_variance_clipped`` replaces index 0 by log β̃[1], as Ho et al. do.
    - ``posterior_mean_coef1/2`` multiply x_0 and x_t in μ̃_t (Eq. @eq-posterior-mean).
    """

    def __init__(self, betas, *, _min_steps: int = 2):
        betas = _as_betas(betas)
        device = betas.device
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
        T = check_int(T, "T", low=2)
        beta_start = check_float(beta_start, "beta_start", low=0, high=1, open_low=True, open_high=True)
        beta_end = check_float(beta_end, "beta_end", low=0, high=1, open_low=True, open_high=True)
        if beta_start > beta_end:
            raise ValueError(f"beta_start must be <= beta_end, both in (0, 1) "
                             f"(got beta_start={beta_start}, beta_end={beta_end})")
        return cls(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "NoiseSchedule":
        """ᾱ_t = f(t)/f(0) with f(t) = cos²((t/T + s)/(1 + s)·π/2), β clipped at ``max_beta`` (Eq. @eq-cosine-schedule)."""
        T = check_int(T, "T", low=2)
        s = check_float(s, "s", low=0)
        max_beta = check_float(max_beta, "max_beta", low=0, high=1, open_low=True, open_high=True)
        steps = torch.arange(T + 1, dtype=torch.float64) / T
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=max_beta)
        return cls(betas)

    @classmethod
    def respaced(cls, schedule: "NoiseSchedule", timesteps) -> "NoiseSchedule":
        """The schedule of a strided chain that visits ``timesteps`` (any order), keeping ᾱ at each.

        Its β_i = 1 − ᾱ[τ_i]/ᾱ[τ_{i−1}] are the effective steps of the shorter chain (Eq. @eq-respaced-beta).
        """
        check_schedule(schedule)
        taus = _as_timesteps(timesteps)
        check_t(taus, schedule.T, name="timesteps")
        ab = schedule.alpha_bars[taus.to(schedule.device)]
        ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
        return cls(1.0 - ab / ab_prev, _min_steps=1)

    # ----------------------------------------------------------------- helpers
    @property
    def device(self) -> torch.device:
        return self.betas.device

    def buffers(self) -> dict[str, Tensor]:
        """Every float64 (T,) buffer of the schedule, by name (each tensor attribute, in definition order)."""
        return {name: value for name, value in vars(self).items() if isinstance(value, Tensor)}

    def to(self, device) -> "NoiseSchedule":
        """A copy with every tensor attribute on ``device`` (still float64); other attributes are shared."""
        if isinstance(device, torch.dtype):
            raise TypeError(f"device must be a device such as 'cuda' (got the dtype {device}); "
                            "the schedule stays float64 and gather() casts to the data's dtype")
        new = object.__new__(type(self))
        new.__dict__.update({name: value.to(device) if isinstance(value, Tensor) else value
                             for name, value in vars(self).items()})
        return new

    def snr(self) -> Tensor:
        """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t), float64 (Eq. @eq-snr)."""
        return self.alpha_bars / (1.0 - self.alpha_bars)

    def gather(self, buffer, t, like: Tensor) -> Tensor:
        """Read ``buffer`` (a name or a length-T tensor) at ``t``, cast to ``like``'s dtype and device.

        The result broadcasts against ``like``: shape (B, 1, …, 1) for a (B,) ``t``, all ones for an int.
        """
        check_tensor(like, "like")
        check_device(self, like, "like")
        values = self._buffer(buffer)
        t = check_t(t, self.T, batch=like.shape[0] if like.ndim else None)
        if isinstance(t, Tensor) and t.ndim == 1 and like.ndim == 0:
            raise ValueError(f"a batch of timesteps (shape {tuple(t.shape)}) needs batched data, got a scalar")
        return _gather(values, t, like)

    def _buffer(self, buffer) -> Tensor:
        if isinstance(buffer, str):
            names = self.buffers()
            if buffer not in names:
                raise ValueError(f"buffer must be one of {', '.join(names)} (got {buffer!r})")
            return names[buffer]
        check_tensor(buffer, "buffer")
        if buffer.shape != (self.T,):
            raise ValueError(f"buffer must be a name or a tensor of shape (T,) = ({self.T},) "
                             f"(got shape {tuple(buffer.shape)})")
        return buffer

    def __len__(self) -> int:
        return self.T

    def __repr__(self) -> str:
        return (f"NoiseSchedule(T={self.T}, beta[0]={self.betas[0].item():.4g}, beta[T-1]={self.betas[-1].item():.4g}, "
                f"alpha_bar[T-1]={self.alpha_bars[-1].item():.4g})")


def _as_betas(betas) -> Tensor:
    """``betas`` as a float64 tensor on its own device (CPU for a sequence); complex or non-numbers refused."""
    if isinstance(betas, Tensor):
        if betas.is_complex() or betas.dtype == torch.bool:
            raise TypeError(f"betas must be real floats (got a tensor of dtype {betas.dtype})")
        return betas.detach().to(torch.float64)
    if isinstance(betas, (str, bytes)):
        raise TypeError(f"betas must be a 1-D sequence or tensor of floats (got {type(betas).__name__})")
    try:
        return torch.as_tensor(betas, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"betas must be a 1-D sequence or tensor of real floats (got {type(betas).__name__}: "
                        f"{err})") from err


def _as_timesteps(timesteps) -> Tensor:
    """Sorted unique int64 timesteps; floats (which would be truncated) and bools are refused."""
    try:
        taus = torch.as_tensor(timesteps)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"timesteps must be a sequence or tensor of ints (got {type(timesteps).__name__})") from err
    if taus.numel() == 0:
        raise ValueError("timesteps must hold at least one step (got none)")
    if taus.is_floating_point() or taus.is_complex() or taus.dtype == torch.bool:
        raise TypeError(f"timesteps must be integers (got dtype {taus.dtype}); a float step such as 1.5 "
                        "has no index in the schedule")
    return taus.long().flatten().unique(sorted=True)


SPACINGS = ("leading", "trailing", "linspace")


def _trailing(T: int, steps: int) -> np.ndarray:
    # diffusers' expression; np.arange can return one spurious extra element (−1) for some (T, steps),
    # e.g. (50, 29), so only the first ``steps`` are kept.
    return (np.round(np.arange(T, 0, -T / steps)).astype(np.int64) - 1)[:steps]


def _linspace(T: int, steps: int) -> np.ndarray:
    return np.linspace(0, T - 1, steps).round()[::-1].copy().astype(np.int64)


def timesteps_for(T, steps=None, *, spacing: str = "leading") -> Tensor:
    """The descending 0-based timesteps that a ``steps``-step sampler visits on a T-step schedule
    (Eq. @eq-ddim-spacing), as diffusers' ``set_timesteps`` picks them (steps_offset = 0):

    - ``"leading"`` (the default of ``DDPMScheduler`` and of :func:`sample`): k·(T // steps),
      k = 0..steps−1 (10 of 1000: 900, 800, …, 0; never paper step T);
    - ``"trailing"``: round(T − k·T/steps) − 1 (10 of 1000: 999, 899, …, 99; starts at paper step T);
    - ``"linspace"``: ``steps`` evenly spaced points from 0 to T − 1, rounded (999, 888, …, 0).

    ``steps=None`` visits all T. Returns an int64 CPU tensor of shape (steps,).
    """
    T = check_int(T, "T", low=1)
    steps = T if steps is None else check_int(steps, "steps", low=1, high=T)
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {list(SPACINGS)} (got {spacing!r})")
    if spacing == "leading":
        return (torch.arange(steps, dtype=torch.long) * (T // steps)).flip(0)
    rule = _trailing if spacing == "trailing" else _linspace
    return torch.from_numpy(rule(T, steps))
