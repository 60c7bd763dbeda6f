"""Wrong answers to Exercise 3.2 (prior_bpd) and the cause the check must name."""
import math

import torch

from dnnl.models import ddpm


def _bpd(ab, x, sqrt_mean=True, var=None, reduce="mean", bits=True, dtype=None):
    mean = (ab.sqrt() if sqrt_mean else ab) * x
    v = (1 - ab) if var is None else var
    kl = 0.5 * (mean ** 2 + v - 1 - torch.log(v))
    kl = kl.flatten(1).mean(1) if reduce == "mean" else kl.flatten(1).sum(1)
    return kl / math.log(2) if bits else kl


def float32_throughout(schedule, x0):
    ab = schedule.alpha_bars[-1].float()
    return _bpd(ab, x0)


def nats(schedule, x0):
    return _bpd(schedule.alpha_bars[-1], x0.double(), bits=False).float()


def summed_dims(schedule, x0):
    return _bpd(schedule.alpha_bars[-1], x0.double(), reduce="sum").float()


def index_T_minus_2(schedule, x0):
    return _bpd(schedule.alpha_bars[-2], x0.double()).float()


def alpha_for_alpha_bar(schedule, x0):
    return _bpd(schedule.alphas[-1], x0.double()).float()


def no_sqrt_in_mean(schedule, x0):
    return _bpd(schedule.alpha_bars[-1], x0.double(), sqrt_mean=False).float()


def std_for_variance(schedule, x0):
    ab = schedule.alpha_bars[-1]
    return _bpd(ab, x0.double(), var=(1 - ab).sqrt()).float()


def batch_mean(schedule, x0):
    return _bpd(schedule.alpha_bars[-1], x0.double()).mean().float()


def float64_result(schedule, x0):
    return _bpd(schedule.alpha_bars[-1], x0.double())


def index_T(schedule, x0):
    return _bpd(schedule.alpha_bars[schedule.T], x0.double()).float()


def in_place(schedule, x0):
    ab = schedule.alpha_bars[-1]
    x = x0.mul_(ab.sqrt().float())
    kl = 0.5 * (x.double() ** 2 + (1 - ab) - 1 - torch.log1p(-ab))
    return (kl.flatten(1).mean(1) / math.log(2)).float()


def package(schedule, x0):
    return ddpm.prior_bpd(schedule, x0)


def first_index(schedule, x0):
    return _bpd(schedule.alpha_bars[0], x0.double()).float()


WRONG = [
    (float32_throughout, "float64"),
    (nats, "nats instead of bits"),
    (summed_dims, "sum over the dimensions"),
    (index_T_minus_2, "off-by-one"),
    (alpha_for_alpha_bar, "ᾱ vs α"),
    (no_sqrt_in_mean, "square root in the mean"),
    (std_for_variance, "standard deviation used for the variance"),
    (batch_mean, "reduction over the batch"),
    (float64_result, "dtype"),
    (index_T, "off-by-one"),
    (in_place, "in-place"),
    (package, "package"),
    (first_index, None),
]
