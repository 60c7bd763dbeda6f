"""Self-checks for chapter 6's exercises: the η step of DDIM, the respaced β′, the v conversions, inversion.

Same contract as :mod:`dnnl.exercises.checks`, whose verdict and comparison helpers these reuse: a check
compares the student's function with the package on seeded inputs, names the input that fails and the
likely cause, and never raises (``evaluate`` turns any exception from the student's code, ``SystemExit``
included, into a verdict; only ``KeyboardInterrupt`` goes through).
"""
from __future__ import annotations

import torch

from .checks import _Cases, _check, _Fail, _fmt, _gen, _tensor, _Variant, _ddpm, _why

__all__ = ["check_ddim_step", "check_respaced_betas", "check_from_v", "check_invert_step"]


#: The concept each full cause names, for the terse hint level (matched on the start of the full text).
_TERSE = [
    ("η off", "η off"), ("a missing √ in σ", "a missing square root in σ"),
    ("a missing √", "a missing square root"),
    ("the wrong ᾱ_prev for the first step", "the wrong ᾱ_prev for the first step"),
    ("the wrong ᾱ_prev", "the wrong ᾱ_prev"), ("ε̂ not recomputed", "ε̂ not recomputed after clipping"),
    ("with clip=True", "clipping skipped"), ("these are the original β_t", "the original β_t of the visited steps"),
    ("a √ where none belongs", "a square root where none belongs"), ("this is α′", "α′ instead of β′"),
    ("the ratio is upside down", "the ratio is upside down"), ("the order is reversed", "the order is reversed"),
    ("the first step is missing", "the first step is missing"), ("an off-by-one", "an off-by-one in t"),
    ("the two weights are swapped", "the two weights are swapped"),
    ("the pair is in the wrong order", "the pair is in the wrong order"), ("a sign error", "a sign error"),
    ("the two ᾱ's are swapped", "the two ᾱ's are swapped"), ("the ε term is missing", "the ε term is missing"),
    ("the wrong ᾱ at t = −1", "the wrong ᾱ at code index −1"),
    ("x is x_t, not clean data", "x taken as clean data"),
    ("return both", "a single result instead of the pair"),
]


def _named(text: str):
    """``text`` as a cause with its terse name (see _TERSE); the full text keeps every detail."""
    terse = next((t for prefix, t in _TERSE if text.startswith(prefix)), None)
    if terse is None:
        return text
    head, sep, rest = text.partition(": ")
    return _why(terse, rest if sep and head.startswith(terse[:8]) else text)


def _terse_variants(variants):
    return [_Variant(v.value, _named(v.why)) for v in variants]


def _ab(schedule, t: int) -> float:
    """ᾱ at code index t, with ᾱ = 1 at t = −1 (before the first step / after the last)."""
    return 1.0 if t < 0 else float(schedule.alpha_bars[t])


# --------------------------------------------------------------------------- exercise 6.1

def _ddim(ab_t, ab_prev, sigma, xt, eps, z, clip, *, recompute=True, do_clip=True, sq_dir=True, sq_prev=True,
          z_coef=None):
    """@eq-ddim-step in float64 with switches for the classic mistakes."""
    a, s = ab_t ** 0.5, (1 - ab_t) ** 0.5
    x0 = (xt - s * eps) / a
    if clip and do_clip:
        x0 = x0.clamp(-1, 1)
        if recompute:
            eps = (xt - a * x0) / s
    rest = max(1 - ab_prev - sigma ** 2, 0.0)
    direction = rest ** 0.5 if sq_dir else rest
    signal = ab_prev ** 0.5 if sq_prev else ab_prev
    return signal * x0 + direction * eps + (sigma if z_coef is None else z_coef) * z


def _sig(ab_t, ab_prev, eta, sq=True):
    var = max((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev), 0.0)
    return eta * (var ** 0.5 if sq else var)


