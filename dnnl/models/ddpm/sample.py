"""Sampling: walk from pure noise back to data (chapter 4).

One loop serves every sampler. It visits the timesteps :func:`timesteps_for` picks (all T, or a strided
subset) and runs on the respaced schedule of those timesteps (:meth:`NoiseSchedule.respaced`), whose
steps use the effective β = 1 − ᾱ_t/ᾱ_prev (Eq. @eq-respaced-beta). Each step is :func:`_reverse_step`:

- ``method="ddpm"``: ancestral sampling, Algorithm 2 on the chain (Eq. @eq-p-sample);
- ``method="ddim"``: the deterministic DDIM update with η = 0 (Eq. @eq-ch4-ddim; Song et al., 2021, Eq. 12).

The arguments are checked once, in :func:`sample`; the loop makes no host–device sync of its own.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ... import resolve_device
from ..._threads import rebalance
from ._rng import _check_generator, randn_like
from ._validate import check_device, check_int, check_same_shape, check_t, check_tensor
from .diffusion import _learned_log_variance, _predict_x0, _q_posterior, _split
from .schedule import NoiseSchedule, _gather, check_schedule, timesteps_for

__all__ = ["sample", "SampleOutput", "ddim_step"]

METHODS = ("ddpm", "ddim")
# σ² = β̃ or β of the chain, as DDPMScheduler's ``variance_type``, or the model's own (ε and v stacked)
VARIANCES = ("fixed_small", "fixed_large", "learned_range")


@dataclass
class SampleOutput:
    """What :func:`sample` returns (as diffusers' pipelines return an output class).

    - ``images``: the samples x_0, of the requested shape;
    - ``timesteps``: the 0-based timesteps the model saw, descending (an int64 CPU tensor);
    - ``trajectory``: with ``return_trajectory``, the states x_T … x_0 on the CPU (one per step, plus x_0).
    """
    images: Tensor
    timesteps: Tensor
    trajectory: list[Tensor] | None = None

    @property
    def paper_steps(self) -> list[int]:
        """The paper step of each trajectory state: ``timesteps + 1``, then 0 for the final sample."""
        return [int(t) + 1 for t in self.timesteps] + [0]


# --------------------------------------------------------------------------- one step

def ddim_step(schedule, eps: Tensor, xt: Tensor, t, *, clip: bool = False) -> Tensor:
    """One DDIM step with η = 0: x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev) ε̂ (Eq. @eq-ch4-ddim; Song et al., 2021, Eq. 12 with σ = 0).

    ``schedule`` may be a strided chain (:meth:`NoiseSchedule.respaced`): its ``alpha_bars_prev[t]`` is
    ᾱ at the previous visited timestep (1 after the last). With ``clip``, x̂_0 is clamped to [−1, 1]
    and ε̂ recomputed from it, so the two stay consistent.
    """
    check_schedule(schedule)
    check_tensor(xt, "xt")
    check_tensor(eps, "eps")
    check_same_shape(xt, "xt", eps, "eps")
    check_device(schedule, xt, "xt")
    t = check_t(t, schedule.T, batch=xt.shape[0] if xt.ndim else None)
    clip = _check_flag(clip, "clip")
    return _ddim_update(schedule, eps, xt, t, _x0_hat(schedule, eps, xt, t, clip), clip)


def _x0_hat(chain, eps: Tensor, x: Tensor, t, clip: bool) -> Tensor:
    """x̂_0 from ε (Eq. @eq-predict-x0), clamped to [−1, 1] with ``clip``. No checks."""
    x0_hat = _predict_x0(chain, x, t, eps)
    return x0_hat.clamp(-1.0, 1.0) if clip else x0_hat


def _ddim_update(chain, eps: Tensor, x: Tensor, t, x0_hat: Tensor, clip: bool) -> Tensor:
    """√ᾱ_prev x̂_0 + √(1 − ᾱ_prev) ε̂, with ε̂ recomputed from a clipped x̂_0. No checks."""
    if clip:
        eps = (x - _gather(chain.sqrt_alpha_bars, t, x) * x0_hat) / _gather(chain.sqrt_one_minus_alpha_bars, t, x)
    ab_prev = _gather(chain.alpha_bars_prev, t, x)
    return ab_prev.sqrt() * x0_hat + (1.0 - ab_prev).sqrt() * eps


def _reverse_step(chain: NoiseSchedule, eps: Tensor, x: Tensor, i: int, *, ddim: bool, clip: bool,
                  generator=None, variance: str = "fixed_small", v: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """x_{τ_i} → x_{τ_{i−1}} on a chain, from an ε prediction; returns (x_prev, x̂_0). No checks.

    ``i`` indexes the chain (0 = the last step, which adds no noise). DDPM: the posterior mean at x̂_0
    plus σ z, with σ² = β̃ (``"fixed_small"``) or β (``"fixed_large"``) of the chain (Eqs. @eq-mu-theta,
    @eq-p-sample), or the model's ``"learned_range"`` from ``v`` (Eq. @eq-learned-range, with the chain's β and
    β̃, as Nichol & Dhariwal respace it). DDIM: Eq. @eq-ch4-ddim with η = 0. :class:`DDPMScheduler` steps with this too.
    """
    x0_hat = _x0_hat(chain, eps, x, i, clip)
    if ddim:
        return _ddim_update(chain, eps, x, i, x0_hat, clip), x0_hat
    mean, posterior_variance, _ = _q_posterior(chain, x0_hat, x, i)
    if i == 0:
        return mean, x0_hat
    if variance == "learned_range":
        std = (0.5 * _learned_log_variance(chain, v, i)).exp()
    else:
        std = posterior_variance.sqrt() if variance == "fixed_small" else _gather(chain.betas, i, x).sqrt()
    return mean + std * randn_like(x, generator), x0_hat


# --------------------------------------------------------------------------- the sampler

def _check_shape(shape) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list, torch.Size)):
        raise TypeError(f"shape must be a tuple such as (16, 1, 28, 28) (got {type(shape).__name__})")
    shape = tuple(shape)
    if len(shape) < 2 or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in shape):
        raise ValueError(f"shape must be a tuple of positive ints (batch, *sample_shape), "
                         f"for example (16, 1, 28, 28) (got {shape})")
    return tuple(int(s) for s in shape)


def _check_flag(value, name: str) -> bool:
    """A True/False switch (Python or NumPy bool): a string such as "no" would be silently true."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False (got {type(value).__name__} {value!r})")
    return bool(value)


