"""Wrong answers to Exercise 5.6, toy_ideal_score(schedule, xt, t, data), with the cause to name."""
import torch


def _parts(schedule, xt, t, data):
    ab = schedule.alpha_bars[t].double().reshape(-1, 1)
    x, d = xt.double(), data.double()
    logw = -(x[:, None] - ab.sqrt()[:, None] * d[None]).pow(2).sum(-1) / (2 * (1 - ab))
    return ab, x, d, logw


def _finish(ab, x, x0, xt):
    return (-(x - ab.sqrt() * x0) / (1 - ab)).to(xt.dtype)


def naive_weights(schedule, xt, t, data):
    ab, x, d, logw = _parts(schedule, xt, t, data)
    w = logw.exp()
    return _finish(ab, x, (w / w.sum(1, keepdim=True)) @ d, xt)


def ideal_noise(schedule, xt, t, data):
    ab, x, d, logw = _parts(schedule, xt, t, data)
    return ((x - ab.sqrt() * (torch.softmax(logw, 1) @ d)) / (1 - ab).sqrt()).to(xt.dtype)


def sign_flipped(schedule, xt, t, data):
    ab, x, d, logw = _parts(schedule, xt, t, data)
    return -_finish(ab, x, torch.softmax(logw, 1) @ d, xt)


def no_two(schedule, xt, t, data):
    ab, x, d, logw = _parts(schedule, xt, t, data)
    return _finish(ab, x, torch.softmax(2 * logw, 1) @ d, xt)


def softmax_over_batch(schedule, xt, t, data):
    ab, x, d, logw = _parts(schedule, xt, t, data)
    return _finish(ab, x, torch.softmax(logw, 0) @ d, xt)


def unweighted(schedule, xt, t, data):
    ab, x, d, _ = _parts(schedule, xt, t, data)
    return _finish(ab, x, d.mean(0).expand_as(x), xt)


def nearest_point(schedule, xt, t, data):
    ab, x, d, logw = _parts(schedule, xt, t, data)
    return _finish(ab, x, d[logw.argmax(1)], xt)


def float64_result(schedule, xt, t, data):
    ab, x, d, logw = _parts(schedule, xt, t, data)
    return -(x - ab.sqrt() * (torch.softmax(logw, 1) @ d)) / (1 - ab)


WRONG = [
    (naive_weights, "underflow"),
    (ideal_noise, "ideal noise in place of the score"),
    (sign_flipped, "sign"),
    (no_two, "factor 2"),
    (softmax_over_batch, "wrong axis"),
    (unweighted, "unweighted"),
    (nearest_point, "nearest point"),
    (float64_result, "dtype"),
]
