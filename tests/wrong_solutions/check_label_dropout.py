"""Wrong answers to Exercise 7.2 (label dropout) and the cause the check must name."""
import torch

from dnnl.models import ddpm


def _where(drop, y, null):
    return torch.where(drop, torch.full_like(y, null), y)


def global_random_stream(y, p_uncond, null_label, generator):
    return _where(torch.rand(y.shape) < p_uncond, y, null_label)


def fixed_seed(y, p_uncond, null_label, generator):
    g = torch.Generator().manual_seed(0)
    return _where(torch.rand(y.shape, generator=g) < p_uncond, y, null_label)


def in_place(y, p_uncond, null_label, generator):
    drop = torch.rand(y.shape, generator=generator) < p_uncond
    y[drop] = null_label
    return y


def minus_one_token(y, p_uncond, null_label, generator):
    return _where(torch.rand(y.shape, generator=generator) < p_uncond, y, -1)


def ten_hard_coded(y, p_uncond, null_label, generator):
    return _where(torch.rand(y.shape, generator=generator) < p_uncond, y, 10)


def inverted_probability(y, p_uncond, null_label, generator):
    return _where(torch.rand(y.shape, generator=generator) > p_uncond, y, null_label)


def one_coin_for_the_batch(y, p_uncond, null_label, generator):
    if torch.rand(1, generator=generator).item() < p_uncond:
        return torch.full_like(y, null_label)
    return y.clone()


def float_labels(y, p_uncond, null_label, generator):
    drop = torch.rand(y.shape, generator=generator) < p_uncond
    return torch.where(drop, float(null_label), y.double())


def shuffled_labels(y, p_uncond, null_label, generator):
    drop = torch.rand(y.shape, generator=generator) < p_uncond
    return _where(drop, y.roll(1), null_label)


def package(y, p_uncond, null_label, generator):
    return ddpm.drop_labels(y, p_uncond, null_label, generator)


WRONG = [
    (global_random_stream, "generator argument is ignored"),
    (fixed_seed, "fixed seed"),
    (in_place, "in-place"),
    (minus_one_token, "wrong null token"),
    (ten_hard_coded, "wrong null token"),
    (inverted_probability, "inverted"),
    (one_coin_for_the_batch, "one coin for the whole batch"),
    (float_labels, "dtype"),
    (shuffled_labels, "not dropped were changed"),
    (package, "package"),
]