def _device_and_dtype(model, device, noise) -> tuple[torch.device, torch.dtype]:
    param = next(iter(model.parameters()), None) if isinstance(model, nn.Module) else None
    if device is not None:
        device = resolve_device(device)
        if param is not None and param.device.type != device.type:
            raise ValueError(f"the model lives on {param.device} but device={str(device)!r}; "
                             f"move it first with model.to({str(device)!r}), or leave device=None")
    elif param is not None:
        device = param.device
    elif noise is not None:
        device = noise.device
    else:
        device = torch.device("cpu")
    if param is not None and param.is_floating_point():
        dtype = param.dtype
    elif noise is not None:
        dtype = noise.dtype
    else:
        dtype = torch.float32
    return device, dtype


def _eps(model, x: Tensor, t: int, learned: bool = False) -> tuple[Tensor, Tensor | None]:
    """The model's ε (and v, if ``learned``) at timestep ``t`` for the whole batch (a shape check only: no sync)."""
    out = model(x, torch.full((x.shape[0],), t, dtype=torch.long, device=x.device))
    if learned:
        eps, v = _split(out, x.shape[1])
        return eps.to(x.dtype), v.to(x.dtype)
    if isinstance(out, Tensor) and out.ndim == x.ndim and out.shape[1] == 2 * x.shape[1]:
        raise ValueError(f"model(x, t) returns {out.shape[1]} channels for {x.shape[1]}-channel images: a "
                         f"learned-variance model (ε and v); sample it with variance_type='learned_range'")
    if not isinstance(out, Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"model(x, t) must return an ε prediction of x's shape {tuple(x.shape)} (got {got})")
    return out.to(x.dtype), None


def _check_args(model, schedule, shape, steps, generator, method, noise, batch_size, variance_type):
    check_schedule(schedule)
    if not callable(model):
        raise TypeError(f"model must be an nn.Module or a callable eps_fn(x, t) (got {type(model).__name__})")
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)} (got {method!r})")
    if variance_type not in VARIANCES:
        raise ValueError(f"variance_type must be one of {list(VARIANCES)} (got {variance_type!r})")
    if method == "ddim" and variance_type == "fixed_large":
        raise ValueError(f"variance_type applies to method='ddpm' only: DDIM (η = 0) adds no noise "
                         f"(got variance_type={variance_type!r} with method='ddim'; 'learned_range' only says "
                         f"that the model returns ε and v)")
    shape = _check_shape(shape)
    timesteps = timesteps_for(schedule.T, steps)
    _check_generator(generator)
    if noise is not None:
        check_tensor(noise, "noise")
        if tuple(noise.shape) != shape:
            raise ValueError(f"noise must have shape {shape}, the shape argument (got {tuple(noise.shape)})")
    batch_size = shape[0] if batch_size is None else check_int(batch_size, "batch_size", low=1)
    return shape, timesteps, batch_size


