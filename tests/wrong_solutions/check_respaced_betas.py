"""Wrong answers to Exercise 6.2 (respaced_betas) and the cause the check must name."""
import torch

from dnnl.models import ddpm


def _ab(schedule, timesteps):
    ab = schedule.alpha_bars[timesteps].double()
    return ab, torch.cat([ab.new_ones(1), ab[:-1]])


def original_betas(schedule, timesteps):
    return schedule.betas[timesteps].double()


def ratio_of_roots(schedule, timesteps):
    ab, prev = _ab(schedule, timesteps)
    return 1 - (ab / prev).sqrt()


def alpha_prime(schedule, timesteps):
    ab, prev = _ab(schedule, timesteps)
    return ab / prev


def upside_down(schedule, timesteps):
    ab, prev = _ab(schedule, timesteps)
    return 1 - prev / ab


def first_from_index_0(schedule, timesteps):
    ab = schedule.alpha_bars[timesteps].double()
    return 1 - ab / torch.cat([schedule.alpha_bars[:1].double(), ab[:-1]])


def package(schedule, timesteps):
    return ddpm.respaced_betas(schedule, timesteps)


def in_place(schedule, timesteps):
    timesteps += 0 * timesteps
    ab, prev = _ab(schedule, timesteps.sort().values)
    timesteps.copy_(timesteps.flip(0))
    return 1 - ab / prev


WRONG = [
    (original_betas, "original"),
    (ratio_of_roots, "square root where none belongs"),
    (alpha_prime, "α′"),
    (upside_down, "upside down"),
    (first_from_index_0, "first step"),
    (package, "package"),
    (in_place, "in-place"),
]
