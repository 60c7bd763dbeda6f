"""Chapter 2's check: one sample of the posterior q(x_{t−1} | x_t, x_0), tested statistically."""
from __future__ import annotations

import math

import torch

from ._compare import _KS_LIMIT, _NOT_GAUSSIAN, _at, _ddpm, _fmt, _gen, _normal_ks
from ._core import _call, _check, _dtype, _Fail, _tensor, _why


def _oracle_mean_variants(schedule, x0, xt, t, T, d):
    """Known-wrong posterior means (name, mean, variance) in float64."""
    x0d, xtd = x0.double(), xt.double()
    ab, ab_prev = _at(schedule.alpha_bars, t, d), _at(schedule.alpha_bars_prev, t, d)
    a, b = _at(schedule.alphas, t, d), _at(schedule.betas, t, d)
    a_prev = _at(schedule.alphas, (t - 1).clamp(min=0), d)
    a_prev = torch.where(t.reshape(-1, *[1] * (d - 1)) == 0, torch.ones_like(a_prev), a_prev)
    out = []
    for shift, sign in ((-1, "−"), (1, "+")):
        ts = (t + shift).clamp(0, T - 1)
        c1, c2 = _at(schedule.posterior_mean_coef1, ts, d), _at(schedule.posterior_mean_coef2, ts, d)
        out.append((f"off-by-one t{sign}1", c1 * x0d + c2 * xtd, _at(schedule.posterior_variance, ts, d)))
    # every ᾱ replaced by α
    c1 = a_prev.sqrt() * b / (1 - a)
    c2 = a.sqrt() * (1 - a_prev) / (1 - a)
    out.append(("alpha", c1 * x0d + c2 * xtd, None))
    c2 = ab.sqrt() * (1 - ab_prev) / (1 - ab)
    c1 = ab_prev.sqrt() * b / (1 - ab)
    out.append(("abar-in-c2", c1 * x0d + c2 * xtd, None))
    c1 = a.sqrt() * b / (1 - ab)
    c2 = a.sqrt() * (1 - ab_prev) / (1 - ab)
    out.append(("alpha-in-c1", c1 * x0d + c2 * xtd, None))
    c1 = ab_prev * b / (1 - ab)
    c2 = a * (1 - ab_prev) / (1 - ab)
    out.append(("no-sqrt", c1 * x0d + c2 * xtd, None))
    c1, c2 = _at(schedule.posterior_mean_coef1, t, d), _at(schedule.posterior_mean_coef2, t, d)
    out.append(("swapped", c2 * x0d + c1 * xtd, None))
    return out


_OFF = ("your coefficients are those of index t{0}1. Code index t is paper step t+1; "
        "schedule.posterior_mean_coef1[t] and posterior_variance[t] already belong to it.")
_ORACLE_WHY = {
    "off-by-one t−1": _why("an off-by-one in t", _OFF.format("−")),
    "off-by-one t+1": _why("an off-by-one in t", _OFF.format("+")),
    "alpha": _why("ᾱ vs α", "the posterior mean uses ᾱ_{t−1} and ᾱ_t (products of α), not single-step α's."),
    "abar-in-c2": _why("ᾱ vs α in the x_t coefficient", "it holds √α_t, not √ᾱ_t."),
    "alpha-in-c1": _why("ᾱ vs α in the x0 coefficient", "it holds √ᾱ_{t−1}, not √α_t."),
    "no-sqrt": _why("a missing square root in the coefficients", "they contain √ᾱ_{t−1} and √α_t."),
    "swapped": _why("the x0 and x_t coefficients are swapped"),
}


@_check(2, "one sample of q(x_{t−1} | x_t, x_0), with the noise z",
        "the schedule already holds the posterior's mean coefficients and variance at each code index; a sample "
        "is the mean plus the standard deviation times standard normal noise drawn from `generator`, and the "
        "variance is exactly 0 at t = 0.",
        terse="a sample of the Gaussian posterior: its mean, plus its standard deviation times fresh standard "
              "normal noise from the generator",
        hides=("dnnl.models.ddpm:oracle_denoise", "dnnl.models.ddpm:q_posterior",
               "dnnl.models.ddpm.diffusion:_q_posterior", "dnnl.models.ddpm:p_sample_step",
               "dnnl.models.ddpm.diffusion:_p_sample_step", "dnnl.models.ddpm:q_sigma_posterior"))
