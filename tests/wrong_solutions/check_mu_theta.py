"""Wrong answers to Exercise 2.5, mu_theta(schedule, xt, t, eps), with the cause the check must name."""
import torch


def _c(schedule, name, t, xt, shift=0):
    idx = (t + shift).clamp(0, schedule.T - 1)
    return getattr(schedule, name)[idx].to(xt.dtype).reshape(-1, *[1] * (xt.dim() - 1))


def ko_weight(schedule, xt, t, eps):
    a = _c(schedule, "alphas", t, xt)
    return (xt - (1 - a).sqrt() * eps) / a.sqrt()


def abar_divisor(schedule, xt, t, eps):
    b, ab = _c(schedule, "betas", t, xt), _c(schedule, "alpha_bars", t, xt)
    return (xt - b / (1 - ab).sqrt() * eps) / ab.sqrt()


def no_sqrt_weight(schedule, xt, t, eps):
    b, a, ab = (_c(schedule, n, t, xt) for n in ("betas", "alphas", "alpha_bars"))
    return (xt - b / (1 - ab) * eps) / a.sqrt()


def clipped_x0(schedule, xt, t, eps):
    ab = _c(schedule, "alpha_bars", t, xt)
    x0 = ((xt - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
    return _c(schedule, "posterior_mean_coef1", t, xt) * x0 + _c(schedule, "posterior_mean_coef2", t, xt) * xt


def float64_result(schedule, xt, t, eps):
    x, e = xt.double(), eps.double()
    b, a, ab = (getattr(schedule, n)[t].reshape(-1, 1, 1, 1) for n in ("betas", "alphas", "alpha_bars"))
    return (x - b / (1 - ab).sqrt() * e) / a.sqrt()


def next_index(schedule, xt, t, eps):
    b, a, ab = (_c(schedule, n, t, xt, shift=1) for n in ("betas", "alphas", "alpha_bars"))
    return (xt - b / (1 - ab).sqrt() * eps) / a.sqrt()


def in_place(schedule, xt, t, eps):
    b, a, ab = (_c(schedule, n, t, xt) for n in ("betas", "alphas", "alpha_bars"))
    xt -= b / (1 - ab).sqrt() * eps
    return xt / a.sqrt()


def plus_sign(schedule, xt, t, eps):
    b, a, ab = (_c(schedule, n, t, xt) for n in ("betas", "alphas", "alpha_bars"))
    return (xt + b / (1 - ab).sqrt() * eps) / a.sqrt()


WRONG = [
    (ko_weight, "erratum"),
    (abar_divisor, "ᾱ vs α"),
    (no_sqrt_weight, "missing square root"),
    (clipped_x0, "clipping"),
    (float64_result, "dtype"),
    (next_index, "off-by-one"),
    (in_place, "in-place"),
    (plus_sign, "sign"),
]
