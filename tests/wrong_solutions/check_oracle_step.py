"""Wrong answers to Exercise 2.1 (oracle_step) and the cause the check must name."""
import math

import torch

from dnnl.models import ddpm


def _g(schedule, name, t, x):
    return schedule.gather(name, t, x)


def _mean(schedule, x0, xt, t):
    return _g(schedule, "posterior_mean_coef1", t, xt) * x0 + _g(schedule, "posterior_mean_coef2", t, xt) * xt


def _z(xt, generator):
    return torch.randn(xt.shape, generator=generator, dtype=xt.dtype)


def missing_z(schedule, x0, xt, t, generator=None):
    return _mean(schedule, x0, xt, t) + _g(schedule, "posterior_variance", t, xt).sqrt()


def no_noise(schedule, x0, xt, t, generator=None):
    return _mean(schedule, x0, xt, t)


def beta_for_beta_tilde(schedule, x0, xt, t, generator=None):
    var = _g(schedule, "betas", t, xt) * (_g(schedule, "posterior_variance", t, xt) > 0)
    return _mean(schedule, x0, xt, t) + var.sqrt() * _z(xt, generator)


def variance_for_std(schedule, x0, xt, t, generator=None):
    return _mean(schedule, x0, xt, t) + _g(schedule, "posterior_variance", t, xt) * _z(xt, generator)


def unscaled_z(schedule, x0, xt, t, generator=None):
    mask = (_g(schedule, "posterior_variance", t, xt) > 0).to(xt.dtype)
    return _mean(schedule, x0, xt, t) + mask * _z(xt, generator)


def global_rng(schedule, x0, xt, t, generator=None):
    return _mean(schedule, x0, xt, t) + _g(schedule, "posterior_variance", t, xt).sqrt() * torch.randn_like(xt)


def noise_at_t0(schedule, x0, xt, t, generator=None):
    std = (0.5 * _g(schedule, "posterior_log_variance_clipped", t, xt)).exp()
    return _mean(schedule, x0, xt, t) + std * _z(xt, generator)


def swapped(schedule, x0, xt, t, generator=None):
    mean = _g(schedule, "posterior_mean_coef2", t, xt) * x0 + _g(schedule, "posterior_mean_coef1", t, xt) * xt
    return mean + _g(schedule, "posterior_variance", t, xt).sqrt() * _z(xt, generator)


def index_t_minus_1(schedule, x0, xt, t, generator=None):
    tm = (torch.as_tensor(t) - 1).clamp(min=0)
    tm = tm.expand(len(xt)) if tm.dim() == 0 else tm
    var = _g(schedule, "posterior_variance", t, xt)
    return _mean(schedule, x0, xt, tm) + var.sqrt() * _z(xt, generator)


def clipped_output(schedule, x0, xt, t, generator=None):
    out = _mean(schedule, x0, xt, t) + _g(schedule, "posterior_variance", t, xt).sqrt() * _z(xt, generator)
    return out.clamp(-1, 1)


def uniform_noise(schedule, x0, xt, t, generator=None):
    u = (torch.rand(xt.shape, generator=generator) - 0.5) * math.sqrt(12)
    return _mean(schedule, x0, xt, t) + _g(schedule, "posterior_variance", t, xt).sqrt() * u


def float64_result(schedule, x0, xt, t, generator=None):
    tt = torch.full((len(xt),), t) if isinstance(t, int) else t
    c1 = schedule.posterior_mean_coef1[tt].reshape(-1, 1, 1, 1)
    c2 = schedule.posterior_mean_coef2[tt].reshape(-1, 1, 1, 1)
    var = schedule.posterior_variance[tt].reshape(-1, 1, 1, 1)
    return c1 * x0 + c2 * xt + var.sqrt() * torch.randn(xt.shape, generator=generator, dtype=torch.float64)


def mean_from_clipped_x0(schedule, x0, xt, t, generator=None):
    return _mean(schedule, x0.clamp(-0.5, 0.5), xt, t) + \
        _g(schedule, "posterior_variance", t, xt).sqrt() * _z(xt, generator)


def nan_from_negative_variance(schedule, x0, xt, t, generator=None):
    var = _g(schedule, "posterior_variance", t, xt) - 1e-3
    return _mean(schedule, x0, xt, t) + var.sqrt() * _z(xt, generator)


def in_place(schedule, x0, xt, t, generator=None):
    mean = xt.mul_(_g(schedule, "posterior_mean_coef2", t, xt)).add_(_g(schedule, "posterior_mean_coef1", t, xt) * x0)
    return mean + _g(schedule, "posterior_variance", t, xt).sqrt() * _z(xt, generator)


def alpha_everywhere(schedule, x0, xt, t, generator=None):
    x64 = xt.double()
    a, b = _g(schedule, "alphas", t, x64), _g(schedule, "betas", t, x64)
    tm = (torch.as_tensor(t) - 1).clamp(min=0)
    tm = tm.expand(len(xt)) if tm.dim() == 0 else tm
    a_prev = torch.where(torch.as_tensor(t).reshape(-1, 1, 1, 1) == 0, torch.ones_like(a),
                         _g(schedule, "alphas", tm, x64))
    mean = a_prev.sqrt() * b / (1 - a) * x0.double() + a.sqrt() * (1 - a_prev) / (1 - a) * x64
    return (mean + _g(schedule, "posterior_variance", t, x64).sqrt() * _z(x64, generator)).float()


def package(schedule, x0, xt, t, generator=None):
    return ddpm.oracle_denoise(schedule, x0, xt, t, generator=generator)


def log_variance_as_std(schedule, x0, xt, t, generator=None):
    std = _g(schedule, "posterior_log_variance_clipped", t, xt).exp()
    return _mean(schedule, x0, xt, t) + std * _z(xt, generator)


WRONG = [
    (missing_z, "noise z is missing"),
    (no_noise, "no noise"),
    (beta_for_beta_tilde, "β_t used"),
    (variance_for_std, "variance used for the standard deviation"),
    (unscaled_z, "unscaled"),
    (global_rng, "generator"),
    (noise_at_t0, "noise added at code index 0"),
    (swapped, "swapped"),
    (index_t_minus_1, "off-by-one"),
    (clipped_output, "clipping"),
    (uniform_noise, "not gaussian"),
    (float64_result, "dtype"),
    (mean_from_clipped_x0, None),
    (nan_from_negative_variance, "nan"),
    (in_place, "in-place"),
    (alpha_everywhere, "ᾱ vs α"),
    (package, "package"),
    (log_variance_as_std, "variance used for the standard deviation"),
]
