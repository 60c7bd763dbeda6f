"""Chapter 4's first check: L_simple (Algorithm 1), through a small model that records its inputs."""
from __future__ import annotations

import math

import torch

from ._compare import _KS_LIMIT, _NOT_GAUSSIAN, _at, _ddpm, _fmt, _gen, _normal_ks
from ._core import _T0_HINT, _call, _check, _dtype, _Fail, _Misuse, _tensor, _why


class _RecordingModel(torch.nn.Module):
    """A tiny ε-model, w·x_t + b·t/T, that records what it is called with and refuses bad calls."""

    def __init__(self, T: int):
        super().__init__()
        self.T = T
        self.w = torch.nn.Parameter(torch.tensor(0.7))
        self.b = torch.nn.Parameter(torch.tensor(0.3))
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, xt, t):
        if not isinstance(xt, torch.Tensor) or xt.dim() < 2:
            raise _Misuse("the model must be called as model(x_t, t) with x_t a batch of images.")
        if not isinstance(t, torch.Tensor):
            raise _Misuse(f"the model got t = {t!r}; expected a tensor of shape (B,).",
                          _why("t is not a tensor", "pass a tensor of shape (B,) with one timestep per image."))
        if t.is_floating_point() or t.dtype == torch.bool:
            raise _Misuse(f"the model got t with dtype {t.dtype}; expected integer timesteps.",
                          _why("timesteps that are not integers", "pass integer timesteps (torch.long), one per "
                               "image. The network embeds them itself."))
        if t.shape != (xt.shape[0],):
            raise _Misuse(f"the model got t of shape {tuple(t.shape)} for a batch of {xt.shape[0]} images.",
                          _why("not one timestep per image", "draw one timestep per image: "
                               "torch.randint(0, T, (B,), generator=generator)."))
        if int(t.min()) < 0 or int(t.max()) > self.T - 1:
            raise _Misuse(f"the model got t = {int(t.max()) if int(t.max()) > self.T - 1 else int(t.min())}, but "
                          f"code timesteps run over 0..T−1 = 0..{self.T - 1}.", _T0_HINT)
        self.calls.append((xt.detach().cpu().clone(), t.detach().cpu().clone()))
        return self.w * xt + self.b * (t.to(xt.dtype) / self.T).reshape(-1, *[1] * (xt.dim() - 1))


@_check(4, "L_simple(model, schedule, x0, generator) -> scalar noise-prediction loss",
        "Algorithm 1: one code index per image drawn uniformly from 0..T−1, then standard normal noise, both from "
        "`generator`; build x_t with the closed form of Chapter 1 at those indices; the loss is the mean squared "
        "error between the model's prediction at (x_t, t) and that noise.",
        terse="Algorithm 1's noise-prediction loss, with the timesteps and the noise drawn from the generator",
        hides=("dnnl.models.ddpm:noise_prediction_loss", "dnnl.models.ddpm.losses:_noise_prediction_loss",
               "dnnl.models.ddpm:train_step"))
def check_l_simple(fn) -> list[str]:
    """Check ``fn(model, schedule, x0, generator) -> loss``, the L_simple of Algorithm 1 (Eq. @eq-l-simple).

    A small recording model sees the x_t and t you build; the check rebuilds ε from them and needs your
    loss to equal mean((ε − model(x_t, t))²), with that loss's gradient. Over 12 calls, t must cover 0..T−1
    uniformly, ε must be N(0, I), and the average must agree with ``dnnl.models.ddpm.noise_prediction_loss``.
    """
    ddpm = _ddpm()
    schedule = ddpm.NoiseSchedule.linear(T=20, beta_start=0.01, beta_end=0.3)
    T, K, B = schedule.T, 12, 64
    x0 = torch.rand(B, 1, 3, 3, generator=_gen(5)) * 2 - 1
    calls = [_one_call(fn, schedule, x0, k, K) for k in range(K)]
    losses = [c[0] for c in calls]
    raw2 = _call(fn, _RecordingModel(T), schedule, x0.clone(), _gen(100), on="a repeated call with the same seed")
    if float(raw2.detach()) != losses[0]:
        raise _Fail("Two calls with identically seeded generators gave different losses "
                    f"({_fmt(losses[0])} and {_fmt(float(raw2.detach()))}).",
                    _why("random draws not from the generator", "draw t and the noise with the generator you "
                         "are given, e.g. torch.randint(0, T, (B,), generator=generator) and "
                         "torch.randn(x0.shape, generator=generator)."))
    _timesteps([c[2] for c in calls], T, K, B)
    _noise(torch.cat([c[1].reshape(-1) for c in calls]))
    with torch.no_grad():
        ref_losses = [float(ddpm.noise_prediction_loss(_RecordingModel(T), schedule, x0, generator=_gen(900 + k)))
                      for k in range(3 * K)]
    ls, lr = torch.tensor(losses, dtype=torch.float64), torch.tensor(ref_losses, dtype=torch.float64)
    se = math.sqrt(float(ls.var()) / len(ls) + float(lr.var()) / len(lr))
    if abs(float(ls.mean() - lr.mean())) > 5 * se + 1e-6:
        raise _Fail(f"Your average loss over {K} calls is {_fmt(float(ls.mean()))}, the package's "
                    f"noise_prediction_loss averages {_fmt(float(lr.mean()))} (allowed difference {_fmt(5 * se)}).")
    return [f"{K} calls on a batch of {B} with a T={T} schedule and a small recording model",
            "the loss equals mean((ε − model(x_t, t))²) for the x_t and t passed to the model, with its gradient; "
            "t is one per image, uniform on 0..T−1; ε is N(0, 1) (moments and Kolmogorov–Smirnov); "
            "the same seed gives the same loss",
            f"the average loss {_fmt(float(ls.mean()))} agrees with dnnl.models.ddpm.noise_prediction_loss "
            f"({_fmt(float(lr.mean()))}) within 5 standard errors"]