def _step_variants(schedule, t, t_prev, eta, clip, xt, eps, z) -> list[_Variant]:
    ab_t, ab_prev = _ab(schedule, t), _ab(schedule, t_prev)
    sig = _sig(ab_t, ab_prev, eta)
    run = lambda ab_p=ab_prev, sg=sig, **kw: _ddim(ab_t, ab_p, sg, xt, eps, z, clip, **kw)  # noqa: E731
    out = []
    if eta != 1:
        out.append(_Variant(run(sg=_sig(ab_t, ab_prev, 1.0)),
                            "η off: your σ is the one for η = 1 (DDPM); multiply it by eta."))
    if eta > 0:
        out.append(_Variant(run(sg=0.0), "η off: your step uses σ = 0 (deterministic DDIM) whatever eta is."))
        out.append(_Variant(run(z_coef=sig ** 2),
                            "a missing √: z is multiplied by σ², the variance; the noise term is σ·z."))
        out.append(_Variant(run(sg=_sig(ab_t, ab_prev, eta, sq=False)),
                            "a missing √ in σ: σ_t(η) = η·√((1 − ᾱ_prev)/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_prev)."))
    if 0 < eta < 1:
        out.append(_Variant(run(sg=eta * sig), "η off: you used η² (or η twice); σ_t(η) is linear in η."))
    out.append(_Variant(run(sq_dir=False),
                        "a missing √: the ε̂ term is √(1 − ᾱ_prev − σ²)·ε̂, not (1 − ᾱ_prev − σ²)·ε̂."))
    out.append(_Variant(run(sq_prev=False), "a missing √: the x̂_0 term is √ᾱ_prev·x̂_0, not ᾱ_prev·x̂_0."))
    if t_prev != t - 1:
        ab_adj = float(schedule.alpha_bars[t - 1])
        out.append(_Variant(run(ab_p=ab_adj, sg=_sig(ab_t, ab_adj, eta)),
                            f"the wrong ᾱ_prev: you used ᾱ at t − 1 = {t - 1}, but this chain step goes to "
                            f"t_prev = {t_prev}; use schedule.alpha_bars[t_prev]."))
    if t_prev == -1:
        ab_wrap = float(schedule.alpha_bars[-1])
        out.append(_Variant(run(ab_p=ab_wrap, sg=_sig(ab_t, ab_wrap, eta)),
                            "the wrong ᾱ_prev: at t_prev = −1, schedule.alpha_bars[-1] is the LAST step "
                            "(Python wraps negative indices); after the last step ᾱ_prev = 1."))
    if clip:
        out.append(_Variant(run(recompute=False),
                            "ε̂ not recomputed after clipping: once x̂_0 is clamped, set "
                            "ε̂ = (x_t − √ᾱ_t·x̂_0)/√(1 − ᾱ_t) so both terms describe the same x_t."))
        out.append(_Variant(run(do_clip=False), "with clip=True, clamp x̂_0 to [−1, 1] (and recompute ε̂)."))
    return out


@_check(6, "one DDIM step of the η family (Eq. @eq-ddim-step) on a strided chain, with optional clipping",
        "x̂_0 = (x_t − √(1−ᾱ_t)·ε)/√ᾱ_t; σ = η·√((1−ᾱ_prev)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_prev); "
        "x_prev = √ᾱ_prev·x̂_0 + √(1−ᾱ_prev−σ²)·ε + σ·z, with ᾱ_prev = 1 at t_prev = −1.",
        terse="one step of the DDIM η family: predicted x0, the direction term and the η-scaled noise",
        hides=("dnnl.models.ddpm:ddim_step_eta", "dnnl.models.ddpm:ddim_sigma", "dnnl.models.ddpm:ddim_step",
               "dnnl.models.ddpm.ddim_scheduler:DDIMScheduler.step"))
