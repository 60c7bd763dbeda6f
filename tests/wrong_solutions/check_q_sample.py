"""Wrong answers to Exercise 1.2 (q_sample) and the cause the check must name."""
import torch

from dnnl.models import ddpm

_package_q_sample = ddpm.q_sample  # an alias taken before grading: still switched off


def _ab(schedule, name, t, x0):
    return schedule.gather(name, t, x0)


def _t(t, n):
    return torch.full((n,), t) if isinstance(t, int) else t


def alpha_for_alpha_bar(schedule, x0, t, noise):
    a = _ab(schedule, "alphas", t, x0)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def no_sqrt(schedule, x0, t, noise):
    ab = _ab(schedule, "alpha_bars", t, x0)
    return ab * x0 + (1 - ab) * noise


def variance_for_std(schedule, x0, t, noise):
    ab = _ab(schedule, "alpha_bars", t, x0)
    return ab.sqrt() * x0 + (1 - ab) * noise


def no_sqrt_on_signal(schedule, x0, t, noise):
    ab = _ab(schedule, "alpha_bars", t, x0)
    return ab * x0 + (1 - ab).sqrt() * noise


def index_t_minus_1(schedule, x0, t, noise):
    ab = _ab(schedule, "alpha_bars_prev", t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def index_t_plus_1(schedule, x0, t, noise):
    ab = schedule.alpha_bars[_t(t, len(x0)) + 1].float().reshape(-1, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def swapped(schedule, x0, t, noise):
    ab = _ab(schedule, "alpha_bars", t, x0)
    return (1 - ab).sqrt() * x0 + ab.sqrt() * noise


def minus_noise(schedule, x0, t, noise):
    ab = _ab(schedule, "alpha_bars", t, x0)
    return ab.sqrt() * x0 - (1 - ab).sqrt() * noise


def no_noise_term(schedule, x0, t, noise):
    return _ab(schedule, "alpha_bars", t, x0).sqrt() * x0


def own_noise(schedule, x0, t, noise):
    ab = _ab(schedule, "alpha_bars", t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn_like(x0)


def nan_from_negative_sqrt(schedule, x0, t, noise):
    ab = _ab(schedule, "alpha_bars", t, x0)
    return ab.sqrt() * x0 + (ab - 1).sqrt() * noise


def float64_result(schedule, x0, t, noise):
    ab = schedule.alpha_bars[_t(t, len(x0))].reshape(-1, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def int_t_unhandled(schedule, x0, t, noise):
    ab = schedule.alpha_bars[t.long()].float().reshape(-1, 1, 1, 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def first_timestep_for_all(schedule, x0, t, noise):
    t0 = int(_t(t, len(x0))[0])
    ab = float(schedule.alpha_bars[t0])
    return ab ** 0.5 * x0 + (1 - ab) ** 0.5 * noise


def clipped(schedule, x0, t, noise):
    ab = _ab(schedule, "alpha_bars", t, x0)
    return (ab.sqrt() * x0 + (1 - ab).sqrt() * noise).clamp(-1, 1)


def rescaled_data(schedule, x0, t, noise):
    ab = _ab(schedule, "alpha_bars", t, x0)
    return ab.sqrt() * (x0 + 1) / 2 + (1 - ab).sqrt() * noise


def in_place(schedule, x0, t, noise):
    ab = _ab(schedule, "alpha_bars", t, x0)
    return x0.mul_(ab.sqrt()).add_((1 - ab).sqrt() * noise)


def x0_at_t0(schedule, x0, t, noise):
    ab = _ab(schedule, "alpha_bars", t, x0)
    tt = _t(t, len(x0)).reshape(-1, 1, 1, 1)
    return torch.where(tt == 0, x0, ab.sqrt() * x0 + (1 - ab).sqrt() * noise)


def own_schedule(schedule, x0, t, noise):
    mine = ddpm.NoiseSchedule.linear(T=1000)
    ab = mine.gather("alpha_bars", t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def package(schedule, x0, t, noise):
    return _package_q_sample(schedule, x0, t, noise)


def no_reshape(schedule, x0, t, noise):
    ab = schedule.alpha_bars[t].float()
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def python_if_on_t(schedule, x0, t, noise):
    if t == 0:
        return x0
    ab = _ab(schedule, "alpha_bars", t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


WRONG = [
    (alpha_for_alpha_bar, "ᾱ vs α"),
    (no_sqrt, "missing square root"),
    (variance_for_std, "variance used for the standard deviation"),
    (no_sqrt_on_signal, "square root on the signal"),
    (index_t_minus_1, "off-by-one"),
    (index_t_plus_1, "off-by-one"),
    (swapped, "swapped"),
    (minus_noise, "sign error"),
    (no_noise_term, "noise term is missing"),
    (own_noise, "random draws"),
    (nan_from_negative_sqrt, "nan"),
    (float64_result, "dtype"),
    (int_t_unhandled, None),
    (first_timestep_for_all, "one timestep for the whole batch"),
    (clipped, "clipping"),
    (rescaled_data, "rescaled"),
    (in_place, "in-place"),
    (x0_at_t0, "no noise at code index 0"),
    (own_schedule, "schedule argument was ignored"),
    (package, "package"),
    (no_reshape, "broadcasting"),
    (python_if_on_t, "python if"),
]