def _one_call(fn, schedule, x0, k: int, K: int):
    """Call the student's loss once; check its form and value; return (loss, the ε it used, its t)."""
    T, B = schedule.T, x0.shape[0]
    model = _RecordingModel(T)
    on = f"call {k + 1} of {K} (a batch of {B} images of shape (1, 3, 3), a linear schedule with T={T})"
    raw = _call(fn, model, schedule, x0.clone(), _gen(100 + k), on=on)
    if raw is None:
        raise _Fail(f"On {on}: your function returned None.", _why("a missing return", "is a `return loss` missing?"))
    if not isinstance(raw, torch.Tensor):
        raise _Fail(f"On {on}: your function returned a {type(raw).__name__}; expected a scalar tensor.",
                    _why("a Python number instead of a tensor",
                         "return the tensor itself, not loss.item(): training needs it for loss.backward()."))
    if raw.numel() != 1:
        raise _Fail(f"On {on}: expected a scalar loss, got a tensor of shape {tuple(raw.shape)}.",
                    _why("a missing reduction", f"reduce with .mean() over all {raw.numel()} numbers: L_simple "
                         "is the mean squared error."))
    if not raw.requires_grad:
        raise _Fail(f"On {on}: the loss has no gradient with respect to the model's parameters.",
                    _why("no gradient path to the parameters",
                         "did you call the model under torch.no_grad(), detach the output, or use .item()?"))
    if len(model.calls) != 1:
        raise _Fail(f"On {on}: your function called the model {len(model.calls)} times; expected once.",
                    _why("more than one forward pass", "L_simple needs exactly one: model(x_t, t)."))
    xt, t = model.calls[0]
    L = float(raw.detach())
    with torch.no_grad():
        out = model(xt, t).double()
    model.calls.pop()
    eps = _rebuilt(xt, x0, _at(schedule.alpha_bars, t, 4))
    ref = float(((eps - out) ** 2).mean())
    if abs(L - ref) > 1e-4 * abs(ref) + 1e-6:
        raise _Fail(f"On {on}: your loss is {_fmt(L)}, but for the x_t and t your function gave the model, "
                    f"L_simple is {_fmt(ref)}.", _loss_cause(schedule, x0, xt, t, out, L))
    _gradient_path(raw, model, xt, t, eps, on)
    return L, eps, t


def _rebuilt(xt, x0, ab):
    """The ε that makes x_t = √ab·x0 + √(1 − ab)·ε, in float64."""
    return (xt.double() - ab.sqrt() * x0.double()) / (1 - ab).sqrt()


def _loss_cause(schedule, x0, xt, t, out, L):
    """The known mistake whose loss equals the student's, if exactly that."""
    T, B, D = schedule.T, x0.shape[0], x0[0].numel()
    xd, x0d = xt.double(), x0.double()
    ab, a = _at(schedule.alpha_bars, t, 4), _at(schedule.alphas, t, 4)
    eps = _rebuilt(xt, x0, ab)
    off = _why("an off-by-one in t", "x_t was built with ᾱ at a neighbouring index but the model got t. Use the "
               "same 0-based t for both: schedule.alpha_bars[t].")
    cand = [
        (((x0d - out) ** 2).mean(), _why("x0 as the target", "L_simple regresses the noise: compare "
                                         "model(x_t, t) with ε.")),
        (((_rebuilt(xt, x0, a) - out) ** 2).mean(),
         _why("ᾱ vs α", "x_t must be built with ᾱ_t = α_1·…·α_t (schedule.alpha_bars[t]), not α_t.")),
        ((((xd - ab * x0d) / (1 - ab) - out) ** 2).mean(),
         _why("a missing square root in x_t", "x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε.")),
        (((_rebuilt(xt, x0, _at(schedule.alpha_bars_prev, t, 4)) - out) ** 2).mean()
         if int(t.min()) > 0 else math.nan, off),
        (((_rebuilt(xt, x0, _at(schedule.alpha_bars, (t + 1).clamp(max=T - 1), 4)) - out) ** 2).mean()
         if int(t.max()) < T - 1 else math.nan, off),
        (((eps - out) ** 2).sum(), _why("a sum instead of a mean", "L_simple is the mean of the squared errors.")),
        (((eps - out) ** 2).reshape(B, -1).sum(1).mean(),
         _why("a sum instead of a mean", f"you summed over the {D} pixels of each image; L_simple averages "
              "over them too.")),
        ((eps - out).abs().mean(), _why("an absolute error instead of a squared one")),
        (((xd - (1 - ab).sqrt() * x0d) / ab.sqrt() - out).pow(2).mean(),
         _why("the two weights are swapped", "x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε.")),
    ]
    why = next((w for v, w in cand if math.isfinite(float(v)) and abs(L - float(v)) <= 1e-4 * abs(float(v)) + 1e-6),
               None)
    at0 = t == 0
    if why is None and bool(at0.any()) and float((xd[at0] - x0d[at0]).abs().max()) <= 1e-6:
        why = _why("an off-by-one in t", "at t = 0 your x_t equals x0, so ᾱ came from index t−1 "
                   "(schedule.alpha_bars_prev[0] = 1). Code index 0 is paper step 1 and still adds noise: use "
                   "schedule.alpha_bars[t] with the same t the model gets.")
    return why


