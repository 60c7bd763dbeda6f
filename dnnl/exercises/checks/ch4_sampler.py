"""Chapter 4's second check: ancestral sampling (Algorithm 2), tested step by step against the exact ε."""
from __future__ import annotations

import math

import torch

from ._compare import _KS_LIMIT, _NOT_GAUSSIAN, _ddpm, _fmt, _gen, _normal_ks
from ._core import _T0_HINT, _call, _check, _dtype, _Fail, _Misuse, _tensor, _why


class _GaussianEps:
    """The exact E[ε | x_t] for data x0 ~ N(mu, s²) per coordinate; records every call."""

    def __init__(self, schedule, mu: float, s: float, shape):
        self.schedule, self.mu, self.s, self.shape = schedule, mu, s, tuple(shape)
        self.calls: list[tuple[torch.Tensor, int]] = []

    def __call__(self, xt, t):
        T = self.schedule.T
        if not isinstance(xt, torch.Tensor) or tuple(xt.shape) != self.shape:
            got = tuple(xt.shape) if isinstance(xt, torch.Tensor) else type(xt).__name__
            raise _Misuse(f"eps_fn(x_t, t) got x_t of shape {got}; expected the sample shape {self.shape}.")
        tt = torch.as_tensor(t)
        if tt.is_floating_point():
            raise _Misuse(f"eps_fn got t with dtype {tt.dtype}; expected integer timesteps.",
                          _why("timesteps that are not integers", "pass integer timesteps (torch.long)."))
        if tt.numel() not in (1, self.shape[0]):
            raise _Misuse(f"eps_fn got t of shape {tuple(tt.shape)}; expected one timestep per sample, shape "
                          f"({self.shape[0]},).", _why("not one timestep per sample", "for example "
                                                   "torch.full((B,), t, dtype=torch.long)."))
        vals = tt.reshape(-1)
        if not bool((vals == vals[0]).all()):
            raise _Misuse("eps_fn got different timesteps within one batch; every sample is at the same step.")
        tv = int(vals[0])
        if not 0 <= tv <= T - 1:
            raise _Misuse(f"eps_fn was called with t = {tv}, but code timesteps run over 0..T−1 = 0..{T - 1}.",
                          _T0_HINT)
        self.calls.append((xt.detach().double().cpu().clone(), tv))
        return self.eps(xt.detach().double(), tv).to(xt.dtype)

    def eps(self, xt, tv: int):
        ab = float(torch.as_tensor(self.schedule.alpha_bars).double()[tv])
        return math.sqrt(1 - ab) * (xt - math.sqrt(ab) * self.mu) / (ab * self.s ** 2 + 1 - ab)


def _sampler_means(schedule, x, eps, tv, T):
    """Known-wrong Algorithm 2 means (why, mean) for one step at index tv, in float64."""
    A = lambda name, i: float(torch.as_tensor(getattr(schedule, name)).double()[min(max(i, 0), T - 1)])  # noqa: E731
    a, ab, b = A("alphas", tv), A("alpha_bars", tv), A("betas", tv)
    off = _why("an off-by-one in t", "the mean's coefficients come from a neighbouring index while eps_fn got t. "
               "Use the same 0-based index for both.")
    out = [
        (_why("ᾱ vs α in the ε coefficient", "it is β_t/√(1 − ᾱ_t); you used √(1 − α_t) = √β_t."),
         (x - math.sqrt(b) * eps) / math.sqrt(a)),
        (_why("ᾱ vs α in the divisor", "divide by √α_t, not √ᾱ_t."), (x - b / math.sqrt(1 - ab) * eps) / math.sqrt(ab)),
        (_why("a missing square root in the ε coefficient", "it is β_t/√(1 − ᾱ_t), not β_t/(1 − ᾱ_t)."),
         (x - b / (1 - ab) * eps) / math.sqrt(a)),
        (_why("a missing square root in the divisor", "divide by √α_t, not α_t."),
         (x - b / math.sqrt(1 - ab) * eps) / a),
        (_why("a sign error in the mean", "Algorithm 2 subtracts the predicted noise, x_t − β_t/√(1 − ᾱ_t)·ε_θ."),
         (x + b / math.sqrt(1 - ab) * eps) / math.sqrt(a)),
    ]
    if tv < T - 1:
        a2, ab2, b2 = A("alphas", tv + 1), A("alpha_bars", tv + 1), A("betas", tv + 1)
        out.append((off, (x - b2 / math.sqrt(1 - ab2) * eps) / math.sqrt(a2)))
    a2, ab2, b2 = A("alphas", tv - 1), A("alpha_bars", tv - 1), A("betas", tv - 1)
    out.append((off, (x - b2 / math.sqrt(1 - ab2) * eps) / math.sqrt(a2)))
    return out


