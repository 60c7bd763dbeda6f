"""Wrong answers to Exercise 4.1 (l_simple) and the cause the check must name."""
import math

import torch

from dnnl.models import ddpm


def _draw(schedule, x0, generator):
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    return t, eps


def _ab(schedule, name, t, x0):
    return getattr(schedule, name)[t].to(x0.dtype).reshape(-1, *([1] * (x0.ndim - 1)))


def _xt(schedule, x0, t, eps, name="alpha_bars"):
    ab = _ab(schedule, name, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


def x0_target(model, schedule, x0, generator=None):
    t, eps = _draw(schedule, x0, generator)
    return (model(_xt(schedule, x0, t, eps), t) - x0).pow(2).mean()


def alpha_for_alpha_bar(model, schedule, x0, generator=None):
    t, eps = _draw(schedule, x0, generator)
    return (model(_xt(schedule, x0, t, eps, "alphas"), t) - eps).pow(2).mean()


def no_sqrt(model, schedule, x0, generator=None):
    t, eps = _draw(schedule, x0, generator)
    ab = _ab(schedule, "alpha_bars", t, x0)
    return (model(ab * x0 + (1 - ab) * eps, t) - eps).pow(2).mean()


def index_t_minus_1(model, schedule, x0, generator=None):
    t, eps = _draw(schedule, x0, generator)
    return (model(_xt(schedule, x0, t, eps, "alpha_bars_prev"), t) - eps).pow(2).mean()


def summed(model, schedule, x0, generator=None):
    t, eps = _draw(schedule, x0, generator)
    return (model(_xt(schedule, x0, t, eps), t) - eps).pow(2).sum()


def absolute(model, schedule, x0, generator=None):
    t, eps = _draw(schedule, x0, generator)
    return (model(_xt(schedule, x0, t, eps), t) - eps).abs().mean()


def swapped(model, schedule, x0, generator=None):
    t, eps = _draw(schedule, x0, generator)
    ab = _ab(schedule, "alpha_bars", t, x0)
    return (model((1 - ab).sqrt() * x0 + ab.sqrt() * eps, t) - eps).pow(2).mean()


def detached_then_requires_grad(model, schedule, x0, generator=None):
    t, eps = _draw(schedule, x0, generator)
    loss = (model(_xt(schedule, x0, t, eps), t).detach() - eps).pow(2).mean()
    return loss.requires_grad_()


def item(model, schedule, x0, generator=None):
    t, eps = _draw(schedule, x0, generator)
    return (model(_xt(schedule, x0, t, eps), t) - eps).pow(2).mean().item()


def global_rng(model, schedule, x0, generator=None):
    t = torch.randint(0, schedule.T, (x0.shape[0],))
    eps = torch.randn_like(x0)
    return (model(_xt(schedule, x0, t, eps), t) - eps).pow(2).mean()


def one_t_per_batch(model, schedule, x0, generator=None):
    t = torch.randint(0, schedule.T, (1,), generator=generator).expand(x0.shape[0])
    eps = torch.randn(x0.shape, generator=generator)
    return (model(_xt(schedule, x0, t, eps), t) - eps).pow(2).mean()


def t_from_one(model, schedule, x0, generator=None):
    t = torch.randint(1, schedule.T, (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    return (model(_xt(schedule, x0, t, eps), t) - eps).pow(2).mean()


def uniform_noise(model, schedule, x0, generator=None):
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator)
    eps = (torch.rand(x0.shape, generator=generator) - 0.5) * math.sqrt(12)
    return (model(_xt(schedule, x0, t, eps), t) - eps).pow(2).mean()


def rand_noise(model, schedule, x0, generator=None):
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator)
    eps = torch.rand(x0.shape, generator=generator)
    return (model(_xt(schedule, x0, t, eps), t) - eps).pow(2).mean()


def float_t(model, schedule, x0, generator=None):
    t = torch.rand(x0.shape[0], generator=generator) * schedule.T
    eps = torch.randn(x0.shape, generator=generator)
    return (model(_xt(schedule, x0, t.long(), eps), t) - eps).pow(2).mean()


def two_forward_passes(model, schedule, x0, generator=None):
    t, eps = _draw(schedule, x0, generator)
    xt = _xt(schedule, x0, t, eps)
    model(xt, t)
    return (model(xt, t) - eps).pow(2).mean()


def per_image(model, schedule, x0, generator=None):
    t, eps = _draw(schedule, x0, generator)
    return (model(_xt(schedule, x0, t, eps), t) - eps).pow(2).flatten(1).mean(1)


def in_place(model, schedule, x0, generator=None):
    t, eps = _draw(schedule, x0, generator)
    ab = _ab(schedule, "alpha_bars", t, x0)
    xt = x0.mul_(ab.sqrt()).add_((1 - ab).sqrt() * eps)
    return (model(xt, t) - eps).pow(2).mean()


def package(model, schedule, x0, generator=None):
    return ddpm.noise_prediction_loss(model, schedule, x0, generator=generator)


def t_excludes_last(model, schedule, x0, generator=None):
    t = torch.randint(0, schedule.T - 1, (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    return (model(_xt(schedule, x0, t, eps), t) - eps).pow(2).mean()


WRONG = [
    (x0_target, "x0 as the target"),
    (alpha_for_alpha_bar, "ᾱ vs α"),
    (no_sqrt, "square root"),
    (index_t_minus_1, "off-by-one"),
    (summed, "sum instead of a mean"),
    (absolute, "absolute"),
    (swapped, "swapped"),
    (detached_then_requires_grad, "no gradient path"),
    (item, "python number"),
    (global_rng, "generator"),
    (one_t_per_batch, "one timestep"),
    (t_from_one, "range of t"),
    (uniform_noise, "not gaussian"),
    (rand_noise, "not standard normal"),
    (float_t, "not integers"),
    (two_forward_passes, "more than one forward pass"),
    (per_image, "missing reduction"),
    (in_place, "in-place"),
    (package, "package"),
    (t_excludes_last, "range of t"),
]
