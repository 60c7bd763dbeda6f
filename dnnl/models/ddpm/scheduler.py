"""A small stateful sampler with diffusers' names: ``add_noise``, ``set_timesteps``, ``step`` (chapter 4).

For a strided chain (``set_timesteps(n)`` with n < T) each step uses the chain's effective
β = 1 − ᾱ_t/ᾱ_prev (Eq. @eq-respaced-beta), computed by :meth:`NoiseSchedule.respaced`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._validate import check_schedule, check_t, check_tensor, randn_like
from .diffusion import p_mean_variance, predict_x0, q_sample
from .schedule import NoiseSchedule

_SCHEDULES = {"linear": "linear", "cosine": "cosine", "squaredcos_cap_v2": "cosine"}
_VARIANCES = ("fixed_small", "fixed_large")


@dataclass
class SchedulerOutput:
    """What :meth:`DDPMScheduler.step` returns: x_{t_prev} and the x̂_0 it came through."""
    prev_sample: Tensor
    pred_original_sample: Tensor


class DDPMScheduler:
    """Ancestral DDPM sampling (Algorithm 2) over all T steps or a strided subset of them."""

    def __init__(self, num_train_timesteps: int = 1000, beta_schedule: str = "linear", beta_start: float = 1e-4,
                 beta_end: float = 0.02, clip_sample: bool = True, variance_type: str = "fixed_small"):
        if beta_schedule not in _SCHEDULES:
            raise ValueError(f"beta_schedule must be one of {sorted(_SCHEDULES)} (got {beta_schedule!r})")
        if _SCHEDULES[beta_schedule] == "linear":
            schedule = NoiseSchedule.linear(num_train_timesteps, beta_start, beta_end)
        else:
            schedule = NoiseSchedule.cosine(num_train_timesteps)
        self._use(schedule, clip_sample, variance_type)

    @classmethod
    def from_schedule(cls, schedule: NoiseSchedule, *, clip_sample: bool = True,
                      variance_type: str = "fixed_small") -> "DDPMScheduler":
        """A scheduler over any :class:`NoiseSchedule` (its own β's and T)."""
        check_schedule(schedule)
        scheduler = cls.__new__(cls)
        scheduler._use(schedule, clip_sample, variance_type)
        return scheduler

    def _use(self, schedule: NoiseSchedule, clip_sample: bool, variance_type: str) -> None:
        if variance_type not in _VARIANCES:
            raise ValueError(f"variance_type must be one of {list(_VARIANCES)} (got {variance_type!r})")
        self.variance_type = variance_type
        self.schedule = schedule
        self.num_train_timesteps = schedule.T
        self.clip_sample = bool(clip_sample)
        self.set_timesteps(schedule.T)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Visit ``num_inference_steps`` timesteps, evenly spaced from 0 ("leading": 50 → 980, 960, …, 0)."""
        T = self.num_train_timesteps
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int):
            raise TypeError(f"num_inference_steps must be an int (got {type(num_inference_steps).__name__})")
        if not 1 <= num_inference_steps <= T:
            raise ValueError(f"num_inference_steps must be in [1, {T}] (got {num_inference_steps})")
        self.num_inference_steps = num_inference_steps
        ratio = T // num_inference_steps
        self.timesteps = (torch.arange(num_inference_steps, dtype=torch.long) * ratio).flip(0)
        # The strided chain is itself a schedule: index i of it is timestep timesteps[-1 - i].
        self._chain = NoiseSchedule.respaced(self.schedule, self.timesteps)
        self._index = {int(t): i for i, t in enumerate(self.timesteps.flip(0))}

    def add_noise(self, original_samples: Tensor, noise: Tensor, timesteps) -> Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε at the given (training) timesteps (Eq. @eq-q-sample)."""
        return q_sample(self.schedule, original_samples, timesteps, noise)

    def previous_timestep(self, timestep: int) -> int:
        """The timestep the chain visits after ``timestep`` (−1 after the last one)."""
        i = self._chain_index(timestep)
        return int(self.timesteps[-i]) if i > 0 else -1

    def _chain_index(self, timestep) -> int:
        if isinstance(timestep, Tensor) and timestep.ndim > 0:
            raise ValueError("timestep must be a single int (the whole batch shares one step); "
                             f"got a tensor of shape {tuple(timestep.shape)}")
        t = int(check_t(timestep, self.num_train_timesteps, name="timestep"))
        if t not in self._index:
            raise ValueError(f"timestep {t} is not on the current chain; call set_timesteps() and loop over "
                             f"scheduler.timesteps (first few: {self.timesteps[:3].tolist()})")
        return self._index[t]

    def step(self, model_output: Tensor, timestep, sample: Tensor, generator=None,
             return_dict: bool = True) -> SchedulerOutput | tuple[Tensor, Tensor]:
        """One reverse step x_t → x_{t_prev} from an ε prediction (Eq. @eq-p-sample)."""
        check_tensor(model_output, "model_output")
        check_tensor(sample, "sample")
        i = self._chain_index(timestep)
        chain = self._chain
        mean, variance, _ = p_mean_variance(chain, model_output, sample, i, clip=self.clip_sample)
        x0_hat = predict_x0(chain, sample, i, model_output)
        if self.clip_sample:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        prev = mean
        if i > 0:
            if self.variance_type == "fixed_small":
                std = variance.clamp(min=1e-20).sqrt()
            else:
                std = chain.gather("betas", i, sample).sqrt()
            prev = mean + std * randn_like(sample, generator)
        if not return_dict:
            return prev, x0_hat
        return SchedulerOutput(prev_sample=prev, pred_original_sample=x0_hat)

    def __repr__(self) -> str:
        return (f"DDPMScheduler(num_train_timesteps={self.num_train_timesteps}, steps={self.num_inference_steps}, "
                f"clip_sample={self.clip_sample}, variance_type={self.variance_type!r})")
