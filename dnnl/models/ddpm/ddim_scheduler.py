"""A DDIM sampler with diffusers' names: ``set_timesteps``, ``step(..., eta=)``, ``timestep_spacing`` (chapter 6).

It steps with the η family of :mod:`~dnnl.models.ddpm.ddim` (Song et al. 2021, Eqs. 12 and 16) and
reads x̂_0 and ε̂ from an ε, x_0 or v prediction (:mod:`~dnnl.models.ddpm.prediction`).
``prev_timestep_rule="chain"`` (the default) steps to the next timestep the chain visits;
``"stride"`` steps to t − T // steps, as diffusers' ``DDIMScheduler.step`` does.
The two agree for "leading" spacing and for "trailing" when steps divides T; for "linspace" the stride
rule lands between visited steps (10 of 1000: 999 → 899, while the next model call is at 888).
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ._rng import _check_generator, randn_like
from ._validate import check_float, check_int, check_same_shape, check_tensor
from .ddim import _alpha_bars, _ddim_update, _sigma
from .schedule import SPACINGS, timesteps_for
from .scheduler import _chain_timestep
from .diffusion import q_sample
from .prediction import _check_prediction_type, _to_x0_and_eps
from .sample import _check_flag
from .schedule import NoiseSchedule, check_schedule

__all__ = ["DDIMScheduler", "DDIMSchedulerOutput"]

PREV_TIMESTEP_RULES = ("chain", "stride")


@dataclass
class DDIMSchedulerOutput:
    """What :meth:`DDIMScheduler.step` returns: x_prev and the x̂_0 it came through (clipped if asked)."""
    prev_sample: Tensor
    pred_original_sample: Tensor


class DDIMScheduler:
    """DDIM sampling for any η in [0, 1] over a strided chain of a T-step schedule.

    ``beta_schedule``, ``beta_start`` and ``beta_end`` build the schedule as :class:`DDPMScheduler` does
    (or use :meth:`from_schedule`). ``set_alpha_to_one`` sets ᾱ after the last step to 1 (else ᾱ_0).
    """
    init_noise_sigma = 1.0
    order = 1

    def __init__(self, num_train_timesteps: int = 1000, *, beta_schedule: str = "linear",
                 beta_start: float | None = None, beta_end: float | None = None, clip_sample: bool = True,
                 set_alpha_to_one: bool = True, prediction_type: str = "epsilon",
                 timestep_spacing: str = "leading", prev_timestep_rule: str = "chain"):
        from .scheduler import DDPMScheduler

        schedule = DDPMScheduler(num_train_timesteps, beta_schedule, beta_start, beta_end).schedule
        self._use(schedule, clip_sample, set_alpha_to_one, prediction_type, timestep_spacing, prev_timestep_rule)

    @classmethod
    def from_schedule(cls, schedule: NoiseSchedule, *, clip_sample: bool = True, set_alpha_to_one: bool = True,
                      prediction_type: str = "epsilon", timestep_spacing: str = "leading",
                      prev_timestep_rule: str = "chain") -> "DDIMScheduler":
        """A scheduler over any :class:`NoiseSchedule` (its own β's and T)."""
        check_schedule(schedule)
        scheduler = cls.__new__(cls)
        scheduler._use(schedule, clip_sample, set_alpha_to_one, prediction_type, timestep_spacing,
                       prev_timestep_rule)
        return scheduler

    def _use(self, schedule, clip_sample, set_alpha_to_one, prediction_type, timestep_spacing, prev_timestep_rule):
        if timestep_spacing not in SPACINGS:
            raise ValueError(f"timestep_spacing must be one of {list(SPACINGS)} (got {timestep_spacing!r})")
        if prev_timestep_rule not in PREV_TIMESTEP_RULES:
            raise ValueError(f"prev_timestep_rule must be one of {list(PREV_TIMESTEP_RULES)} "
                             f"(got {prev_timestep_rule!r})")
        self.prediction_type = _check_prediction_type(prediction_type)
        self.clip_sample = _check_flag(clip_sample, "clip_sample")
        self.set_alpha_to_one = _check_flag(set_alpha_to_one, "set_alpha_to_one")
        self.timestep_spacing, self.prev_timestep_rule = timestep_spacing, prev_timestep_rule
        self.schedule = schedule
        self.num_train_timesteps = schedule.T
        self.final_alpha_cumprod = 1.0 if self.set_alpha_to_one else float(schedule.alpha_bars[0])
        self.set_timesteps(schedule.T)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Visit ``num_inference_steps`` timesteps spaced by ``timestep_spacing`` (:func:`timesteps_for`)."""
        self.num_inference_steps = check_int(num_inference_steps, "num_inference_steps", low=1,
                                             high=self.num_train_timesteps)
        self.timesteps = timesteps_for(self.num_train_timesteps, self.num_inference_steps,
                                          spacing=self.timestep_spacing)
        order = self.timesteps.tolist()
        self._next = dict(zip(order, order[1:] + [-1]))

    def _timestep(self, timestep) -> int:
        return _chain_timestep(timestep, self.num_train_timesteps, self._next, self.timesteps)

    def previous_timestep(self, timestep) -> int:
        """The timestep that :meth:`step` goes to from ``timestep`` (−1 past the end), by ``prev_timestep_rule``."""
        t = self._timestep(timestep)
        if self.prev_timestep_rule == "chain":
            return self._next[t]
        return max(t - self.num_train_timesteps // self.num_inference_steps, -1)

    def add_noise(self, original_samples: Tensor, noise: Tensor, timesteps) -> Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε at the given (training) timesteps (Eq. @eq-q-sample)."""
        return q_sample(self.schedule, original_samples, timesteps, noise)

    def scale_model_input(self, sample: Tensor, timestep=None) -> Tensor:
        """The input unchanged (DDIM needs no input scaling; kept for diffusers' loop)."""
        return sample

    def step(self, model_output: Tensor, timestep, sample: Tensor, eta: float = 0.0,
             use_clipped_model_output: bool = False, generator=None, variance_noise: Tensor | None = None,
             return_dict: bool = True) -> DDIMSchedulerOutput | tuple[Tensor, Tensor]:
        """One step x_t → x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε̂ + σ z, σ = σ_t(η) (Eq. @eq-ddim-step).

        As in diffusers, ``clip_sample`` clamps x̂_0 to [−1, 1], and ε̂ is recomputed from it only with
        ``use_clipped_model_output=True``; z is ``variance_noise`` or drawn from ``generator`` when η > 0.
        """
        check_tensor(sample, "sample", min_ndim=1)
        check_tensor(model_output, "model_output")
        check_same_shape(sample, "sample", model_output, "model_output")
        eta = check_float(eta, "eta", low=0.0, high=1.0)
        use_clipped = _check_flag(use_clipped_model_output, "use_clipped_model_output")
        _check_generator(generator)
        if variance_noise is not None:
            check_tensor(variance_noise, "variance_noise")
            check_same_shape(sample, "sample", variance_noise, "variance_noise")
            if generator is not None:
                raise ValueError("give either variance_noise or generator, not both")
        t = self._timestep(timestep)
        t_prev = self.previous_timestep(t)
        ab_t, ab_prev = _alpha_bars(self.schedule, t, t_prev, sample, final=self.final_alpha_cumprod)
        x0_hat, eps = _to_x0_and_eps(self.schedule, model_output, sample, t, self.prediction_type)
        if self.clip_sample:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        if use_clipped:
            eps = (sample - ab_t.sqrt().to(sample.dtype) * x0_hat) / (1.0 - ab_t).sqrt().to(sample.dtype)
        sigma = _sigma(ab_t, ab_prev, eta)
        z = None
        if eta > 0:
            z = variance_noise if variance_noise is not None else randn_like(sample, generator)
        prev = _ddim_update(ab_prev, sigma, x0_hat, eps, z)
        if not return_dict:
            return prev, x0_hat
        return DDIMSchedulerOutput(prev_sample=prev, pred_original_sample=x0_hat)

    def __repr__(self) -> str:
        return (f"DDIMScheduler(num_train_timesteps={self.num_train_timesteps}, steps={self.num_inference_steps}, "
                f"timestep_spacing={self.timestep_spacing!r}, prediction_type={self.prediction_type!r}, "
                f"clip_sample={self.clip_sample}, prev_timestep_rule={self.prev_timestep_rule!r})")
