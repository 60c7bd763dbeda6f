"""Wrong answers to Exercise 1.1 (to_model_range) and the cause the check must name."""
import sys

import torch


def minmax_batch(x):
    x = x.float()
    return (x - x.min()) / (x.max() - x.min()) * 2 - 1


def minmax_per_image(x):
    x = x.float()
    flat = x.reshape(len(x), -1) if x.dim() > 2 else x.reshape(1, -1)
    lo = flat.min(1).values.reshape(-1, *[1] * (x.dim() - 1)) if x.dim() > 2 else flat.min()
    hi = flat.max(1).values.reshape(-1, *[1] * (x.dim() - 1)) if x.dim() > 2 else flat.max()
    return (x - lo) / (hi - lo).clamp_min(1e-6) * 2 - 1


def unit_range(x):
    return x.float() / 255


def uint8_rule_for_floats_too(x):
    return x.float() / 127.5 - 1


def float64_result(x):
    return x.double() / 127.5 - 1 if x.dtype == torch.uint8 else x.double() * 2 - 1


def in_place_on_floats(x):
    if x.dtype == torch.uint8:
        return x.float() / 127.5 - 1
    return x.mul_(2).sub_(1)


def no_float_conversion(x):
    return x * 2 - 1 if x.dtype == torch.uint8 else x * 2 - 1


def half_range(x):
    return x.float() / 255 - 0.5 if x.dtype == torch.uint8 else x - 0.5


def mnist_standardised(x):
    u = x.float() / 255 if x.dtype == torch.uint8 else x
    return (u - 0.1307) / 0.3081


def twice_255(x):
    return x.float() / 255 / 255 * 2 - 1


def zero_to_two(x):
    return x.float() / 127.5 if x.dtype == torch.uint8 else x * 2


def no_return(x):
    x.float() / 127.5 - 1


def floats_left_alone(x):
    return x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x


def clipped_short(x):
    u = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x * 2 - 1
    return u.clamp(-0.99, 0.99)


def exits(x):
    sys.exit(0)


WRONG = [
    (minmax_batch, "min-max"),
    (minmax_per_image, "min-max"),
    (unit_range, "[0, 1]"),
    (uint8_rule_for_floats_too, "treated as 0..255"),
    (float64_result, "dtype"),
    (in_place_on_floats, "in-place"),
    (no_float_conversion, "integer arithmetic"),
    (half_range, "[−0.5, 0.5]"),
    (mnist_standardised, "standardising"),
    (twice_255, "divided by 255 twice"),
    (zero_to_two, "[0, 2]"),
    (no_return, "missing return"),
    (floats_left_alone, "still in [0, 1]"),
    (clipped_short, None),
    (exits, "exit"),
]