def check_oracle_step(fn) -> list[str]:
    """Check ``fn(schedule, x0, xt, t, generator) -> x_{t−1}``, a sample of q(x_{t−1} | x_t, x0) (Eq. @eq-oracle-step).

    Compared with ``dnnl.models.ddpm.q_posterior`` statistically: 400 copies of each (x0, x_t, t) give the
    sample mean (must be μ̃_t), variance (must be β̃_t; exactly 0 at t = 0) and shape (Gaussian).
    """
    ddpm = _ddpm()
    schedule = ddpm.NoiseSchedule.linear(T=1000)
    R, shape = 400, (1, 4, 4)
    groups = [1, 2, 40, 400, 999, 0]
    g = _gen(2)
    x0s, xts = [], []
    for tv in groups:
        x0 = torch.rand(1, *shape, generator=g) * 2 - 1
        xt = ddpm.q_sample(schedule, x0, torch.tensor([tv]), torch.randn(1, *shape, generator=g))
        x0s.append(x0.expand(R, *shape))
        xts.append(xt.expand(R, *shape))
    x0, xt = torch.cat(x0s).contiguous(), torch.cat(xts).contiguous()
    t = torch.tensor(groups).repeat_interleave(R)
    on = f"a batch of {len(groups)}×{R} images (400 copies each of one (x0, x_t) pair at t = {groups})"
    out = _tensor(_call(fn, schedule, x0.clone(), xt.clone(), t.clone(), _gen(7), on=on))
    if out.shape != xt.shape:
        raise _Fail(f"On {on}: expected x_(t−1) of shape {tuple(xt.shape)}, got {tuple(out.shape)}.")
    if not torch.isfinite(out).all():
        raise _Fail(f"On {on}: the result contains NaN or infinite values.",
                    _why("a NaN or inf from an invalid operation", "a square root or log of a negative number, "
                         "or a division by zero? At t = 0 the posterior variance is exactly 0, so its log is −inf."))
    again = _tensor(_call(fn, schedule, x0.clone(), xt.clone(), t.clone(), _gen(7), on=on))
    if not torch.equal(again, out):
        raise _Fail(f"On {on}: two calls with identically seeded generators gave different samples.",
                    _why("noise not drawn from the generator", "draw z with the generator you are given: "
                         "torch.randn(xt.shape, generator=generator, dtype=xt.dtype, device=xt.device)."))

    problems = _oracle_groups(schedule, x0, xt, t, out, groups, R)
    if not problems:
        on_i, problems = _int_t(fn, schedule, g, R, shape)
        on = on_i or on
    if problems:
        here, what, _ = problems[0]
        others = [p[0] for p in problems[1:]]
        extra = f"\nAlso wrong at: {', '.join(others)}." if others else ""
        common = [w for w in problems[0][2] if all(w in p[2] for p in problems)]
        raise _Fail(f"On {on}: your samples do not follow q(x_(t−1) | x_t, x0).\n{what}{extra}", common[:1])
    ddpm_mean, var = ddpm.q_posterior(schedule, x0.double(), xt.double(), t)[:2]
    keep = t > 0
    resid = (out.double()[keep] - ddpm_mean[keep]) / var[keep].sqrt()
    ks = _normal_ks(resid)
    if ks > _KS_LIMIT:
        raise _Fail(f"On {on}: the mean and variance of your samples are right, but (x_(t−1) − μ̃_t)/√β̃_t is "
                    f"not standard normal (Kolmogorov–Smirnov statistic {_fmt(ks)}·n^(−1/2), limit "
                    f"{_KS_LIMIT}·n^(−1/2)).", _NOT_GAUSSIAN)
    _dtype(out, xt.dtype, on=on, what="x_(t−1)")
    return [f"400 samples at each of t = {groups}, with one (x0, x_t) pair per t, mixed in one batch; "
            "then t = 500 and t = 0 given as Python ints",
            "sample mean matches μ̃_t from dnnl.models.ddpm.q_posterior and the sample variance matches β̃_t "
            "(5 standard errors); the noise is Gaussian (Kolmogorov–Smirnov); t = 0 returns the mean exactly; "
            "the same generator seed gives the same sample; float32 in, float32 out"]


def _int_t(fn, schedule, g, R: int, shape):
    """A Python int t, as the package also accepts: one mid step and the last step; (where, problems)."""
    ddpm = _ddpm()
    for tv in (500, 0):
        x0_i = (torch.rand(1, *shape, generator=g) * 2 - 1).expand(R, *shape).contiguous()
        xt_i = ddpm.q_sample(schedule, x0_i[:1], tv, torch.randn(1, *shape, generator=g)).expand(R, *shape)
        on_i = f"{R} copies of one (x0, x_t) pair with t given as the Python int {tv}"
        out_i = _tensor(_call(fn, schedule, x0_i.clone(), xt_i.contiguous(), tv, _gen(8), on=on_i))
        if out_i.shape != x0_i.shape:
            raise _Fail(f"On {on_i}: expected x_(t−1) of shape {tuple(x0_i.shape)}, got {tuple(out_i.shape)}.")
        problems = _oracle_groups(schedule, x0_i, xt_i, torch.full((R,), tv), out_i, [tv], R)
        if problems:
            return on_i, problems
    return "", []