def _candidates(schedule, step, T, clipped_mean):
    """(cause, mean, sd or None for "no noise", fixed shift) per known mistake, for one step (t ≥ 1)."""
    tv, x, eps, mean, _ = step
    bt = [float(v) for v in torch.as_tensor(schedule.posterior_variance).double()]
    be = [float(v) for v in torch.as_tensor(schedule.betas).double()]
    sd_off = _why("σ taken at the wrong step", "the noise scale comes from a neighbouring index; σ_t belongs to "
                  "the same code index t as the mean.")
    out = [(sd_off, mean, math.sqrt(bt[tv - 1]), 0.0)]
    if tv + 1 <= T - 1:
        out.append((sd_off, mean, math.sqrt(bt[tv + 1]), 0.0))
    var_sd = _why("variance used for the standard deviation", "z is multiplied by σ_t²; σ_t is its square root.")
    out += [(var_sd, mean, bt[tv], 0.0), (var_sd, mean, be[tv], 0.0),
            (_why("unscaled noise", "multiply z by σ_t = √β̃_t."), mean, 1.0, 0.0),
            (_why("the noise z is missing", "you add σ_t (a fixed shift) instead of σ_t·z with z ~ N(0, I)."),
             mean, None, math.sqrt(bt[tv])),
            (_why("the noise z is missing", "you add σ_t (a fixed shift) instead of σ_t·z."), mean, None,
             math.sqrt(be[tv])),
            (_why("no noise", "Algorithm 2 adds σ_t·z with z ~ N(0, I) at every step with t > 0."), mean, None, 0.0)]
    means = _sampler_means(schedule, x, eps, tv, T)
    means.append((_why("clipping", "the exercise asks for no clipping of x̂_0; with the exact ε the unclipped "
                       "mean is the right one."), clipped_mean))
    for why, wm in means:  # a wrong mean with the right noise (a wrong mean without noise is two mistakes)
        out += [(why, wm, math.sqrt(bt[tv]), 0.0), (why, wm, math.sqrt(be[tv]), 0.0)]
    return out


def _fits(x_next, mean, sd, shift, n) -> bool:
    if sd is None or sd == 0:
        return float((x_next - mean - shift).abs().max()) <= 1e-4 + 1e-4 * abs(shift)
    r = (x_next - mean) / sd
    return abs(float(r.mean())) <= 5 / math.sqrt(n) and abs(float((r ** 2).mean()) - 1) <= 5 * math.sqrt(2 / n)


@_check(4, "Algorithm 2: sample(eps_fn, schedule, shape, generator) -> x_0",
        "start from standard normal noise and walk the code indices down from T − 1 to 0: at each, ask eps_fn "
        "for the noise (t as a (B,) long tensor), form the mean μ_θ of this chapter's reverse step, and add σ_t "
        "times fresh noise except at index 0. All noise comes from `generator`.",
        terse="Algorithm 2: the reverse loop over the code indices with the chapter's mean and fresh noise "
              "except at the last step",
        hides=("dnnl.models.ddpm:sample", "dnnl.models.ddpm:p_sample_step", "dnnl.models.ddpm.diffusion:_p_sample_step",
               "dnnl.models.ddpm:p_mean_variance", "dnnl.models.ddpm.diffusion:_p_mean_variance",
               "dnnl.models.ddpm.sample:_reverse_step", "dnnl.models.ddpm.scheduler:DDPMScheduler.step"))
