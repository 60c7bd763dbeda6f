"""Chapter 5's check: a Monte-Carlo estimate of E[ε | x_t] against the ideal denoiser."""
from __future__ import annotations

import math

import torch

from ._compare import _NAN_WHY, _at, _ddpm, _fmt, _gen, _tlist
from ._core import _call, _check, _dtype, _Fail, _tensor, _why


def _post_eps(abar: torch.Tensor, xt: torch.Tensor, data: torch.Tensor, sqrt_mean=True, sqrt_std=True):
    """E[ε | x_t] and sd(ε | x_t) for 1-D data under a (possibly wrong) convention; all float64 (B,)."""
    x0 = data.double().reshape(1, -1)
    x = xt.double().reshape(-1, 1)
    ab = abar.double().reshape(-1, 1)
    m = ab.sqrt() if sqrt_mean else ab
    var = 1 - ab
    std = var.sqrt() if sqrt_std else var
    logw = -((x - m * x0) ** 2) / (2 * var)
    w = torch.softmax(logw, dim=1)
    e = (x - m * x0) / std
    mean = (w * e).sum(1)
    sd = ((w * (e - mean[:, None]) ** 2).sum(1)).clamp_min(0).sqrt()
    return mean, sd


def _far_points(fn, schedule, data, n) -> None:
    """Points x_t far from every sample: the weights must not underflow (the answer is well defined)."""
    ddpm = _ddpm()
    xt, t = torch.tensor([[8.0], [-8.0]]), torch.tensor([0, 1])
    on = f"two points far from every data point, x_t = [8, −8] at t = [0, 1], n_samples = {n}"
    out = _tensor(_call(fn, schedule, xt.clone(), t.clone(), data.clone(), n, _gen(23), on=on))
    exp = ddpm.ideal_eps(schedule, xt.double(), t, data.double()).double()
    if out.shape != exp.shape:
        raise _Fail(f"On {on}: expected an estimate of shape {tuple(exp.shape)}, got {tuple(out.shape)}.")
    if not torch.isfinite(out).all():
        raise _Fail(f"On {on}: your estimate is NaN or infinite there, though it is finite near the data.",
                    _why("weights that underflow", "likelihood weights exp(−(x_t − √ᾱ·x0)²/(2(1 − ᾱ))) are all 0 "
                         "far from the data: normalise them in log space (torch.softmax over the log-weights)."))
    err = float((out.double() - exp).abs().max())
    if err > 0.1:
        raise _Fail(f"On {on}: expected {[_fmt(float(v)) for v in exp.reshape(-1)]}, got "
                    f"{[_fmt(float(v)) for v in out.reshape(-1)]}.")


def _mc_variants(schedule, xt, t, data, ab) -> list:
    """Known-wrong E[ε | x_t] (float64, (B,)), each with its cause."""
    T, B = schedule.T, len(t)
    A = lambda name, i: torch.as_tensor(getattr(schedule, name)).double()[i.clamp(0, T - 1)]  # noqa: E731
    return [
        (_post_eps(A("alphas", t), xt, data)[0], _why("ᾱ vs α", "q(x_t | x0) uses ᾱ_t (schedule.alpha_bars[t]), "
                                                       "not the single-step α_t.")),
        (_post_eps(A("alpha_bars", t), xt, data, sqrt_mean=False, sqrt_std=False)[0],
         _why("a missing square root", "q(x_t | x0) has mean √ᾱ_t·x0 and standard deviation √(1 − ᾱ_t).")),
        (_post_eps(A("alpha_bars", t), xt, data, sqrt_std=False)[0],
         _why("the variance used for the standard deviation", "ε = (x_t − √ᾱ_t·x0)/√(1 − ᾱ_t), divided by the "
              "standard deviation, not the variance.")),
        (_post_eps(A("alpha_bars", t - 1), xt, data)[0],
         _why("an off-by-one in t", "you used ᾱ at index t−1; schedule.alpha_bars[t] already belongs to code "
              "index t.")),
        (_post_eps(A("alpha_bars", t + 1), xt, data)[0],
         _why("an off-by-one in t", "you used ᾱ at index t+1; schedule.alpha_bars[t] already belongs to code "
              "index t.")),
        (((xt.double().reshape(-1) - ab.reshape(-1).sqrt() * data.double().mean())
          / (1 - ab.reshape(-1)).sqrt()),
         _why("the samples are not weighted", "every x0 counts equally, so you get E[ε] under the prior, not "
              "E[ε | x_t]. Weight each draw by q(x_t | x0) (or keep only samples that land near x_t).")),
        (torch.zeros(B, dtype=torch.float64),
         _why("the unconditional mean of the noise", "your estimate is about 0. Condition on x_t: weight each "
              "draw by q(x_t | x0).")),
    ]


