"""Wrong answers to Exercise 3.1 (normal_kl) and the cause the check must name."""
import torch


def swapped(m1, lv1, m2, lv2):
    return 0.5 * (lv1 - lv2 + torch.exp(lv2 - lv1) + (m1 - m2) ** 2 * torch.exp(-lv1) - 1.0)


def no_half(m1, lv1, m2, lv2):
    return lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2) - 1.0


def bits(m1, lv1, m2, lv2):
    return 0.5 * (lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2) - 1.0) / 0.6931471805599453


def no_minus_one(m1, lv1, m2, lv2):
    return 0.5 * (lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2))


def logvar_as_log_std(m1, lv1, m2, lv2):
    v1, v2 = torch.exp(2 * lv1), torch.exp(2 * lv2)
    return 0.5 * (torch.log(v2) - torch.log(v1) + v1 / v2 + (m1 - m2) ** 2 / v2 - 1.0)


def log_term_sign(m1, lv1, m2, lv2):
    return 0.5 * (lv1 - lv2 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2) - 1.0)


def ratio_upside_down(m1, lv1, m2, lv2):
    return 0.5 * (lv2 - lv1 + torch.exp(lv2 - lv1) + (m1 - m2) ** 2 * torch.exp(-lv2) - 1.0)


def mean_gap_not_divided(m1, lv1, m2, lv2):
    return 0.5 * (lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 - 1.0)


def summed(m1, lv1, m2, lv2):
    return (0.5 * (lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2) - 1.0)).sum()


def averaged(m1, lv1, m2, lv2):
    return (0.5 * (lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2) - 1.0)).mean()


def log_of_logvar(m1, lv1, m2, lv2):
    return 0.5 * (torch.log(lv2) - torch.log(lv1) + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2) - 1.0)


def logvar_as_variance(m1, lv1, m2, lv2):
    return 0.5 * (torch.log(lv2) - torch.log(lv1) + lv1 / lv2 + (m1 - m2) ** 2 / lv2 - 1.0)


def in_place(m1, lv1, m2, lv2):
    gap = lv1.sub_(lv2)
    return 0.5 * (-gap + torch.exp(gap) + (m1 - m2) ** 2 * torch.exp(-lv2) - 1.0)


def no_mean_term(m1, lv1, m2, lv2):
    return 0.5 * (lv2 - lv1 + torch.exp(lv1 - lv2) - 1.0)


WRONG = [
    (swapped, "swapped"),
    (no_half, "one half"),
    (bits, "bits instead of nats"),
    (no_minus_one, "constant term"),
    (logvar_as_log_std, "log standard deviation"),
    (log_term_sign, "sign error in the log term"),
    (ratio_upside_down, "upside down"),
    (mean_gap_not_divided, "not divided"),
    (summed, "reduction"),
    (averaged, "reduction"),
    (log_of_logvar, "log of a log-variance"),
    (logvar_as_variance, "log of a log-variance"),
    (in_place, "in-place"),
    (no_mean_term, None),
]
