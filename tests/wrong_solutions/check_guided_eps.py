"""Wrong answers to Exercise 7.3 (one guided prediction) and the cause the check must name."""
import torch

from dnnl.models import ddpm


def _both(model, xt, t, y, null):
    eps = model(torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([y, null]))
    return eps.chunk(2)


def two_calls(model, xt, t, y, w):
    c = model(xt, t, y)
    u = model(xt, t, torch.full_like(y, model.num_classes))
    return (1 + w) * c - w * u


def halves_swapped(model, xt, t, y, w):
    u, c = _both(model, xt, t, y, torch.full_like(y, model.num_classes))
    return (1 + w) * c - w * u


def null_is_zero(model, xt, t, y, w):
    c, u = _both(model, xt, t, y, torch.zeros_like(y))
    return (1 + w) * c - w * u


def conditional_only(model, xt, t, y, w):
    return (1 + w) * model(xt, t, y)


def gamma_convention(model, xt, t, y, w):
    c, u = _both(model, xt, t, y, torch.full_like(y, model.num_classes))
    return u + w * (c - u)


def sign_error(model, xt, t, y, w):
    c, u = _both(model, xt, t, y, torch.full_like(y, model.num_classes))
    return (1 + w) * u - w * c


def in_place_x(model, xt, t, y, w):
    c, u = _both(model, xt, t, y, torch.full_like(y, model.num_classes))
    xt.zero_()
    return (1 + w) * c - w * u


def package(model, xt, t, y, w):
    return ddpm.guided(model, y, w)(xt, t)


WRONG = [
    (two_calls, "two model calls"),
    (halves_swapped, "sign error"),
    (null_is_zero, "wrong null token"),
    (conditional_only, "unconditional branch is missing"),
    (gamma_convention, "convention"),
    (sign_error, "sign error"),
    (in_place_x, "in-place"),
    (package, "package"),
]
