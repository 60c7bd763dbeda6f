"""A small stateful sampler with diffusers' names: ``add_noise``, ``set_timesteps``, ``step`` (chapter 4).

For a strided chain (``set_timesteps(n)`` with n < T) each step uses the chain's effective
β = 1 − ᾱ_t/ᾱ_prev (Eq. @eq-respaced-beta), computed by :meth:`NoiseSchedule.respaced`. A step is the
same :func:`~dnnl.models.ddpm.sample._reverse_step` that :func:`~dnnl.models.ddpm.sample` takes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._rng import _check_generator
from ._validate import check_float, check_int, check_same_shape, check_t, check_tensor
from .diffusion import q_sample
from .sample import _check_flag, _reverse_step
from .schedule import NoiseSchedule, check_schedule, timesteps_for

_SCHEDULES = {"linear": "linear", "cosine": "cosine", "squaredcos_cap_v2": "cosine"}
_VARIANCES = ("fixed_small", "fixed_large")


@dataclass
class SchedulerOutput:
    """What :meth:`DDPMScheduler.step` returns: x_{t_prev} and the x̂_0 it came through."""
    prev_sample: Tensor
    pred_original_sample: Tensor


class DDPMScheduler:
    """Ancestral DDPM sampling (Algorithm 2) over all T steps or a strided subset of them.

    ``beta_start`` and ``beta_end`` (default 1e-4 and 0.02) belong to the linear schedule; the cosine
    schedule has none, so giving them with ``beta_schedule="cosine"`` is an error.
    """

    def __init__(self, num_train_timesteps: int = 1000, beta_schedule: str = "linear",
                 beta_start: float | None = None, beta_end: float | None = None, clip_sample: bool = True,
                 variance_type: str = "fixed_small"):
        T = check_int(num_train_timesteps, "num_train_timesteps", low=2)
        if beta_schedule not in _SCHEDULES:
            raise ValueError(f"beta_schedule must be one of {sorted(_SCHEDULES)} (got {beta_schedule!r})")
        if _SCHEDULES[beta_schedule] == "linear":
            start = 1e-4 if beta_start is None else check_float(beta_start, "beta_start", low=0, high=1,
                                                               open_low=True, open_high=True)
            end = 0.02 if beta_end is None else check_float(beta_end, "beta_end", low=0, high=1,
                                                           open_low=True, open_high=True)
            schedule = NoiseSchedule.linear(T, start, end)
        else:
            given = [name for name, v in (("beta_start", beta_start), ("beta_end", beta_end)) if v is not None]
            if given:
                raise ValueError(f"{' and '.join(given)} only apply to beta_schedule='linear'; the "
                                 f"{beta_schedule!r} schedule is fixed by T alone (got {given[0]}="
                                 f"{beta_start if given[0] == 'beta_start' else beta_end!r})")
            schedule = NoiseSchedule.cosine(T)
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
        self.clip_sample = _check_flag(clip_sample, "clip_sample")
        self.set_timesteps(schedule.T)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Visit ``num_inference_steps`` timesteps, evenly spaced from 0 ("leading": 50 → 980, 960, …, 0)."""
        self.num_inference_steps = check_int(num_inference_steps, "num_inference_steps", low=1,
                                             high=self.num_train_timesteps)
        self.timesteps = timesteps_for(self.num_train_timesteps, self.num_inference_steps)
        # The strided chain is itself a schedule: index i of it is timestep timesteps[-1 - i].
        self._chains = {self.schedule.device: NoiseSchedule.respaced(self.schedule, self.timesteps)}
        self._index = {int(t): i for i, t in enumerate(self.timesteps.flip(0))}

    def add_noise(self, original_samples: Tensor, noise: Tensor, timesteps) -> Tensor:
        """x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε at the given (training) timesteps (Eq. @eq-q-sample)."""
        return q_sample(self.schedule, original_samples, timesteps, noise)

    def previous_timestep(self, timestep) -> int:
        """The timestep the chain visits after ``timestep`` (−1 after the last one), as in diffusers."""
        i = self._chain_index(timestep)
        return int(self.timesteps[-i]) if i > 0 else -1

    def _chain_index(self, timestep) -> int:
        return self._index[_chain_timestep(timestep, self.num_train_timesteps, self._index, self.timesteps)]

    def _chain(self, device: torch.device) -> NoiseSchedule:
        """The strided chain on ``device``, moved there once."""
        if device not in self._chains:
            self._chains[device] = next(iter(self._chains.values())).to(device)
        return self._chains[device]

    def step(self, model_output: Tensor, timestep, sample: Tensor, generator=None,
             return_dict: bool = True) -> SchedulerOutput | tuple[Tensor, Tensor]:
        """One reverse step x_t → x_{t_prev} from an ε prediction (Eq. @eq-p-sample); x̂_0 is computed once."""
        check_tensor(sample, "sample")
        check_tensor(model_output, "model_output")
        check_same_shape(sample, "sample", model_output, "model_output")
        _check_generator(generator)
        i = self._chain_index(timestep)
        prev, x0_hat = _reverse_step(self._chain(sample.device), model_output, sample, i, ddim=False,
                                     clip=self.clip_sample, generator=generator, variance=self.variance_type)
        if not return_dict:
            return prev, x0_hat
        return SchedulerOutput(prev_sample=prev, pred_original_sample=x0_hat)

    def __repr__(self) -> str:
        return (f"DDPMScheduler(num_train_timesteps={self.num_train_timesteps}, steps={self.num_inference_steps}, "
                f"clip_sample={self.clip_sample}, variance_type={self.variance_type!r})")


def _chain_timestep(timestep, T: int, visited, timesteps: Tensor) -> int:
    """``timestep`` (one int or a 0-d tensor) as an int that the current chain ``visited`` holds.

    Shared by the schedulers' ``step``: a whole batch takes one step, at a timestep of ``set_timesteps``.
    """
    if isinstance(timestep, Tensor) and timestep.ndim > 0:
        raise ValueError("timestep must be a single int (the whole batch shares one step); "
                         f"got a tensor of shape {tuple(timestep.shape)}")
    t = int(check_t(timestep, T, name="timestep"))
    if t not in visited:
        raise ValueError(f"timestep {t} is not on the current chain; call set_timesteps() and loop over "
                         f"scheduler.timesteps (first few: {timesteps[:3].tolist()})")
    return t
