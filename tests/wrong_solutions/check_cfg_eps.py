"""Wrong answers to Exercise 7.1 (the guidance combination) and the cause the check must name."""
from dnnl.models import ddpm


def sign_swapped(eps_cond, eps_uncond, w):
    return (1 + w) * eps_uncond - w * eps_cond


def plus_instead_of_minus(eps_cond, eps_uncond, w):
    return (1 + w) * eps_cond + w * eps_uncond


def gamma_convention(eps_cond, eps_uncond, w):
    return eps_uncond + w * (eps_cond - eps_uncond)


def gamma_on_top_of_w(eps_cond, eps_uncond, w):
    return eps_cond + (1 + w) * (eps_cond - eps_uncond)


def no_unconditional_branch(eps_cond, eps_uncond, w):
    return (1 + w) * eps_cond


def weight_ignored(eps_cond, eps_uncond, w):
    return 2 * eps_cond - eps_uncond


def in_place(eps_cond, eps_uncond, w):
    eps_cond.mul_(1 + w)
    return eps_cond - w * eps_uncond


def only_the_difference(eps_cond, eps_uncond, w):
    return w * (eps_cond - eps_uncond)


def package(eps_cond, eps_uncond, w):
    return ddpm.cfg_eps(eps_cond, eps_uncond, w)


WRONG = [
    (sign_swapped, "sign error"),
    (plus_instead_of_minus, "sign error"),
    (gamma_convention, "convention"),
    (gamma_on_top_of_w, "convention"),
    (no_unconditional_branch, "unconditional branch is missing"),
    (weight_ignored, None),
    (in_place, "in-place"),
    (only_the_difference, None),
    (package, "package"),
]