def _oracle_groups(schedule, x0, xt, t, out, groups, R):
    """Per-t statistics of R samples per group; a list of (where, what, causes that fit) for each bad group."""
    ddpm = _ddpm()
    d, T = x0.dim(), schedule.T
    D = x0[0].numel()
    mean, _, _ = ddpm.q_posterior(schedule, x0.double(), xt.double(), t)
    var = _at(schedule.posterior_variance, t, d).expand_as(mean)
    beta = _at(schedule.betas, t, d).expand_as(mean)
    wrong_means = _oracle_mean_variants(schedule, x0, xt, t, T, d)
    outd = out.double()
    rtol = 5 * math.sqrt(2 / ((R - 1) * D)) + 1e-3
    problems = []
    for k, tv in enumerate(groups):
        sl = slice(k * R, (k + 1) * R)
        o, m, v, bt = outd[sl], mean[sl], float(var[sl].reshape(-1)[0]), float(beta[sl].reshape(-1)[0])
        m_hat, v_hat = o.mean(0), float(o.var(0).mean())
        dev = float((m_hat - m[0]).abs().max())
        here = f"t = {tv} (paper step {tv + 1})"
        if tv == 0:
            if float((o - m).abs().max()) <= 2e-3:  # float32 coefficients at t = 0 round to about 1e-3
                continue
            if v_hat > 1e-10:
                problems.append((here, f"at {here} your samples vary (std {_fmt(math.sqrt(v_hat))}); at t = 0 the "
                                       "step must return the posterior mean, which is x0 itself.",
                                 [_why("noise added at code index 0", "the last step (code index 0, paper step 1) "
                                       "adds no noise, because β̃ at t = 0 is exactly 0. Mask the noise with (t > 0).")]))
                continue
        tol_m = 5 * math.sqrt(max(v_hat, v) / R) + 1e-4
        mean_ok = dev <= tol_m
        var_ok = tv == 0 or abs(v_hat / v - 1) <= rtol
        if mean_ok and var_ok:
            continue
        what = (f"at {here}: sample mean off by up to {_fmt(dev)} (allowed {_fmt(tol_m)}), sample variance "
                f"{_fmt(v_hat)} (expected β̃ = {_fmt(v)}).")
        wrong = [(n, wm[sl][0], None if wv is None else float(wv[sl].reshape(-1)[0])) for n, wm, wv in wrong_means]
        problems.append((here, what, _oracle_causes(o, m[0], m_hat, v, v_hat, bt, tv, dev, mean_ok, var_ok,
                                                     tol_m, rtol, wrong)))
    return problems


def _oracle_causes(o, m, m_hat, v, v_hat, bt, tv, dev, mean_ok, var_ok, tol_m, rtol, wrong_means) -> list:
    """Causes that this group's statistics isolate (each tested against this group alone)."""
    whys = []
    sd = max(math.sqrt(v), 1e-12)
    outside = (torch.special.ndtr((-1 - m) / sd) + torch.special.ndtr((m - 1) / sd)).sum() * len(o)
    if float(o.abs().max()) <= 1 + 1e-6 and float(outside) > 20:
        whys.append(_why("clipping", "your samples never leave [−1, 1], but q(x_(t−1) | x_t, x0) is a Gaussian "
                         "with much of its mass outside; the exercise asks for no clipping."))
    if v_hat < 1e-12 * max(v, 1e-30) or v_hat < 1e-14:
        shift = (m_hat - m)
        if tv > 0 and float((shift - math.sqrt(v)).abs().max()) <= 1e-4 + 1e-3 * math.sqrt(v):
            whys.append(_why("the noise z is missing", "you return mean + √β̃ (a fixed shift, the same for every "
                             "sample) instead of mean + √β̃·z with z ~ N(0, I)."))
        elif dev <= 1e-4:
            whys.append(_why("no noise", "you return the posterior mean. A sample of q(x_{t−1} | x_t, x0) is "
                             "mean + √β̃_t·z with z ~ N(0, I)."))
    elif mean_ok and not var_ok:
        if abs(v_hat / bt - 1) <= rtol and abs(bt / v - 1) > 2 * rtol:
            whys.append(_why("β_t used for the posterior variance", "the true posterior q(x_{t−1} | x_t, x0) "
                             "has variance β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t (schedule.posterior_variance); "
                             "β_t is a choice for the learned p_θ only."))
        elif abs(v_hat / (v * v) - 1) <= rtol:
            whys.append(_why("variance used for the standard deviation", "z is multiplied by β̃_t; the standard "
                             "deviation is √β̃_t."))
        elif abs(v_hat - 1) <= rtol:
            whys.append(_why("unscaled noise", "multiply z by the standard deviation √β̃_t."))
    if not mean_ok:
        for name, wm, wv in wrong_means:
            if wv is None:  # a wrong mean with the right variance
                v_fits = var_ok
            else:  # an off-by-one moves both; the noise stays masked at t = 0
                wv = 0.0 if tv == 0 else wv
                v_fits = var_ok or (v_hat <= 1e-14 if wv == 0 else abs(v_hat / wv - 1) <= rtol)
            tol_w = tol_m if tv > 0 else 5e-3  # float32 coefficients at t = 0 round to about 1e-3
            if v_fits and float((m_hat - wm).abs().max()) <= tol_w and float((wm - m).abs().max()) > tol_w:
                whys.append(_ORACLE_WHY[name])
    return whys