def check_sampler(fn) -> list[str]:
    """Check ``fn(eps_fn, schedule, shape, generator) -> x_0``, Algorithm 2 (Eq. @eq-p-sample).

    ``eps_fn(x_t, t)`` is the exact ideal noise predictor for Gaussian data; the check records every call
    and tests each step: (x_{t−1} − μ_θ)/σ_t must look like N(0, 1) with σ_t² = β̃_t or β_t (both are
    allowed by Ho et al.), and the last step (t = 0) must return μ_θ without noise.
    """
    ddpm = _ddpm()
    schedule = ddpm.NoiseSchedule.linear(T=40, beta_start=2e-3, beta_end=0.25)
    T, shape, mu, s = schedule.T, (256, 16), 0.9, 0.15  # data reaching past 1: clipping x̂_0 shows
    n = shape[0] * shape[1]
    on = f"shape {shape} with a linear schedule (T={T}) and the exact ε for data N({mu}, {s}²)"
    eps_fn = _GaussianEps(schedule, mu, s, shape)
    out = _tensor(_call(fn, eps_fn, schedule, shape, _gen(11), on=on))
    if tuple(out.shape) != shape:
        raise _Fail(f"On {on}: expected samples of shape {shape}, got {tuple(out.shape)}.")
    _loop_order(eps_fn, T, on)
    xT = eps_fn.calls[0][0]
    if abs(float(xT.mean())) > 5 / math.sqrt(n) or abs(float(xT.var()) - 1) > 5 * math.sqrt(2 / n):
        raise _Fail(f"On {on}: x_T has mean {_fmt(float(xT.mean()))} and variance {_fmt(float(xT.var()))}; "
                    "expected a draw from N(0, I).",
                    _why("x_T not drawn from the standard normal", "start from "
                         "x_T = torch.randn(shape, generator=generator), not torch.rand."))
    again = _GaussianEps(schedule, mu, s, shape)
    out2 = _tensor(_call(fn, again, schedule, shape, _gen(11), on=on))
    if not torch.equal(torch.nan_to_num(out2), torch.nan_to_num(out)):
        raise _Fail(f"On {on}: two runs with identically seeded generators gave different samples.",
                    _why("noise not drawn from the generator", "draw x_T and every z with the generator you are "
                         "given: torch.randn(shape, generator=generator)."))
    if not torch.isfinite(out).all():
        raise _Fail(f"On {on}: your samples contain NaN or infinite values.",
                    _why("a NaN or inf from an invalid operation", "a square root of a negative number or a "
                         "division by zero? β̃ at t = 0 is exactly 0."))

    nexts = [c[0] for c in eps_fn.calls[1:]] + [out.double()]
    sig2 = {"β̃": [float(v) for v in torch.as_tensor(schedule.posterior_variance).double()],
            "β": [float(v) for v in torch.as_tensor(schedule.betas).double()]}
    steps = []
    for (x, tv), x_next in zip(eps_fn.calls, nexts):
        eps = eps_fn.eps(x, tv)
        mean = ddpm.p_mean_variance(schedule, eps, x, torch.full((shape[0],), tv))[0].double()
        steps.append((tv, x, eps, mean, x_next))
    last_mean = steps[-1][3]
    good = next((key for key in ("β̃", "β") if all(_fits(xn, m, math.sqrt(sig2[key][tv]), 0.0, n)
                                                   for tv, _, _, m, xn in steps[:-1])), None)
    final_err = float((out.double() - last_mean).abs().max())
    if good is not None and final_err <= 1e-4:
        _gaussian_steps(steps, sig2[good], on)
        _dtype(out, torch.float32, on=on, what="samples")
        fm, fs = float(out.mean()), float(out.std())
        return [f"{T} steps on {shape[0]}×{shape[1]} samples; eps_fn called at t = {T - 1}, …, 0 in order",
                f"every step t ≥ 1 is μ_θ + σ_t·z with σ_t² = {good}_t and z Gaussian (tested to 5 standard "
                "errors and by Kolmogorov–Smirnov); the last step returns μ_θ without noise; the same seed "
                "gives the same samples; the result is float32",
                f"your samples have mean {_fmt(fm)} and std {_fmt(fs)} (data: N({mu}, {s}²))"]
    if good is not None:
        std = float((out.double() - last_mean).std())
        clip = float((out.double() - last_mean.clamp(-1, 1)).abs().max()) <= 1e-4
        why = (_why("clipping", "the last step's mean is clamped; the exercise asks for no clipping.") if clip else
               _why("noise added at code index 0", f"the last step (code index 0, paper step 1) must return the "
                    f"mean; your output differs from it with std {_fmt(std)}.") if std > 1e-6 else None)
        raise _Fail(f"On {on}: the last step (t = 0) is wrong: largest difference from μ_θ is {_fmt(final_err)}.",
                    why)
    _diagnose(schedule, steps, sig2, T, n, on)


