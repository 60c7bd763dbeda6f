"""Self-checks for chapter 7's exercises: the guidance combination, label dropout, one guided prediction.

Same contract as :mod:`dnnl.exercises.checks`, whose verdict and comparison helpers these reuse: a check
compares the student's function with the package on seeded inputs (statistically where the result is
random), names the input that fails and the likely cause, and never raises.
"""
from __future__ import annotations

import math

import torch

from .checks import _call, _Cases, _check, _Fail, _fmt, _gen, _Misuse, _tensor, _Variant, _ddpm, _why

__all__ = ["check_cfg_eps", "check_label_dropout", "check_guided_eps"]


# --------------------------------------------------------------------------- exercise 7.1

_SIGN = _why("a sign error", "ε̃ = (1 + w)·ε_cond − w·ε_uncond: the conditional branch gets the weight 1 + w "
                              "and the unconditional one is subtracted, not the other way round.")
_GAMMA = _why("the weight convention mixed up: w versus gamma",
              "in this book w = 0 is no guidance, ε̃ = ε_cond + w·(ε_cond − ε_uncond); "
              "the γ convention (diffusers' guidance_scale) writes γ = 1 + w.")
_NO_UNCOND = _why("the unconditional branch is missing",
                  "(1 + w)·ε_cond only rescales the prediction; guidance subtracts w·ε_uncond.")
_NO_W = _why("the guidance weight is ignored", "w must scale the difference ε_cond − ε_uncond.")


def _cfg_variants(c, u, w) -> list[_Variant]:
    return [
        _Variant((1 + w) * u - w * c, _SIGN),
        _Variant((1 + w) * c + w * u, _SIGN),
        _Variant(u + w * (c - u), _GAMMA),
        _Variant(c + (1 + w) * (c - u), _GAMMA),
        _Variant((1 + w) * c, _NO_UNCOND),
        _Variant(c - u, _NO_W),
        _Variant(c, _NO_W),
    ]


@_check(7, "the classifier-free guidance combination (Eq. @eq-ch7-cfg)",
        "ε̃ = (1 + w)·eps_cond − w·eps_uncond; w = 0 gives eps_cond back.",
        terse="the guided noise prediction from the conditional and the unconditional branch",
        hides=("dnnl.models.ddpm:cfg_eps",))
def check_cfg_eps(fn) -> list[str]:
    """Check ``fn(eps_cond, eps_uncond, w) -> eps_tilde`` (Chapter 7, Eq. @eq-ch7-cfg).

    The result must equal ``dnnl.models.ddpm.cfg_eps`` for w = 0, 0.5, 1, 3 and 7.5.
    """
    ddpm = _ddpm()
    g = _gen(71)
    weights = (0.5, 3.0, 1.0, 7.5, 0.0)
    tested = _Cases()
    for w in weights:
        c = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
        u = c + 0.7 * torch.randn(c.shape, generator=g, dtype=torch.float64)
        on = f"w = {w} (eps_cond and eps_uncond of shape (3, 1, 4, 4))"
        got = tested.call(fn, c.clone(), u.clone(), w, on=on)
        tested.compare(got, ddpm.cfg_eps(c, u, w), on=on, variants=_cfg_variants(c, u, w),
                       what="guided noise prediction")
    tested.finish()
    return [f"w = {', '.join(f'{w:g}' for w in sorted(weights))} on random branch predictions",
            "every result equals dnnl.models.ddpm.cfg_eps (within 1e-5); w = 0 returns eps_cond"]


# --------------------------------------------------------------------------- exercise 7.2

def _drop(fn, y, p, null, seed, on):
    out = _call(fn, y.clone(), p, null, _gen(seed), on=on)
    out = _tensor(out, "your function")
    if out.shape != y.shape:
        raise _Fail(f"On {on}: expected labels of shape {tuple(y.shape)}, got shape {tuple(out.shape)}.",
                    _why("one label per input", "return a tensor like y, one (possibly dropped) label each."))
    if out.dtype != torch.long:
        raise _Fail(f"On {on}: expected integer labels (int64), got {out.dtype}.",
                    _why("labels of the wrong dtype", "torch.where(drop, null, y) keeps y's int64 dtype."))
    return out


@_check(7, "label dropout for classifier-free training (Eq. @eq-ch7-label-dropout)",
        "one uniform draw per label from the generator (torch.rand with generator=...); where the draw is "
        "below p_uncond put null_label, elsewhere keep y, in a new tensor (torch.where).",
        terse="label dropout: each label independently replaced by the no-label token with the given probability",
        hides=("dnnl.models.ddpm:drop_labels",))