@_check(5, "Monte-Carlo estimate of E[ε | x_t] for 1-D data, against ideal_eps",
        "draw x0 rows from `data` with `generator`; for each, the noise that would explain x_t; average those "
        "noises with weights proportional to the likelihood q(x_t | x0), normalised in log space so that no "
        "weight underflows.",
        terse="a self-normalised importance average of the noise that explains x_t, weighted by the forward "
              "likelihood, in log space",
        hides=("dnnl.models.ddpm:ideal_eps", "dnnl.models.ddpm.ideal:_ideal_eps",
               "dnnl.models.ddpm.ideal:_posterior_stats", "dnnl.models.ddpm:ideal_x0", "dnnl.models.ddpm:ideal_score"))
def check_mc_eps(fn) -> list[str]:
    """Check ``fn(schedule, xt, t, data, n_samples, generator) -> (B, 1)``, Monte-Carlo E[ε | x_t] (Eq. @eq-yun-identity).

    ``xt`` is (B, 1), ``t`` an int64 tensor (B,), ``data`` (N, 1) the points of q(x0). The estimate must be
    within 6 standard errors (from ``n_samples`` and the exact posterior spread of ε) plus 0.08 of
    ``dnnl.models.ddpm.ideal_eps``.
    """
    ddpm = _ddpm()
    schedule = ddpm.NoiseSchedule.linear(T=20, beta_start=0.02, beta_end=0.4)
    T = schedule.T
    g = _gen(6)
    data = torch.tensor([[-0.8], [-0.3], [0.4], [0.9]])
    t = torch.tensor([0, 1, 3, 5, 8, 12, 16, 19])
    B = len(t)
    ab = _at(schedule.alpha_bars, t, 2)
    x0 = data[torch.randint(0, len(data), (B,), generator=g)]
    xt = (ab.sqrt() * x0.double() + (1 - ab).sqrt() * torch.randn(B, 1, generator=g, dtype=torch.float64)).float()
    n = 100_000
    points = [round(v, 3) for v in data.reshape(-1).tolist()]
    on = f"{B} points x_t at t = {_tlist(t)} (T={T}), data = {points}, n_samples = {n}"
    out = _tensor(_call(fn, schedule, xt.clone(), t.clone(), data.clone(), n, _gen(21), on=on))
    exp = ddpm.ideal_eps(schedule, xt.double(), t, data.double()).double()
    if out.shape != exp.shape:
        raise _Fail(f"On {on}: expected an estimate of shape {tuple(exp.shape)}, got {tuple(out.shape)}.")
    if not torch.isfinite(out).all():
        raise _Fail(f"On {on}: your estimate contains NaN or infinite values.", _NAN_WHY)
    _, sd = _post_eps(ab.reshape(-1), xt, data)
    tol = 6 * sd / math.sqrt(n) + 0.08  # room for estimators that keep only samples near x_t
    err = (out.double().reshape(-1) - exp.reshape(-1)).abs()
    if bool((err <= tol).all()):
        again = _tensor(_call(fn, schedule, xt.clone(), t.clone(), data.clone(), n, _gen(21), on=on))
        if not torch.equal(torch.nan_to_num(again), torch.nan_to_num(out)):
            raise _Fail(f"On {on}: two calls with identically seeded generators gave different estimates.",
                        _why("random draws not from the generator", "draw the rows of data with the generator "
                             "you are given: torch.randint(len(data), (n_samples,), generator=generator)."))
        out2 = _tensor(_call(fn, schedule, xt.clone(), t.clone(), data.clone(), n, _gen(22), on=on))
        if float((out.double().reshape(-1) - exp.reshape(-1)).abs().max()) < 1e-6 and \
                float((out2.double().reshape(-1) - exp.reshape(-1)).abs().max()) < 1e-6:
            raise _Fail(f"On {on}: your result equals ideal_eps to float precision and does not depend on the "
                        "generator.", _why("the exact sum instead of a Monte-Carlo estimate", "the exercise asks "
                                           "for an estimate from n_samples random draws."))
        _far_points(fn, schedule, data, n)
        _dtype(out, xt.dtype, on=on, what="estimate")
        return [f"{B} points x_t at t = {_tlist(t)} on a T={T} schedule, 4-point 1-D data, n_samples = {n}, "
                "and two points far from every data point",
                f"every estimate is within its tolerance of dnnl.models.ddpm.ideal_eps "
                f"(largest error {_fmt(float(err.max()))}; "
                f"tolerances {_fmt(float(tol.min()))}–{_fmt(float(tol.max()))})"]
    k = int((err / tol).argmax())
    variants = _mc_variants(schedule, xt, t, data, ab)
    why = None
    o = out.double().reshape(-1)
    for value, text in variants:
        if bool(((o - value).abs() <= tol).all()) or float(((o - value).abs() / tol).max()) < 1:
            why = text
            break
    raise _Fail(f"On {on}: your estimate is too far from the exact E[ε | x_t].\n"
                f"At x_t = {_fmt(float(xt[k]))}, t = {int(t[k])}: expected {_fmt(float(exp.reshape(-1)[k]))}, "
                f"got {_fmt(float(o[k]))} (allowed error ±{_fmt(float(tol[k]))} for n_samples = {n}).", why)