def _gaussian_steps(steps, sig2, on: str) -> None:
    """The standardised noise of all steps t ≥ 1 together is N(0, 1) in shape, not only in its moments."""
    resid = torch.cat([((xn - m) / math.sqrt(sig2[tv])).reshape(-1) for tv, _, _, m, xn in steps[:-1]])
    ks = _normal_ks(resid)
    if ks > _KS_LIMIT:
        raise _Fail(f"On {on}: every step has the right mean and spread, but (x_(t−1) − μ_θ)/σ_t is not "
                    f"normally distributed (Kolmogorov–Smirnov statistic {_fmt(ks)}·n^(−1/2), limit "
                    f"{_KS_LIMIT}·n^(−1/2)).", _NOT_GAUSSIAN)


def _loop_order(eps_fn, T: int, on: str) -> None:
    ts = [tv for _, tv in eps_fn.calls]
    want = list(range(T - 1, -1, -1))
    if ts == want:
        return
    if ts == want[:-1]:
        why = _why("the loop stops before code index 0", "the last step (code index 0, paper step 1) is "
                   "missing. Loop over reversed(range(T)).")
    elif ts == list(range(T)):
        why = _why("the loop runs forwards", "Algorithm 2 goes from t = T−1 down to t = 0.")
    elif ts[1:] == want:
        why = _why("eps_fn called twice at the first step")
    else:
        why = None
    shown = ts if len(ts) <= 8 else ts[:4] + ["…"] + ts[-3:]
    raise _Fail(f"On {on}: expected eps_fn to be called once per step at t = {T - 1}, {T - 2}, …, 0; "
                f"it was called {len(ts)} times, at t = {shown}.", why)


def _diagnose(schedule, steps, sig2, T, n, on) -> None:
    """Name the mistake that explains every step t ≥ 1 (and only then); otherwise say what is observed."""
    ddpm = _ddpm()
    first = None
    for tv, x, eps, mean, xn in steps[:-1]:
        if not any(_fits(xn, mean, math.sqrt(sig2[k][tv]), 0.0, n) for k in sig2):
            first = (tv, mean, xn)
            break
    if first is None:
        raise _Fail(f"On {on}: your steps do not match Algorithm 2 with one consistent σ_t (β̃_t or β_t).",
                    _why("a variance choice that changes between steps",
                         "use the same variance at every step: schedule.posterior_variance or schedule.betas."))
    tv, mean, xn = first
    sd = math.sqrt(sig2["β̃"][tv])
    r = (xn - mean) / sd
    what = (f"On {on}: the step at t = {tv} is not x_(t−1) = μ_θ + σ_t·z.\n"
            f"(x_(t−1) − μ_θ)/σ_t has mean {_fmt(float(r.mean()))} and mean square "
            f"{_fmt(float((r ** 2).mean()))} (expected 0 and 1, σ_t² = β̃_t).")
    explains: dict[str, set] = {}
    causes: dict[str, object] = {}
    for k, step in enumerate(steps[:-1]):
        tv_k, x_k, eps_k = step[0], step[1], step[2]
        if k > 0 and not all(bool(torch.isfinite(v).all()) and float(v.abs().max()) <= 1e3 for v in (x_k, step[4])):
            continue  # a chain that has blown up tests nothing more
        clipped = ddpm.p_mean_variance(schedule, eps_k, x_k, torch.full((x_k.shape[0],), tv_k), clip=True)[0].double()
        cands = _candidates(schedule, step, T, clipped)
        for why, *_ in cands:
            causes.setdefault(str(why), why)
        explains[k] = {str(why) for why, m, s_, sh in cands if _fits(step[4], m, s_, sh, n)}
    common = set.intersection(*explains.values()) if explains else set()
    terse = {causes[c].terse for c in common}
    why = causes[sorted(common)[0]] if len(terse) == 1 else None
    raise _Fail(what, why)
