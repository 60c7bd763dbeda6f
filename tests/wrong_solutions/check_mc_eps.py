"""Wrong answers to Exercise 5.1 (mc_ideal_eps) and the cause the check must name."""
import torch

from dnnl.models import ddpm


def _parts(schedule, xt, t, data, n, generator, name="alpha_bars", shift=0):
    tt = (t + shift).clamp(0, schedule.T - 1)
    ab = getattr(schedule, name)[tt].to(torch.float64).reshape(-1, 1, 1)
    pick = torch.randint(len(data), (n,), generator=generator)
    x0 = data[pick].to(torch.float64)
    x = xt.to(torch.float64)
    return ab, x0, x


def _estimate(schedule, xt, t, data, n, generator, name="alpha_bars", shift=0, std_pow=0.5, log_space=True,
              weighted=True):
    ab, x0, x = _parts(schedule, xt, t, data, n, generator, name, shift)
    resid = x[:, None, :] - ab.sqrt() * x0[None, :, :]
    eps = resid / (1 - ab) ** std_pow
    logw = -0.5 * (resid ** 2).sum(-1) / (1 - ab[..., 0])
    if not weighted:
        w = torch.full_like(logw, 1 / logw.shape[1])
    elif log_space:
        w = torch.softmax(logw, dim=1)
    else:
        w = logw.exp() / logw.exp().sum(1, keepdim=True)
    return (w[..., None] * eps).sum(1)


def underflowing_weights(schedule, xt, t, data, n_samples, generator):
    return _estimate(schedule, xt, t, data, n_samples, generator, log_space=False).to(xt.dtype)


def alpha_for_alpha_bar(schedule, xt, t, data, n_samples, generator):
    return _estimate(schedule, xt, t, data, n_samples, generator, name="alphas").to(xt.dtype)


def divided_by_variance(schedule, xt, t, data, n_samples, generator):
    return _estimate(schedule, xt, t, data, n_samples, generator, std_pow=1.0).to(xt.dtype)


def unweighted(schedule, xt, t, data, n_samples, generator):
    return _estimate(schedule, xt, t, data, n_samples, generator, weighted=False).to(xt.dtype)


def zeros(schedule, xt, t, data, n_samples, generator):
    return torch.zeros_like(xt)


def flat_shape(schedule, xt, t, data, n_samples, generator):
    return _estimate(schedule, xt, t, data, n_samples, generator).to(xt.dtype).reshape(-1)


def float64_result(schedule, xt, t, data, n_samples, generator):
    return _estimate(schedule, xt, t, data, n_samples, generator)


def exact_sum(schedule, xt, t, data, n_samples, generator):
    ab = schedule.alpha_bars[t].to(torch.float64).reshape(-1, 1, 1)
    resid = xt.double()[:, None, :] - ab.sqrt() * data.double()[None, :, :]
    w = torch.softmax(-0.5 * (resid ** 2).sum(-1) / (1 - ab[..., 0]), dim=1)
    return (w[..., None] * resid / (1 - ab).sqrt()).sum(1).to(xt.dtype)


def index_t_minus_1(schedule, xt, t, data, n_samples, generator):
    return _estimate(schedule, xt, t, data, n_samples, generator, shift=-1).to(xt.dtype)


def package(schedule, xt, t, data, n_samples, generator):
    return ddpm.ideal_eps(schedule, xt, t, data)


def global_rng(schedule, xt, t, data, n_samples, generator):
    return _estimate(schedule, xt, t, data, n_samples, None).to(xt.dtype)


WRONG = [
    (underflowing_weights, "underflow"),
    (alpha_for_alpha_bar, "ᾱ vs α"),
    (divided_by_variance, "variance used for the standard deviation"),
    (unweighted, "not weighted"),
    (zeros, "unconditional mean"),
    (flat_shape, None),
    (float64_result, "dtype"),
    (exact_sum, "exact sum"),
    (index_t_minus_1, "off-by-one"),
    (package, "package"),
    (global_rng, "generator"),
]