def check_ddim_step(fn) -> list[str]:
    """Check ``fn(schedule, eps, xt, t, t_prev, eta, z, clip) -> x_prev`` (Chapter 6, Eq. @eq-ddim-step).

    ``t`` and ``t_prev`` are Python ints (``t_prev = -1`` after the last step); the result must equal
    ``dnnl.models.ddpm.ddim_step_eta`` with ``noise=z``.
    """
    ddpm = _ddpm()
    schedule = ddpm.NoiseSchedule.linear(T=1000)
    g = _gen(61)
    cases = [(600, 500, 0.0, False), (600, 500, 1.0, False), (600, 500, 0.5, False), (300, 299, 1.0, False),
             (99, -1, 0.5, False), (999, 899, 0.3, True), (400, 200, 0.0, True)]
    run = fn
    tested = _Cases()
    for t, t_prev, eta, clip in cases:
        x0 = torch.rand(3, 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
        eps_true = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        xt = ddpm.q_sample(schedule, x0, t, eps_true)
        eps = eps_true + 0.5 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
        z = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        on = f"t = {t}, t_prev = {t_prev}, eta = {eta}, clip = {clip} (linear schedule, T = 1000)"
        got = tested.call(run, schedule, eps.clone(), xt.clone(), t, t_prev, eta, z.clone(), clip, on=on)
        exp = ddpm.ddim_step_eta(schedule, eps, xt, t, t_prev, eta=eta, noise=z if eta > 0 else None, clip=clip)
        tested.compare(got, exp, on=on, variants=_terse_variants(
                           _step_variants(schedule, t, t_prev, eta, clip, xt, eps, z)),
                       what="x_prev")
    tested.finish()
    return [f"{len(cases)} steps: strided (600 → 500, 400 → 200, 999 → 899), adjacent (300 → 299) and the last "
            "(99 → −1), with η = 0, 0.3, 0.5 and 1, with and without clipping",
            "every x_prev equals dnnl.models.ddpm.ddim_step_eta (within 1e-5)"]


# --------------------------------------------------------------------------- exercise 6.2

@_check(6, "the respaced β′ of a strided chain (Eq. @eq-respaced-beta)",
        "β′_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_(i−1)} with ᾱ = 1 before the first visited step: ab = alpha_bars[timesteps]; "
        "1 − ab / cat([1], ab[:-1]).",
        terse="the respaced betas of a strided chain, from ratios of the cumulative products",
        hides=("dnnl.models.ddpm:respaced_betas",))
def check_respaced_betas(fn) -> list[str]:
    """Check ``fn(schedule, timesteps) -> beta_prime`` (Chapter 6, Eq. @eq-respaced-beta).

    ``timesteps`` are ascending 0-based indices (int64); the result, one β′ per visited step, must equal
    ``dnnl.models.ddpm.respaced_betas``.
    """
    ddpm = _ddpm()
    lin, cos = ddpm.NoiseSchedule.linear(T=1000), ddpm.NoiseSchedule.cosine(T=50)
    cases = [(lin, torch.arange(0, 1000, 100), "the leading 10-step chain 0, 100, ..., 900 (linear, T = 1000)"),
             (lin, torch.arange(99, 1000, 100), "the trailing 10-step chain 99, 199, ..., 999 (linear, T = 1000)"),
             (cos, torch.tensor([3, 7, 20, 41, 49]), "uneven steps [3, 7, 20, 41, 49] (cosine, T = 50)"),
             (lin, torch.tensor([999]), "a single step [999] (linear, T = 1000)")]
    run = fn
    tested = _Cases()
    for schedule, taus, on in cases:
        ab = schedule.alpha_bars[taus]
        ones = ab.new_ones(1)
        prev = torch.cat([ones, ab[:-1]])
        exp = ddpm.respaced_betas(schedule, taus)
        got = tested.call(run, schedule, taus.clone(), on=on)
        variants = [
            _Variant(schedule.betas[taus], "these are the original β_t of the visited steps; a strided chain "
                                           "needs β′_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_(i−1)} (the erratum of chapter 4)."),
            _Variant(1 - (ab / prev).sqrt(), "a √ where none belongs: β′ is 1 − the ratio of the ᾱ's, not of "
                                              "their square roots."),
            _Variant(ab / prev, "this is α′ = ᾱ_{τ_i}/ᾱ_{τ_(i−1)}; β′ = 1 − α′."),
            _Variant(1 - prev / ab, "the ratio is upside down: β′_i = 1 − ᾱ_{τ_i}/ᾱ_{τ_(i−1)}."),
            _Variant(1 - ab / torch.cat([schedule.alpha_bars[:1], ab[:-1]]),
                     "the wrong ᾱ_prev for the first step: before the first visited step ᾱ = 1 (clean data), "
                     "not ᾱ at code index 0."),
            _Variant((1 - ab / prev).flip(0), "the order is reversed: return one β′ per timestep, ascending."),
            _Variant((1 - ab / prev)[1:], "the first step is missing: ᾱ_{τ_0} = 1, so β′_1 = 1 − ᾱ_{τ_1}."),
        ]
        shifted = (taus + 1).clamp(max=schedule.T - 1)
        ab1 = schedule.alpha_bars[shifted]
        variants.append(_Variant(1 - ab1 / torch.cat([ones, ab1[:-1]]),
                                 "an off-by-one: you used ᾱ at τ + 1; code index τ is already paper step τ + 1."))
        tested.compare(got, exp, on=on, variants=_terse_variants(variants), atol=1e-10, rtol=1e-8,
                       what="β′")
    tested.finish()
    return ["leading and trailing 10-step chains on a linear T = 1000 schedule, uneven steps on a cosine "
            "T = 50 schedule, and a single step",
            "every β′ equals dnnl.models.ddpm.respaced_betas (within 1e-8, relative)"]


# --------------------------------------------------------------------------- exercise 6.3

def _pair(out, on: str):
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return _tensor(out[0], "your function's first result"), _tensor(out[1], "your function's second result")
    kind = f"a {type(out).__name__} of {len(out)} items" if isinstance(out, (tuple, list)) else \
        f"a {type(out).__name__}"
    raise _Fail(f"On {on}: your function returned {kind}; expected the pair (eps, x0).",
                _named("return both: `return eps, x0`."))


@_check(6, "ε and x_0 from a v prediction (Eqs. @eq-ddim-eps-from-v and @eq-ddim-x0-from-v)",
        "a = √ᾱ_t, s = √(1 − ᾱ_t) gathered at t and shaped (B, 1, 1, 1); eps = s·x_t + a·v, x0 = a·x_t − s·v.",
        terse="the rotation from a v prediction back to the noise and to x0",
        hides=("dnnl.models.ddpm:v_to_eps", "dnnl.models.ddpm:v_to_x0"))
def check_from_v(fn) -> list[str]:
    """Check ``fn(schedule, xt, t, v) -> (eps, x0)`` (Chapter 6, Eqs. @eq-ddim-eps-from-v, @eq-ddim-x0-from-v).

    ``t`` is an int64 tensor (B,); both results must equal ``v_to_eps`` and ``v_to_x0`` of the package.
    """
    ddpm = _ddpm()
    g = _gen(63)
    cases = [(ddpm.NoiseSchedule.linear(T=1000), torch.tensor([0, 10, 500, 999]), "linear, T = 1000"),
             (ddpm.NoiseSchedule.cosine(T=100), torch.tensor([5, 50, 99]), "cosine, T = 100")]
    run = fn
    tested = _Cases()
    for schedule, t, name in cases:
        x0 = torch.rand(len(t), 1, 3, 3, generator=g, dtype=torch.float64) * 2 - 1
        eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        xt = ddpm.q_sample(schedule, x0, t, eps)
        v = ddpm.v_from(schedule, x0, t, eps)
        on = f"t = {t.tolist()} ({name})"
        got = tested.call(run, schedule, xt.clone(), t.clone(), v.clone(), on=on)
        if got is None and tested.fails:
            continue
        got_eps, got_x0 = _pair(got, on)
        shape = (-1, 1, 1, 1)
        ab = schedule.alpha_bars[t].reshape(shape)
        a, s = ab.sqrt(), (1 - ab).sqrt()
        ab_n = schedule.alpha_bars[(t + 1).clamp(max=schedule.T - 1)].reshape(shape)
        common = "the two weights are swapped: ε = √(1 − ᾱ_t)·x_t + √ᾱ_t·v and x_0 = √ᾱ_t·x_t − √(1 − ᾱ_t)·v."
        order = "the pair is in the wrong order: return (eps, x0)."
        no_sqrt = "a missing √: the weights are √ᾱ_t and √(1 − ᾱ_t), not ᾱ_t and 1 − ᾱ_t."
        off = "an off-by-one in t: schedule.alpha_bars[t] already belongs to code index t."
        tested.compare(got_eps, eps, on=on + ", eps", what="eps", variants=_terse_variants([
            _Variant(a * xt + s * v, common), _Variant(x0, order), _Variant((1 - ab) * xt + ab * v, no_sqrt),
            _Variant(s * xt - a * v, "a sign error: ε = √(1 − ᾱ_t)·x_t + √ᾱ_t·v (plus)."),
            _Variant((1 - ab_n).sqrt() * xt + ab_n.sqrt() * v, off)]))
        tested.compare(got_x0, x0, on=on + ", x0", what="x0", variants=_terse_variants([
            _Variant(s * xt - a * v, common), _Variant(eps, order), _Variant(ab * xt - (1 - ab) * v, no_sqrt),
            _Variant(a * xt + s * v, "a sign error: x_0 = √ᾱ_t·x_t − √(1 − ᾱ_t)·v (minus)."),
            _Variant(ab_n.sqrt() * xt - (1 - ab_n).sqrt() * v, off)]))
    tested.finish()
    return ["batches with one step per image on a linear T = 1000 and a cosine T = 100 schedule, "
            "including the first and the last step",
            "eps and x0 equal dnnl.models.ddpm.v_to_eps and v_to_x0 (within 1e-5)"]


# --------------------------------------------------------------------------- exercise 6.4

@_check(6, "one DDIM inversion step (Eq. @eq-ddim-inversion), and that DDIM undoes it",
        "x̂_0 = (x − √(1−ᾱ_t)·ε)/√ᾱ_t with ᾱ_t = 1 at t = −1; return √ᾱ_next·x̂_0 + √(1−ᾱ_next)·ε.",
        terse="the deterministic DDIM step run forwards in time",
        hides=("dnnl.models.ddpm:ddim_inversion_step",))
def check_invert_step(fn) -> list[str]:
    """Check ``fn(schedule, eps, x, t, t_next) -> x_next`` (Chapter 6, Eq. @eq-ddim-inversion).

    The result must equal ``dnnl.models.ddpm.ddim_inversion_step``, and the property that makes inversion
    work must hold: a DDIM step (η = 0) from ``t_next`` back to ``t`` with the same ε returns ``x``.
    """
    ddpm = _ddpm()
    schedule = ddpm.NoiseSchedule.linear(T=1000)
    g = _gen(64)
    cases = [(-1, 99), (99, 199), (500, 999), (0, 1), (250, 600)]
    run = fn
    tested = _Cases()
    worst = 0.0
    for t, t_next in cases:
        x = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
        if t < 0:
            x = x.clamp(-1, 1)
        eps = torch.randn(x.shape, generator=g, dtype=torch.float64)
        on = f"t = {t}, t_next = {t_next} (linear schedule, T = 1000)"
        got = tested.call(run, schedule, eps.clone(), x.clone(), t, t_next, on=on)
        exp = ddpm.ddim_inversion_step(schedule, eps, x, t, t_next)
        ab_t, ab_n = _ab(schedule, t), float(schedule.alpha_bars[t_next])

        def up(a_t, a_n, sq=True):
            x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
            return (a_n ** 0.5 * x0 + (1 - a_n) ** 0.5 * eps) if sq else (a_n * x0 + (1 - a_n) * eps)

        variants = [
            _Variant(up(ab_n, ab_t), "the two ᾱ's are swapped: x̂_0 comes from ᾱ at t (where x is), the result "
                                     "uses ᾱ at t_next."),
            _Variant(up(ab_t, ab_n, sq=False), "a missing √: the result is √ᾱ_next·x̂_0 + √(1 − ᾱ_next)·ε."),
            _Variant(ab_n ** 0.5 * (x - (1 - ab_t) ** 0.5 * eps) / ab_t ** 0.5,
                     "the ε term is missing: inversion re-noises x̂_0 with the same ε, √(1 − ᾱ_next)·ε."),
        ]
        if t < 0:
            variants.append(_Variant(up(float(schedule.alpha_bars[-1]), ab_n),
                                     "the wrong ᾱ at t = −1: schedule.alpha_bars[-1] is the LAST step (Python "
                                     "wraps); t = −1 is clean data with ᾱ = 1."))
        else:
            variants.append(_Variant(ab_n ** 0.5 * x + (1 - ab_n) ** 0.5 * eps,
                                     "x is x_t, not clean data: first predict x̂_0 = (x − √(1 − ᾱ_t)·ε)/√ᾱ_t."))
        n_before = len(tested.fails)
        tested.compare(got, exp, on=on, variants=_terse_variants(variants), what="x_next")
        if len(tested.fails) == n_before:
            back = ddpm.ddim_step_eta(schedule, eps, _tensor(got).double(), t_next, t, eta=0.0)
            worst = max(worst, float((back - x).abs().max()))
    tested.finish()
    return [f"{len(cases)} steps, from clean data (t = −1) and from noisy x, short and long jumps",
            "every x_next equals dnnl.models.ddpm.ddim_inversion_step (within 1e-5)",
            f"a DDIM step back (η = 0) with the same ε returns x (largest error {_fmt(worst)})"]