def check_label_dropout(fn) -> list[str]:
    """Check ``fn(y, p_uncond, null_label, generator) -> y_dropped`` (Chapter 7, Eq. @eq-ch7-label-dropout).

    Statistical: over 200,000 labels the share replaced by ``null_label`` must be p_uncond within 5
    binomial standard errors; kept labels must be unchanged, the draws must come from ``generator``
    (same seed, same result; another seed, other drops), and ``y`` must not be changed in place.
    """
    n = 200_000
    y = torch.randint(10, (n,), generator=_gen(72))
    rows = []
    for p in (0.1, 0.3):
        on = f"p_uncond = {p}, null_label = 10, {n:,} labels in 0..9"
        out = _drop(fn, y, p, 10, 1, on)
        null = out == 10
        if not torch.equal(out[~null], y[~null]):
            others = out[~null][out[~null] != y[~null]]
            why = _why("the wrong null token", "a dropped label must become null_label (the argument), not -1, "
                       "0 or num_classes - 1.") if others.unique().numel() == 1 else \
                _why("labels that are not dropped were changed", "keep y where the coin says keep.")
            raise _Fail(f"On {on}: {others.numel():,} labels were changed to something other than null_label "
                        f"(for example {int(others[0])}).", why)
        rate = null.double().mean().item()
        se = math.sqrt(p * (1 - p) / n)
        if abs(rate - p) > 5 * se:
            if rate in (0.0, 1.0):
                why = _why("one coin for the whole batch",
                           "draw one uniform number per label, torch.rand(y.shape, generator=generator).")
            elif abs(rate - (1 - p)) < 5 * se:
                why = _why("the probability is inverted", "a label is dropped with probability p_uncond, "
                                                          "kept with 1 - p_uncond.")
            else:
                why = None
            raise _Fail(f"On {on}: {rate:.4f} of the labels were dropped; expected {p} "
                        f"± {5 * se:.4f} (5 standard errors).", why)
        rows.append(f"p_uncond = {p}: dropped share {rate:.4f} ({(rate - p) / se:+.1f} s.e.)")
        if not torch.equal(out, _drop(fn, y, p, 10, 1, on)):
            raise _Fail(f"On {on}: two calls with identically seeded generators dropped different labels.",
                        _why("the generator argument is ignored",
                             "pass generator=generator to torch.rand, so a seeded step is reproducible."))
        if torch.equal(out, _drop(fn, y, p, 10, 2, on)):
            raise _Fail(f"On {on}: generators with different seeds dropped exactly the same labels.",
                        _why("a fixed seed inside the function", "draw from the generator you are given."))
    on = "p_uncond = 0.5, null_label = 3, 60,000 labels in 0..2"
    y3 = torch.randint(3, (60_000,), generator=_gen(73))
    out = _drop(fn, y3, 0.5, 3, 4, on)
    if not bool(((out == y3) | (out == 3)).all()) or not 0.48 < (out == 3).double().mean() < 0.52:
        raise _Fail(f"On {on}: the dropped labels are not all 3, or their share is not 0.5 ± 0.02.",
                    _why("the wrong null token", "use the null_label argument; do not assume 10."))
    on = "p_uncond = 0 (no dropout)"
    if not torch.equal(_drop(fn, y[:1000], 0.0, 10, 5, on), y[:1000]):
        raise _Fail(f"On {on}: some labels were dropped.",
                    _why("labels dropped at p_uncond = 0", "compare u < p_uncond with a strict <."))
    return rows + ["the kept labels are unchanged, the dropped ones are null_label (10, and 3 for 3 classes)",
                   "the same seed gives the same drops, another seed other drops; y is not changed in place"]


# --------------------------------------------------------------------------- exercise 7.3

_MEANS = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
_SPREAD = 0.6


class _ToyConditional(torch.nn.Module):
    """ε(x_t, t, y) of two 2-D Gaussian classes in closed form; y = 2 (num_classes) is "no label"."""

    num_classes = 2

    def __init__(self, schedule):
        super().__init__()
        self.schedule, self.calls = schedule, []

    def forward(self, x, t, y=None):
        if y is None:
            y = torch.full((x.shape[0],), 2)
        for name, v in (("x", x), ("t", t), ("y", y)):
            if not isinstance(v, torch.Tensor):
                raise _Misuse(f"the model was called with {name} of type {type(v).__name__}; expected a tensor.")
        if y.shape != (x.shape[0],) or t.shape != (x.shape[0],) or y.is_floating_point():
            raise _Misuse(f"the model was called with x {tuple(x.shape)}, t {tuple(t.shape)}, y {tuple(y.shape)} "
                          "(integer y and t of shape (B,) are expected).")
        if bool(((y < 0) | (y > 2)).any()):
            raise _Misuse(f"the model was called with a label outside 0..2 (got {int(y.min())}..{int(y.max())}); "
                          "the no-label token is model.num_classes = 2.")
        self.calls.append((x.shape[0], y.clone()))
        ab = self.schedule.alpha_bars[t.long()].reshape(-1, 1).to(x.dtype)
        v = ab * _SPREAD ** 2 + 1 - ab
        per = torch.stack([(1 - ab).sqrt() * (x - ab.sqrt() * m) / v for m in _MEANS.to(x.dtype)])
        logq = -(x[None] - ab.sqrt()[None] * _MEANS.to(x.dtype)[:, None]).pow(2).sum(-1) / (2 * v.T)
        post = torch.softmax(logq, 0)[..., None]                      # (2, B, 1)
        uncond = (post * per).sum(0)
        yy = y.long().clamp(max=1)
        cond = per[yy, torch.arange(x.shape[0])]
        return torch.where((y == 2)[:, None], uncond, cond)


