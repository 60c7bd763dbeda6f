"""Wrong answers to Exercise 3.6, decoder_log_likelihood(x, mean, log_scale), with the cause to name."""
import math

import torch


def _ends(x, mean, log_scale, h=1 / 255, inv=None):
    inv = torch.exp(-log_scale) if inv is None else inv
    return (x - mean + h) * inv, (x - mean - h) * inv


def _interior(up, lo):
    return torch.log((torch.special.ndtr(up) - torch.special.ndtr(lo)).clamp(min=1e-12))


def _join(x, black, white, interior):
    return torch.where(x < -0.999, black, torch.where(x > 0.999, white, interior))


def no_edges(x, mean, log_scale):
    up, lo = _ends(x, mean, log_scale)
    return _interior(up, lo)


def wide_bins(x, mean, log_scale):
    up, lo = _ends(x, mean, log_scale, h=2 / 255)
    return _join(x, torch.special.log_ndtr(up), torch.special.log_ndtr(-lo), _interior(up, lo))


def log_variance(x, mean, log_scale):
    up, lo = _ends(x, mean, log_scale, inv=torch.exp(-log_scale / 2))
    return _join(x, torch.special.log_ndtr(up), torch.special.log_ndtr(-lo), _interior(up, lo))


def tanh_cdf(x, mean, log_scale):
    def cdf(z):
        return 0.5 * (1 + torch.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
    up, lo = _ends(x, mean, log_scale)
    interior = torch.log((cdf(up) - cdf(lo)).clamp(min=1e-12))
    return _join(x, torch.log(cdf(up)), torch.log(1 - cdf(lo)), interior)


def tanh_interior(x, mean, log_scale):
    def cdf(z):
        return 0.5 * (1 + torch.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
    up, lo = _ends(x, mean, log_scale)
    interior = torch.log((cdf(up) - cdf(lo)).clamp(min=1e-12))
    return _join(x, torch.special.log_ndtr(up), torch.special.log_ndtr(-lo), interior)


def log_of_cdf(x, mean, log_scale):
    up, lo = _ends(x, mean, log_scale)
    return _join(x, torch.log(torch.special.ndtr(up)), torch.log(1 - torch.special.ndtr(lo)), _interior(up, lo))


def clamped_edges(x, mean, log_scale):
    up, lo = _ends(x, mean, log_scale)
    black = torch.log(torch.special.ndtr(up).clamp(min=1e-12))
    white = torch.log((1 - torch.special.ndtr(lo)).clamp(min=1e-12))
    return _join(x, black, white, _interior(up, lo))


def in_bits(x, mean, log_scale):
    up, lo = _ends(x, mean, log_scale)
    nats = _join(x, torch.special.log_ndtr(up), torch.special.log_ndtr(-lo), _interior(up, lo))
    return nats / math.log(2)


def swapped_edges(x, mean, log_scale):
    up, lo = _ends(x, mean, log_scale)
    return _join(x, torch.special.log_ndtr(-lo), torch.special.log_ndtr(up), _interior(up, lo))


def unclamped_interior(x, mean, log_scale):
    up, lo = _ends(x, mean, log_scale)
    interior = torch.log(torch.special.ndtr(up) - torch.special.ndtr(lo))
    return _join(x, torch.special.log_ndtr(up), torch.special.log_ndtr(-lo), interior)


WRONG = [
    (no_edges, "edge bins"),
    (wide_bins, "bin width"),
    (log_variance, "log standard deviation vs log variance"),
    (tanh_cdf, "underflow"),            # log of the approximate Φ is -inf far in the tail: seen first
    (tanh_interior, "approximate φ"),
    (log_of_cdf, "underflow"),
    (clamped_edges, "clamped probability"),
    (in_bits, "bits instead of nats"),
    (swapped_edges, "edge bins swapped"),
    (unclamped_interior, "zero mass"),
]
