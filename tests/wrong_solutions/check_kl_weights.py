"""Wrong answers to Exercise 4.6, kl_weights(schedule, variance), with the cause the check must name."""
import torch


def _ratio(schedule):
    snr = schedule.snr()
    return snr[:-1] / snr[1:]


def _beta_factor(schedule):
    ab = schedule.alpha_bars
    return (1 - ab[:-1]) / (1 - ab[1:])


def no_half(schedule, variance="beta_tilde"):
    lam = _ratio(schedule) - 1
    return lam * _beta_factor(schedule) if variance == "beta" else lam


def upside_down(schedule, variance="beta_tilde"):
    snr = schedule.snr()
    lam = 0.5 * (snr[1:] / snr[:-1] - 1)
    return lam * _beta_factor(schedule) if variance == "beta" else lam


def variance_ignored(schedule, variance="beta_tilde"):
    return 0.5 * (_ratio(schedule) - 1)


def float32(schedule, variance="beta_tilde"):
    lam = 0.5 * (_ratio(schedule) - 1)
    return (lam * _beta_factor(schedule) if variance == "beta" else lam).float()


def with_index_zero(schedule, variance="beta_tilde"):
    ab, prev = schedule.alpha_bars, schedule.alpha_bars_prev
    lam = 0.5 * ((prev / (1 - prev)) / (ab / (1 - ab)) - 1)
    return lam * (1 - prev) / (1 - ab) if variance == "beta" else lam


def alpha_snr(schedule, variance="beta_tilde"):
    a = schedule.alphas
    snr = a / (1 - a)
    lam = 0.5 * (snr[:-1] / snr[1:] - 1)
    return lam * _beta_factor(schedule) if variance == "beta" else lam


def factor_upside_down(schedule, variance="beta_tilde"):
    lam = 0.5 * (_ratio(schedule) - 1)
    return lam / _beta_factor(schedule) if variance == "beta" else lam


WRONG = [
    (no_half, "factor ½"),
    (upside_down, "upside down"),
    (variance_ignored, "variance choice ignored"),
    (float32, "dtype"),
    (with_index_zero, "decoder term"),
    (alpha_snr, "ᾱ vs α"),
    (factor_upside_down, "variance factor upside down"),
]