def _timesteps(per_call_t, T: int, K: int, B: int) -> None:
    """t is one per image and uniform on 0..T−1 over all calls."""
    if all(bool((tt == tt[0]).all()) for tt in per_call_t):
        raise _Fail("Every call used a single timestep for the whole batch.",
                    _why("one timestep for the whole batch",
                         "Algorithm 1 draws one t per image: torch.randint(0, T, (B,), generator=generator)."))
    counts = torch.bincount(torch.cat(per_call_t), minlength=T).double()
    if int(counts[0]) == 0 or int(counts[-1]) == 0:
        missing = [i for i in (0, T - 1) if counts[i] == 0]
        raise _Fail(f"Over {K} calls ({K * B} draws of t) the model never saw t = {missing}.",
                    _why("an off-by-one in the range of t", f"code timesteps are 0..T−1. torch.randint(0, T, ...) "
                         f"includes 0 and excludes T. {'You seem to draw from 1..T−1.' if 0 in missing else ''}"))
    expected = K * B / T
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    if chi2 > (T - 1) + 8 * math.sqrt(2 * (T - 1)):
        raise _Fail(f"Over {K * B} draws, t is far from uniform on 0..{T - 1} (χ² = {_fmt(chi2)} with "
                    f"{T - 1} degrees of freedom). Counts per t: {counts.long().tolist()}.",
                    _why("timesteps not uniform", "draw t uniformly: torch.randint(0, T, (B,), "
                         "generator=generator)."))


def _noise(e: torch.Tensor) -> None:
    """The ε rebuilt from every x_t is standard normal: moments, then shape (Kolmogorov–Smirnov)."""
    n = e.numel()
    e_mean, e_var = float(e.mean()), float(e.var())
    if abs(e_mean) > 5 / math.sqrt(n) or abs(e_var - 1) > 5 * math.sqrt(2 / n):
        raise _Fail(f"The noise your function used has mean {_fmt(e_mean)} and variance {_fmt(e_var)} "
                    "(expected 0 and 1).",
                    _why("noise that is not standard normal", "ε must be standard normal: "
                         "torch.randn(x0.shape, generator=generator), not torch.rand."))
    ks = _normal_ks(e)
    if ks > _KS_LIMIT:
        raise _Fail(f"The noise your function used has mean {_fmt(e_mean)} and variance {_fmt(e_var)}, but it is "
                    f"not normally distributed (Kolmogorov–Smirnov statistic {_fmt(ks)}·n^(−1/2), limit "
                    f"{_KS_LIMIT}·n^(−1/2)).", _NOT_GAUSSIAN)


def _gradient_path(raw, model, xt, t, eps, on: str) -> None:
    """The loss's gradient with respect to the model's parameters must be that of mean((ε − model(x_t, t))²)."""
    params = (model.w, model.b)
    try:
        got = torch.autograd.grad(raw, params, allow_unused=True)
    except RuntimeError:
        got = (None, None)
    w, b = (p.detach().double().requires_grad_() for p in params)
    pred = w * xt.double() + b * (t.double() / model.T).reshape(-1, *[1] * (xt.dim() - 1))
    want = torch.autograd.grad(((pred - eps) ** 2).mean(), (w, b))
    if any(g is None for g in got):
        raise _Fail(f"On {on}: the loss has no gradient path to the model's parameters.",
                    _why("no gradient path to the parameters", "the loss must be computed from the model's "
                         "output without detaching it (no .detach(), .item(), torch.no_grad() or a new tensor "
                         "built from its values); requires_grad_() on a detached loss does not reconnect it."))
    for g, h in zip(got, want):
        if abs(float(g) - float(h)) > 1e-3 * abs(float(h)) + 1e-5:
            raise _Fail(f"On {on}: the loss has the right value, but its gradient with respect to the model's "
                        f"parameters is {_fmt(float(g))} where mean((ε − model(x_t, t))²) gives {_fmt(float(h))}.",
                        _why("a gradient path that differs from the loss", "part of the computation is "
                             "detached; compute the loss directly from the model's output."))