@_check(7, "one guided noise prediction with a single batched call of the model (Eq. @eq-ch7-cfg)",
        "double the batch with torch.cat: x_t twice, t twice, the labels y and then the no-label token "
        "model.num_classes; call the model once, split its output with chunk(2), combine as in Exercise 7.1.",
        terse="a guided prediction: both branches of a conditional model in one batch, then the combination",
        hides=("dnnl.models.ddpm:guided", "dnnl.models.ddpm:cfg_eps"))
def check_guided_eps(fn) -> list[str]:
    """Check ``fn(model, xt, t, y, w) -> eps_tilde`` (Chapter 7, Eq. @eq-ch7-cfg), then sample with it.

    ``model(x, t, y)`` is a conditional noise predictor with ``model.num_classes`` (the no-label token);
    the result must equal ``cfg_eps(model(xt, t, y), model(xt, t, ∅), w)`` and come from one call of the
    model on the doubled batch. Sampling with it (Algorithm 2, 100 steps) must then draw the class at
    w = 0 (mean within 5 standard errors) and concentrate the samples as w grows.
    """
    ddpm = _ddpm()
    schedule = ddpm.NoiseSchedule.linear(T=1000)
    model = _ToyConditional(schedule)
    g = _gen(74)
    tested = _Cases()
    for w in (2.0, 0.5, 0.0, 6.0):
        xt = 1.3 * torch.randn(6, 2, generator=g, dtype=torch.float64)
        t = torch.tensor([0, 50, 300, 600, 900, 999])
        y = torch.tensor([0, 1, 1, 0, 1, 0])
        on = f"w = {w}, a batch of 6 two-dimensional x_t, t = {t.tolist()}, y = {y.tolist()}"
        model.calls.clear()
        got = tested.call(fn, model, xt.clone(), t.clone(), y.clone(), w, on=on)
        calls = list(model.calls)
        with torch.no_grad():
            c, u = model(xt, t, y), model(xt, t, torch.full_like(y, 2))
        if calls and w and len(calls) > 1 and not tested.fails:
            raise _Fail(f"On {on}: the model was called {len(calls)} times for one guided prediction.",
                        _why("two model calls instead of one batch", "concatenate [x_t, x_t] with labels "
                             "[y, no label] and call the model once; split the output with chunk(2)."))
        if calls and w and not any(bool((lab == 2).any()) for _, lab in calls):
            doubled = any(size == 2 * len(xt) for size, _ in calls)
            tested.fails.append(_Fail(f"On {on}: the model never saw the no-label token "
                                      f"model.num_classes = 2.", _why(
                                          "the wrong null token", "the unconditional branch needs the label "
                                          "model.num_classes, the token the model was trained with for ∅.")
                                      if doubled else _NO_UNCOND))
            break
        tested.compare(got, ddpm.cfg_eps(c, u, w), on=on, what="guided noise prediction",
                       variants=_cfg_variants(c, u, w))
    tested.finish()
    n = 1000
    noise = torch.randn(n, 2, generator=_gen(75), dtype=torch.float64)
    share, means = {}, {}
    for w in (0.0, 3.0):
        eps_fn = lambda x, t, w=w: _call(fn, model, x, t, torch.ones(x.shape[0], dtype=torch.long), w,  # noqa: E731
                                          on=f"sampling with w = {w}")
        x0 = ddpm.sample(eps_fn, schedule, (n, 2), steps=100, noise=noise, clip=False, progress=False,
                         generator=_gen(76)).images
        share[w] = float((torch.sigmoid(2 * x0[:, 0] / _SPREAD ** 2) > 0.9).double().mean())
        means[w] = x0.mean(0)
    z = float(((means[0.0] - _MEANS[1]).abs() / (_SPREAD / math.sqrt(n))).max())
    if z > 5 or not share[3.0] > share[0.0]:
        raise _Fail(f"Sampling with your function: the mean at w = 0 is {means[0.0].tolist()} ({z:.1f} standard "
                    f"errors from the class mean), and the confident share goes from {_fmt(share[0.0])} at "
                    f"w = 0 to {_fmt(share[3.0])} at w = 3.")
    return ["4 weights (w = 0, 0.5, 2, 6) on a batch of mixed steps and labels: equals "
            "cfg_eps(model(x, t, y), model(x, t, ∅), w), from one model call on the doubled batch",
            f"sampling class 1 of a two-Gaussian toy with it (100 steps, {n} samples): at w = 0 the mean is the "
            f"class mean within {z:.1f} standard errors; the share with q(y | x_0) > 0.9 rises from "
            f"{share[0.0]:.3f} (w = 0) to {share[3.0]:.3f} (w = 3)"]
