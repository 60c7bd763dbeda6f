"""The checks of chapters 4 and 5, and diagnoses that once named the wrong cause."""
from __future__ import annotations

import math

import pytest
import torch

import dnnl.exercises as ex
from dnnl.models import ddpm


from _check_helpers import assert_fails, assert_passes  # noqa: E402


def _v(buf, t, x):
    """A float64 schedule buffer gathered at t and shaped to broadcast against x."""
    return buf[t].to(x.dtype).reshape(-1, *[1] * (x.dim() - 1))


# --------------------------------------------------------------------------- chapter 4

def _l_simple(model, schedule, x0, generator, *, buf="alpha_bars", lo=0, hi=None, target="eps", reduce="mean",
              t_model_shift=0, sqrt=True):
    B, T = x0.shape[0], schedule.T
    t = torch.randint(lo, T if hi is None else hi, (B,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    ab = _v(getattr(schedule, buf), t.clamp(max=T - 1), x0)
    xt = (ab.sqrt() if sqrt else ab) * x0 + ((1 - ab).sqrt() if sqrt else 1 - ab) * noise
    pred = model(xt, t + t_model_shift)
    err = (pred - (noise if target == "eps" else x0)) ** 2
    return err.mean() if reduce == "mean" else err.sum()


def test_l_simple_passes_reference_and_from_scratch(capsys):
    assert_passes(ex.check_l_simple,
                  lambda m, s, x0, g: ddpm.noise_prediction_loss(m, s, x0, generator=g), capsys)
    assert_passes(ex.check_l_simple, _l_simple, capsys)


@pytest.mark.parametrize("kwargs, needles", [
    (dict(target="x0"), ["x0 as the target"]),
    (dict(buf="alphas"), ["ᾱ vs α"]),
    (dict(sqrt=False), ["missing square root"]),
    (dict(lo=1, hi=None), ["never saw t = [0]", "off-by-one"]),
    (dict(lo=1, hi=21, t_model_shift=0), ["code timesteps run over 0..T−1"]),
    (dict(buf="alpha_bars_prev"), ["off-by-one"]),
    (dict(reduce="sum"), ["sum instead of a mean"]),
])
def test_l_simple_catches_classic_mistakes(kwargs, needles, capsys):
    assert_fails(ex.check_l_simple, lambda m, s, x0, g: _l_simple(m, s, x0, g, **kwargs), capsys, *needles)


def test_l_simple_refuses_a_detached_number(capsys):
    assert_fails(ex.check_l_simple, lambda m, s, x0, g: _l_simple(m, s, x0, g).item(), capsys, "backward")


def _sampler(eps_fn, schedule, shape, generator, *, var="posterior_variance", noise=True, noise_at_0=False,
             deterministic=False, stop=0, mean_kind="ok"):
    T = schedule.T
    x = torch.randn(shape, generator=generator)
    for i in range(T - 1, stop - 1, -1):
        t = torch.full((shape[0],), i, dtype=torch.long)
        eps = eps_fn(x, t)
        a, ab, b = schedule.alphas[i].item(), schedule.alpha_bars[i].item(), schedule.betas[i].item()
        if mean_kind == "ko":
            mean = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        elif mean_kind == "prev":  # coefficients read at index t-1 (alpha_bars_prev), eps_fn called at t
            j = max(i - 1, 0)
            a, ab, b = schedule.alphas[j].item(), schedule.alpha_bars[j].item(), schedule.betas[j].item()
            mean = (x - b / math.sqrt(1 - ab) * eps) / math.sqrt(a)
        else:
            mean = (x - b / math.sqrt(1 - ab) * eps) / math.sqrt(a)
        sigma = math.sqrt(getattr(schedule, var)[i].item())
        z = torch.randn(shape, generator=generator)
        if deterministic:
            z = torch.ones_like(z)
        x = mean + sigma * z if (noise and (i > 0 or noise_at_0)) else mean
    return x


def test_sampler_passes_reference_and_from_scratch(capsys):
    def reference(eps_fn, schedule, shape, generator):
        x = torch.randn(shape, generator=generator)
        for i in reversed(range(schedule.T)):
            t = torch.full((shape[0],), i, dtype=torch.long)
            x = ddpm.p_sample_step(schedule, eps_fn(x, t), x, t, generator=generator)
        return x

    assert_passes(ex.check_sampler, reference, capsys)
    assert_passes(ex.check_sampler, _sampler, capsys)
    out = assert_passes(ex.check_sampler, lambda *a: _sampler(*a, var="betas"), capsys)
    assert "β_t" in out


@pytest.mark.parametrize("kwargs, needles", [
    (dict(deterministic=True), ["noise z is missing"]),
    (dict(noise=False), ["no noise"]),
    (dict(noise_at_0=True, var="betas"), ["noise added at code index 0"]),
    (dict(stop=1), ["stops before code index 0"]),
    (dict(mean_kind="ko"), ["ᾱ vs α"]),
    (dict(mean_kind="prev"), ["off-by-one"]),
])
def test_sampler_catches_classic_mistakes(kwargs, needles, capsys):
    assert_fails(ex.check_sampler, lambda *a: _sampler(*a, **kwargs), capsys, *needles)


def test_sampler_catches_paper_indexed_loop(capsys):
    def paper_loop(eps_fn, schedule, shape, generator):
        x = torch.randn(shape, generator=generator)
        for i in range(schedule.T, 0, -1):  # paper's T..1 passed straight to eps_fn
            eps = eps_fn(x, torch.full((shape[0],), i, dtype=torch.long))
            x = ddpm.p_sample_step(schedule, eps, x, i - 1, generator=generator)
        return x

    assert_fails(ex.check_sampler, paper_loop, capsys, "0..T−1", "loop from T instead of T−1", "off-by-one")


# --------------------------------------------------------------------------- chapter 5

def _mc(schedule, xt, t, data, n_samples, generator, *, buf="alpha_bars", weighted=True, shift=0, sqrt=True):
    ab = getattr(schedule, buf)[(t + shift).clamp(0, schedule.T - 1)].reshape(-1, 1)        # (B, 1) float64
    idx = torch.randint(0, data.shape[0], (xt.shape[0], n_samples), generator=generator)
    x0 = data[idx, 0].double()                                                            # (B, n)
    x = xt.double()
    eps = (x - ab.sqrt() * x0) / ((1 - ab).sqrt() if sqrt else 1 - ab)
    if not weighted:
        return eps.mean(1, keepdim=True).float()
    w = torch.softmax(-(x - ab.sqrt() * x0) ** 2 / (2 * (1 - ab)), dim=1)
    return (w * eps).sum(1, keepdim=True).float()


def _mc_kernel(schedule, xt, t, data, n_samples, generator, h=0.02):
    """The 'samples that land near x_t' estimator: forward-sample, keep those within h of x_t."""
    ab = schedule.alpha_bars[t].reshape(-1, 1)
    idx = torch.randint(0, data.shape[0], (xt.shape[0], n_samples), generator=generator)
    eps = torch.randn(xt.shape[0], n_samples, generator=generator, dtype=torch.float64)
    x = ab.sqrt() * data[idx, 0].double() + (1 - ab).sqrt() * eps
    near = ((x - xt.double()).abs() < h).double()
    return ((near * eps).sum(1) / near.sum(1).clamp(min=1)).reshape(-1, 1).float()


def test_mc_eps_passes_weighted_estimator_and_not_a_kernel_one_far_from_the_data(capsys):
    assert_passes(ex.check_mc_eps, _mc, capsys)
    # keeping only samples that land near x_t is fine near the data, but far from it no sample lands
    out = assert_fails(ex.check_mc_eps, lambda *a: _mc_kernel(*a, h=0.02), capsys, "far from every data point")
    assert "💡" not in out  # an observation, not a named cause


@pytest.mark.parametrize("kwargs, needle", [
    (dict(buf="alphas"), "ᾱ vs α"),
    (dict(weighted=False), "not weighted"),
    (dict(shift=1), "off-by-one"),
    (dict(sqrt=False), "variance used for the standard deviation"),
])
def test_mc_eps_catches_classic_mistakes(kwargs, needle, capsys):
    assert_fails(ex.check_mc_eps, lambda *a: _mc(*a, **kwargs), capsys, needle, "n_samples")


def test_mc_eps_refuses_the_exact_answer(capsys):
    assert_fails(ex.check_mc_eps, lambda s, xt, t, data, n, g: ddpm.ideal_eps(s, xt, t, data), capsys,
                 "Monte-Carlo")


# --------------------------------------------------------------------------- diagnoses that once were wrong

def test_q_sample_reports_a_nan_as_a_nan_not_as_its_own_noise(capsys):
    def negative_root(schedule, x0, t, noise):
        ab = schedule.gather("alpha_bars", t, x0)
        return ab.sqrt() * x0 + (ab - 1).sqrt() * noise

    out = assert_fails(ex.check_q_sample, negative_root, capsys, "NaN")
    assert "own noise" not in out and "different results" not in out


def test_sampler_blames_sigma_one_step_off_on_sigma(capsys):
    def late_sigma(eps_fn, schedule, shape, generator):
        x = torch.randn(shape, generator=generator)
        for i in range(schedule.T - 1, -1, -1):
            eps = eps_fn(x, torch.full((shape[0],), i, dtype=torch.long))
            b, a, ab = float(schedule.betas[i]), float(schedule.alphas[i]), float(schedule.alpha_bars[i])
            x = (x - b / (1 - ab) ** 0.5 * eps) / a ** 0.5
            if i > 0:
                x = x + float(schedule.posterior_variance[i - 1]) ** 0.5 * torch.randn(shape, generator=generator)
        return x

    out = assert_fails(ex.check_sampler, late_sigma, capsys, "σ taken at the wrong step")
    assert "missing" not in out


def test_oracle_step_does_not_call_an_unexplained_mean_swapped(capsys):
    def clipped_x0(schedule, x0, xt, t, generator):
        x0c = x0.clamp(-0.5, 0.5)
        mean = (schedule.gather("posterior_mean_coef1", t, xt) * x0c
                + schedule.gather("posterior_mean_coef2", t, xt) * xt)
        var = schedule.gather("posterior_variance", t, xt)
        return mean + var.sqrt() * torch.randn(xt.shape, generator=generator)

    out = assert_fails(ex.check_oracle_step, clipped_x0, capsys, "sample mean off")
    assert "💡" not in out  # what is observed, and no cause the test did not isolate


@pytest.mark.parametrize("hints", ["full", "terse"])
def test_prior_bpd_in_float32_says_float64(hints):
    def float32(schedule, x0):
        ab = schedule.alpha_bars[-1].float()
        kl = 0.5 * (ab * x0 ** 2 + (1 - ab) - 1 - torch.log(1 - ab))
        return kl.flatten(1).mean(1) / math.log(2)

    result = ex.evaluate("check_prior_bpd", float32, hints=hints)
    assert result.status == "FAIL" and "float64" in result.message
