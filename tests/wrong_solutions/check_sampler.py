"""Wrong answers to Exercise 4.2 (ancestral_sample) and the cause the check must name."""
import math

import torch

from dnnl.models import ddpm


def _loop(eps_fn, schedule, shape, generator, *, mean=None, sigma=None, order=None, start=None, z=None,
          dtype=torch.float32):
    T = schedule.T
    x = start(shape, generator) if start else torch.randn(shape, generator=generator, dtype=dtype)
    for i in (order or range(T - 1, -1, -1)):
        t = torch.full((shape[0],), i, dtype=torch.long)
        eps = eps_fn(x, t)
        b, a, ab = float(schedule.betas[i]), float(schedule.alphas[i]), float(schedule.alpha_bars[i])
        x = mean(x, eps, b, a, ab, i) if mean else (x - b / (1 - ab) ** 0.5 * eps) / a ** 0.5
        s = sigma(i) if sigma else float(schedule.posterior_variance[i]) ** 0.5
        if s is not None and (i > 0 or sigma is not None):
            noise = z(shape, generator) if z else torch.randn(shape, generator=generator, dtype=dtype)
            x = x + s * noise
    return x


def alpha_in_eps_coefficient(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator, mean=lambda x, e, b, a, ab, i: (x - b ** 0.5 * e) / a ** 0.5)


def no_sqrt_in_eps_coefficient(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator, mean=lambda x, e, b, a, ab, i: (x - b / (1 - ab) * e) / a ** 0.5)


def plus_sign(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator,
                 mean=lambda x, e, b, a, ab, i: (x + b / (1 - ab) ** 0.5 * e) / a ** 0.5)


def alpha_bar_divisor(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator,
                 mean=lambda x, e, b, a, ab, i: (x - b / (1 - ab) ** 0.5 * e) / ab ** 0.5)


def no_noise(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator, sigma=lambda i: 0.0)


def missing_z(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator, z=lambda s, g: torch.ones(s),
                 sigma=lambda i: float(schedule.posterior_variance[i]) ** 0.5 if i > 0 else 0.0)


def sigma_one_step_late(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator,
                 sigma=lambda i: float(schedule.posterior_variance[i - 1]) ** 0.5 if i > 0 else 0.0)


def sigma_one_step_early(eps_fn, schedule, shape, generator=None):
    T = schedule.T
    return _loop(eps_fn, schedule, shape, generator,
                 sigma=lambda i: float(schedule.posterior_variance[min(i + 1, T - 1)]) ** 0.5 if i > 0 else 0.0)


def variance_for_std(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator,
                 sigma=lambda i: float(schedule.posterior_variance[i]) if i > 0 else 0.0)


def noise_at_t0(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator, sigma=lambda i: float(schedule.betas[i]) ** 0.5)


def stops_before_zero(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator, order=range(schedule.T - 1, 0, -1))


def forwards(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator, order=range(schedule.T))


def global_rng(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, None)


def uniform_start(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator, start=lambda s, g: torch.rand(s, generator=g))


def clipped_x0(eps_fn, schedule, shape, generator=None):
    def mean(x, e, b, a, ab, i):
        x0 = ((x - (1 - ab) ** 0.5 * e) / ab ** 0.5).clamp(-1, 1)
        return float(schedule.posterior_mean_coef1[i]) * x0 + float(schedule.posterior_mean_coef2[i]) * x
    return _loop(eps_fn, schedule, shape, generator, mean=mean)


def uniform_noise(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator,
                 z=lambda s, g: (torch.rand(s, generator=g) - 0.5) * math.sqrt(12))


def float64_result(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator, dtype=torch.float64)


def paper_indexed_loop(eps_fn, schedule, shape, generator=None):
    return _loop(eps_fn, schedule, shape, generator, order=range(schedule.T, 0, -1))


def float_t(eps_fn, schedule, shape, generator=None):
    x = torch.randn(shape, generator=generator)
    for i in range(schedule.T - 1, -1, -1):
        x = x - eps_fn(x, torch.full((shape[0],), float(i)))
    return x


def package(eps_fn, schedule, shape, generator=None):
    return ddpm.sample(eps_fn, schedule, shape, generator=generator).samples


def clamped_every_step(eps_fn, schedule, shape, generator=None):
    T = schedule.T
    x = torch.randn(shape, generator=generator)
    for i in range(T - 1, -1, -1):
        eps = eps_fn(x, torch.full((shape[0],), i, dtype=torch.long))
        b, a, ab = float(schedule.betas[i]), float(schedule.alphas[i]), float(schedule.alpha_bars[i])
        x = (x - b / (1 - ab) ** 0.5 * eps) / a ** 0.5
        if i > 0:
            x = (x + float(schedule.posterior_variance[i]) ** 0.5 * torch.randn(shape, generator=generator))
        x = x.clamp(-1, 1)
    return x


WRONG = [
    (alpha_in_eps_coefficient, "ᾱ vs α"),
    (no_sqrt_in_eps_coefficient, "square root in the ε coefficient"),
    (plus_sign, "sign error"),
    (alpha_bar_divisor, "ᾱ vs α"),
    (no_noise, "no noise"),
    (missing_z, "noise z is missing"),
    (sigma_one_step_late, "wrong step"),
    (sigma_one_step_early, "wrong step"),
    (variance_for_std, "variance used for the standard deviation"),
    (noise_at_t0, "noise added at code index 0"),
    (stops_before_zero, "stops before"),
    (forwards, "forwards"),
    (global_rng, "generator"),
    (uniform_start, "not drawn from the standard normal"),
    (clipped_x0, "clipping"),
    (uniform_noise, "not gaussian"),
    (float64_result, "dtype"),
    (paper_indexed_loop, "off-by-one"),
    (float_t, "not integers"),
    (package, "package"),
    (clamped_every_step, None),
]