@torch.no_grad()
def sample(model: nn.Module | Callable[[Tensor, Tensor], Tensor], schedule, shape: Sequence[int], *,
           steps: int | None = None, generator: torch.Generator | None = None, clip: bool = True,
           progress: bool = True, return_trajectory: bool = False, method: str = "ddpm",
           noise: Tensor | None = None, device: torch.device | str | None = None,
           batch_size: int | None = None, variance_type: str = "fixed_small") -> SampleOutput:
    """Draw ``shape[0]`` samples by running the reverse process from x_T ~ N(0, I) (Algorithm 2).

    ``model(x, t)`` predicts ε from x and an int64 (B,) ``t``; an ``nn.Module`` runs in eval mode on its
    own device (or ``device``). ``steps`` (default T) visits that many timesteps (:func:`timesteps_for`);
    ``method`` is ``"ddpm"`` (ancestral) or ``"ddim"`` (deterministic, η = 0). ``clip`` clamps x̂_0 to
    [−1, 1] at every step. ``noise`` fixes the starting x_T (shape ``shape``), so settings can be compared
    on the same noise. ``variance_type`` picks the DDPM step's σ² (Eq. @eq-p-sample): ``"fixed_small"``, the
    chain's β̃, or ``"fixed_large"``, its β (the two bounds of Ho et al., 2020, as diffusers names them), or
    ``"learned_range"`` for a model that returns ε and v stacked (Eq. @eq-learned-range).

    Returns a :class:`SampleOutput`: ``images`` (x_0), ``timesteps`` and, with ``return_trajectory``,
    ``trajectory``, the states from x_T to x_0 on the CPU, whose paper steps are ``paper_steps``.

    ``batch_size`` bounds memory: the samples are drawn ``batch_size`` at a time, one chunk after another
    from the same ``generator`` (so the result equals separate calls for the chunks, in order); the
    trajectory states are joined along the batch.
    """
    shape, timesteps, chunk = _check_args(model, schedule, shape, steps, generator, method, noise, batch_size,
                                          variance_type)
    clip, progress = _check_flag(clip, "clip"), _check_flag(progress, "progress")
    return_trajectory = _check_flag(return_trajectory, "return_trajectory")
    device, dtype = _device_and_dtype(model, device, noise)
    chain = NoiseSchedule.respaced(schedule, timesteps).to(device)
    run = _Run(model, chain, timesteps.tolist(), method, clip, generator, return_trajectory, progress, variance_type)
    n = shape[0]
    parts = [run((min(chunk, n - lo), *shape[1:]), None if noise is None else noise[lo:lo + chunk], device, dtype)
             for lo in range(0, n, chunk)]
    images = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    trajectory = None
    if return_trajectory:
        trajectory = [torch.cat(states) for states in zip(*(p[1] for p in parts))]
    return SampleOutput(images=images, timesteps=timesteps, trajectory=trajectory)


@dataclass
class _Run:
    """One batch of :func:`sample` at a time, its arguments already checked: the one reverse loop."""
    model: Callable
    chain: NoiseSchedule
    timesteps: list[int]
    method: str
    clip: bool
    generator: torch.Generator | None
    keep: bool
    progress: bool
    variance: str = "fixed_small"

    def __call__(self, shape, noise, device, dtype) -> tuple[Tensor, list[Tensor]]:
        if noise is None:
            x = randn_like(torch.empty(shape, device=device, dtype=dtype), self.generator)
        else:
            x = noise.to(device=device, dtype=dtype)
        model, n = self.model, len(self.timesteps)
        was_training = model.training if isinstance(model, nn.Module) else False
        if was_training:
            model.eval()
        states = [x.cpu()] if self.keep else []
        try:
            bar = tqdm(self.timesteps, desc=f"sampling ({self.method}, {n} steps)", disable=not self.progress,
                       leave=False)
            for k, t in enumerate(bar):
                eps, v = _eps(model, x, t, self.variance == "learned_range")
                x, _ = _reverse_step(self.chain, eps, x, n - 1 - k, ddim=self.method == "ddim", clip=self.clip,
                                     generator=self.generator, variance=self.variance, v=v)
                if self.keep:
                    states.append(x.cpu())
                if x.device.type == "cpu":
                    rebalance()  # other kernels may have started or finished on this CPU
        finally:
            if was_training:
                model.train()
        return x, states


def save_preview(model: nn.Module, schedule, shape: Sequence[int], path, *, steps: int, seed: int,
                 variance_type: str = "fixed_small") -> None:
    """A grid of ``shape[0]`` samples with a ``steps``-step chain, saved as a PNG at ``path`` (training previews)."""
    from ...plot import save_grid  # only needed when previews are on

    device = next(model.parameters()).device
    gen = torch.Generator(device if device.type == "cuda" else "cpu").manual_seed(seed)
    images = sample(model, schedule, shape, steps=steps, generator=gen, progress=False,
                    variance_type=variance_type).images
    save_grid(images, path)
