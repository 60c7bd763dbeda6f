"""Self-checks for the book's code exercises: ``check_<name>(student_fn) -> bool``.

Each check runs the student's function on seeded random and edge-case inputs, compares the result with
the package implementation (exactly where the output is deterministic, statistically where it is random),
and prints a verdict: what passed, or what is wrong, on which input, expected against got, and the likely
cause when the result matches a classic mistake (ᾱ for α, a missing √, a missing noise z, noise at t = 0,
an off-by-one in t, data in [0, 1]). A check never raises: a stub that raises ``NotImplementedError``
prints "not implemented yet" and returns False, so a student notebook runs to its end.

Every verdict also prints one machine-readable line, ``[dnnl-check] check_<name>: PASS|FAIL|TODO|ERROR``,
that ``python -m dnnl.exercises.grade`` reads.
"""
from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from typing import Callable

import torch

from ._notebook import STUB_MESSAGE

__all__ = [
    "check_to_model_range",
    "check_q_sample",
    "check_oracle_step",
    "check_normal_kl",
    "check_prior_bpd",
    "check_l_simple",
    "check_sampler",
    "check_mc_eps",
    "list_checks",
    "check_info",
]

MARKER = "[dnnl-check]"
TOKEN_ENV = "DNNL_GRADE_TOKEN"
STATUSES = ("PASS", "FAIL", "TODO", "ERROR")

_REGISTRY: dict[str, dict] = {}


# --------------------------------------------------------------------------- verdicts

class _Fail(Exception):
    """The student's function gave a wrong result; `what` says where, `why` the likely cause."""

    def __init__(self, what: str, why: str | list[str] | None = None):
        super().__init__(what)
        self.what = what
        self.whys = [w for w in (why if isinstance(why, list) else [why]) if w]

    @property
    def why(self) -> str | None:
        return self.whys[0] if self.whys else None


class _Todo(Exception):
    """The student's function still raises NotImplementedError."""


class _Misuse(Exception):
    """A helper handed to the student (a model, an eps_fn) was called the wrong way."""


def _marker(name: str, status: str) -> str:
    token = os.environ.get(TOKEN_ENV, "").strip()
    prefix = f"[dnnl-check:{token}]" if token else MARKER
    return f"{prefix} {name}: {status}"


def _indent(text: str, pad: str = "   ") -> str:
    return "\n".join(pad + line for line in text.splitlines())


def _run(name: str, hint: str, body: Callable, fn) -> bool:
    if not callable(fn):
        print(f"❌ {name}: expected your function, got a {type(fn).__name__}. "
              f"Pass the function itself, for example {name}(my_function), without calling it.")
        print(_marker(name, "FAIL"))
        return False
    try:
        with torch.random.fork_rng(devices=[]):  # leave the notebook's global random stream untouched
            tested = body(fn)
    except _Todo as todo:
        msg = str(todo).strip()
        if not msg or msg == STUB_MESSAGE:
            msg = hint
        print(f"⏳ {name}: not implemented yet. Hint: {msg}")
        print(_marker(name, "TODO"))
        return False
    except _Fail as fail:
        print(f"❌ {name}: {fail.what.splitlines()[0]}")
        rest = "\n".join(fail.what.splitlines()[1:])
        if rest:
            print(_indent(rest))
        for k, why in enumerate(dict.fromkeys(fail.whys)):
            print(_indent(f"💡 {'Likely cause' if k == 0 else 'Also'}: {why}"))
        print(_marker(name, "FAIL"))
        return False
    except Exception as err:  # a problem in the check itself: say so, never raise into the notebook
        print(f"❌ {name}: the check itself could not run ({type(err).__name__}: {err}). "
              "This is not a verdict on your code; please report it together with this message.")
        print(_marker(name, "ERROR"))
        return False
    print(f"✅ {name}: passed.")
    for line in tested:
        print(f"   • {line}")
    print(_marker(name, "PASS"))
    return True


def _check(chapter: int, summary: str, hint: str):
    """Register a check body `body(fn) -> list[str]` (what was tested) under its function name."""

    def deco(body):
        name = body.__name__

        @functools.wraps(body)
        def wrapper(fn) -> bool:
            return _run(name, hint, body, fn)

        wrapper.__doc__ = body.__doc__
        _REGISTRY[name] = {"chapter": chapter, "summary": summary, "hint": hint, "fn": wrapper}
        return wrapper

    return deco


def list_checks() -> list[str]:
    """Names of all checks in book order; ``dnnl.exercises.<name>.__doc__`` describes each."""
    return list(_REGISTRY)


def check_info() -> list[dict]:
    """One dict per check (name, chapter, summary, hint), in book order."""
    return [{"name": n, "chapter": _REGISTRY[n]["chapter"], "summary": _REGISTRY[n]["summary"],
             "hint": _REGISTRY[n]["hint"]} for n in list_checks()]


# --------------------------------------------------------------------------- calling the student

_T0_HINT = ("Code timesteps are 0-based: index t runs over 0..T−1 and is paper step t+1, so the last valid "
            "index is T−1. Did you use t+1, or loop from T instead of T−1?")


def _explain(err: Exception) -> str | None:
    text = str(err)
    if isinstance(err, IndexError) or "out of bounds" in text or "out of range" in text or \
            re.search(r"must be in \[0, \d+\]", text):
        return _T0_HINT
    if "ambiguous" in text and "Boolean value of Tensor" in text:
        return ("t is a tensor holding one timestep per image, so `if t == 0:` is ambiguous. "
                "Use a mask instead, for example `nonzero = (t > 0).float().view(-1, *[1] * (x.dim() - 1))`.")
    if "must match the size" in text or "broadcast" in text or "size of tensor" in text:
        return ("a shape mismatch: a coefficient gathered at t has shape (B,) and must be reshaped to "
                "(B, 1, 1, ...) before it multiplies an image batch, for example with "
                "`schedule.gather('alpha_bars', t, x)`.")
    if "generator" in text and ("unexpected keyword" in text or "got an unexpected" in text):
        return ("torch.randn_like does not take a generator; use "
                "`torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)`.")
    if isinstance(err, (TypeError, AttributeError)) and "NoneType" in text:
        return "your function (or a helper) returned None: is a `return` statement missing?"
    return None


def _call(fn, *args, on: str):
    """Call the student's function; turn its exceptions into friendly verdicts."""
    try:
        return fn(*args)
    except NotImplementedError as err:
        raise _Todo(str(err)) from None
    except _Misuse as err:
        raise _Fail(f"On {on}: {err}") from None
    except _Fail:
        raise
    except Exception as err:
        raise _Fail(f"On {on}: your function raised {type(err).__name__}: {err}", _explain(err)) from None


def _tensor(out, what: str = "your function") -> torch.Tensor:
    if out is None:
        raise _Fail(f"{what} returned None.", "is a `return` statement missing at the end of the function?")
    if isinstance(out, torch.Tensor):
        return out.detach().cpu()
    if isinstance(out, (tuple, list)):
        raise _Fail(f"{what} returned a {type(out).__name__} of {len(out)} items; expected one tensor.")
    try:
        return torch.as_tensor(out).detach().cpu()
    except Exception:
        raise _Fail(f"{what} returned a {type(out).__name__}; expected a torch tensor.") from None


# --------------------------------------------------------------------------- comparing

@dataclass
class _Variant:
    value: torch.Tensor
    why: str


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _score(got: torch.Tensor, exp: torch.Tensor, atol: float, rtol: float) -> float:
    """Largest error in units of the tolerance (<= 1 means close); inf on NaN or shape mismatch."""
    if got.shape != exp.shape:
        return math.inf
    g, e = got.double(), exp.double()
    err = (g - e).abs() / (atol + rtol * e.abs())
    err = torch.nan_to_num(err, nan=math.inf)
    return float(err.max()) if err.numel() else 0.0


def _matching(got, variants, atol, rtol) -> list[str]:
    """The explanations of every known-wrong variant that `got` matches, best match first."""
    scored = [(_score(got, v.value, atol, rtol), k, v.why) for k, v in enumerate(variants) if v is not None]
    return [why for s, _, why in sorted(scored) if s <= 1.0]


def _worst(got: torch.Tensor, exp: torch.Tensor) -> str:
    g, e = got.double(), exp.double()
    diff = torch.nan_to_num((g - e).abs(), nan=math.inf)
    flat = int(diff.reshape(-1).argmax())
    idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape)) if diff.dim() else ()
    pair = f"expected {_fmt(float(e.reshape(-1)[flat]))}, got {_fmt(float(g.reshape(-1)[flat]))}"
    return f"Largest error at index {list(idx)}: {pair}" if idx else pair[0].upper() + pair[1:]


def _compare(got, exp: torch.Tensor, *, on: str, variants=(), atol=1e-5, rtol=1e-4, what="result",
             nan_why: str | None = None) -> None:
    got = _tensor(got)
    if got.shape != exp.shape:
        raise _Fail(f"On {on}: expected a {what} of shape {tuple(exp.shape)}, got shape {tuple(got.shape)}.",
                    _matching(got, variants, atol, rtol))
    if got.is_floating_point() and not torch.isfinite(got).all():
        bad = int((~torch.isfinite(got)).sum())
        raise _Fail(f"On {on}: your {what} has {bad} NaN or infinite value(s); expected finite numbers.",
                    _matching(got, variants, atol, rtol)
                    or [nan_why or "a log or square root of a negative number, or a division by zero?"])
    if _score(got, exp, atol, rtol) <= 1.0:
        return
    raise _Fail(f"On {on}: wrong values.\n{_worst(got, exp)}.", _matching(got, variants, atol, rtol))


class _Cases:
    """Collect the failures of several deterministic test inputs; explain them with a cause common to all."""

    def __init__(self):
        self.fails: list[_Fail] = []

    def call(self, fn, *args, on: str):
        """Call the student's function; a raised error is recorded (and ends the loop) when earlier inputs
        already failed, so the first wrong value is the one explained."""
        try:
            return _call(fn, *args, on=on)
        except _Fail as fail:
            if not self.fails:
                raise
            self.fails.append(fail)
            self.finish()

    def compare(self, got, exp, **kw) -> None:
        try:
            _compare(got, exp, **kw)
        except _Fail as fail:
            self.fails.append(fail)

    def finish(self) -> None:
        if not self.fails:
            return
        first = self.fails[0]
        common = [w for w in first.whys if all(w in f.whys for f in self.fails)]
        more = len(self.fails) - 1
        what = first.what + (f"\n{more} more of the test inputs fail as well." if more else "")
        raise _Fail(what, common[:1] or first.whys[:1])


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _at(buf: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """A float64 schedule array at integer t (B,), shaped (B, 1, ...) for `ndim`-dimensional data."""
    v = torch.as_tensor(buf).detach().double().cpu()[t.long()]
    return v.reshape(-1, *([1] * (ndim - 1)))


def _ddpm():
    from dnnl.models import ddpm  # imported lazily: a check never fails at import time
    return ddpm


def _tlist(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(int(v)) for v in t.reshape(-1)) + "]"


# --------------------------------------------------------------------------- chapter 1

@_check(1, "images (uint8 0..255 or float [0, 1]) -> float in [−1, 1]",
        "uint8 images: x.float() / 127.5 - 1; float images in [0, 1]: 2 * x - 1.")
def check_to_model_range(fn) -> list[str]:
    """Check ``fn(images) -> float tensor in [−1, 1]`` (Chapter 1).

    ``images`` is a uint8 tensor with values 0..255 or a float tensor in [0, 1]; 0 must map to −1 and
    255 (or 1.0) to +1, like ``dnnl.data.to_model_range``.
    """
    from dnnl.data import to_model_range
    g = _gen(0)
    u8 = torch.randint(0, 256, (4, 1, 8, 8), generator=g, dtype=torch.uint8)
    u8[0, 0, 0, 0], u8[0, 0, 0, 1] = 0, 255
    f01 = torch.rand(3, 1, 6, 6, generator=g)
    f01[0, 0, 0, 0], f01[0, 0, 0, 1] = 0.0, 1.0
    single = torch.randint(0, 256, (28, 28), generator=g, dtype=torch.uint8)
    edges = torch.stack([torch.zeros(5, 5, dtype=torch.uint8), torch.full((5, 5), 255, dtype=torch.uint8)])
    cases = [
        ("a batch of uint8 images (values 0..255, shape (4, 1, 8, 8))", u8),
        ("a batch of float images in [0, 1] (as from ToTensor, shape (3, 1, 6, 6))", f01),
        ("one uint8 image of shape (28, 28)", single),
        ("an all-black and an all-white uint8 image", edges),
    ]
    cases_ = _Cases()
    for on, x in cases:
        keep = x.clone()
        out = _tensor(cases_.call(fn, x, on=on))
        if not torch.equal(x, keep):
            raise _Fail(f"On {on}: your function changed its input tensor in place.",
                        "in-place operations such as x.mul_(2) or x -= 1 modify the caller's images; "
                        "build a new tensor instead (x * 2 - 1).")
        if not out.is_floating_point():
            raise _Fail(f"On {on}: the result has dtype {out.dtype}; expected a float tensor in [−1, 1].",
                        "convert first with x.float(): in uint8 arithmetic 2 * x wraps around at 256 and "
                        "there are no negative numbers.")
        exp = to_model_range(x).double()
        xd = x.double()
        if x.dtype == torch.uint8:
            variants = [
                _Variant(xd / 255, "the result is in [0, 1]. DDPM works with data in [−1, 1] "
                                   "(the prior N(0, I) is centred on 0): use x / 127.5 − 1."),
                _Variant(2 * xd - 1, "uint8 values are 0..255: divide by 255 (or 127.5) before rescaling."),
                _Variant(2 * xd / 255 / 255 - 1, "divided by 255 twice: the values end up near −1."),
                _Variant(xd / 127.5, "the result is in [0, 2]: subtract 1 after dividing by 127.5."),
                _Variant(xd / 255 - 0.5, "the result is in [−0.5, 0.5]: multiply by 2 (2·x/255 − 1)."),
                _Variant((xd / 255 - 0.1307) / 0.3081, "this standardises with the MNIST mean and std; "
                                                       "DDPM wants the fixed range [−1, 1] (0 → −1, 255 → +1)."),
            ]
        else:
            variants = [
                _Variant(xd, "the result is still in [0, 1]. DDPM works with data in [−1, 1]: use 2·x − 1."),
                _Variant(2 * xd / 255 - 1, "these floats are already in [0, 1]; dividing by 255 again "
                                           "(twice in total) squeezes everything to about −1."),
                _Variant(xd / 255, "these floats are already in [0, 1]: do not divide by 255; use 2·x − 1."),
                _Variant(xd - 0.5, "the result is in [−0.5, 0.5]: multiply by 2 (2·x − 1)."),
                _Variant((xd - 0.1307) / 0.3081, "this standardises with the MNIST mean and std; "
                                                 "DDPM wants the fixed range [−1, 1]: 2·x − 1."),
            ]
        n_before = len(cases_.fails)
        cases_.compare(out, exp, on=on, variants=variants, atol=1e-5, rtol=1e-5, what="result")
        if len(cases_.fails) > n_before and out.numel():
            cases_.fails[-1].what += (f"\nYour values span [{_fmt(float(out.min()))}, {_fmt(float(out.max()))}]; "
                                      "expected [−1, 1] with 0 → −1 and 255 (or 1.0) → +1.")
    cases_.finish()
    return ["uint8 batches, a float batch in [0, 1], a single 28×28 image, all-black and all-white images",
            "values match dnnl.data.to_model_range within 1e-5; 0 → −1 and the maximum → +1; input left unchanged"]


def _q_sample_variants(schedule, x0, t, noise, T) -> list[_Variant]:
    d = x0.dim()
    x0d, nd = x0.double(), noise.double()
    ab, a = _at(schedule.alpha_bars, t, d), _at(schedule.alphas, t, d)
    ab_prev = _at(schedule.alpha_bars_prev, t, d)
    ab_next = _at(schedule.alpha_bars, (t + 1).clamp(max=T - 1), d)
    ab_same = _at(schedule.alpha_bars, t[:1].expand_as(t), d)
    off = ("an off-by-one in t: you used ᾱ at index t{sign}1. Code timesteps are 0-based (index t is paper "
           "step t+1), and schedule.alpha_bars[t] is already ᾱ for that step.")
    return [
        _Variant(a.sqrt() * x0d + (1 - a).sqrt() * nd,
                 "ᾱ vs α: you used α_t = 1 − β_t (a single step) where the closed form needs "
                 "ᾱ_t = α_1·α_2·…·α_t (schedule.alpha_bars)."),
        _Variant(ab * x0d + (1 - ab) * nd,
                 "a missing √: the mean is √ᾱ_t·x0 and the standard deviation is √(1 − ᾱ_t); "
                 "you used ᾱ_t and 1 − ᾱ_t."),
        _Variant(ab * x0d + (1 - ab).sqrt() * nd, "a missing √ on the signal: the mean is √ᾱ_t·x0, not ᾱ_t·x0."),
        _Variant(ab.sqrt() * x0d + (1 - ab) * nd,
                 "a missing √ on the noise: the standard deviation is √(1 − ᾱ_t), not the variance 1 − ᾱ_t."),
        _Variant(ab_prev.sqrt() * x0d + (1 - ab_prev).sqrt() * nd, off.format(sign="−")),
        _Variant(ab_next.sqrt() * x0d + (1 - ab_next).sqrt() * nd, off.format(sign="+")),
        _Variant((1 - ab).sqrt() * x0d + ab.sqrt() * nd,
                 "the two weights are swapped: x0 gets √ᾱ_t and the noise gets √(1 − ᾱ_t)."),
        _Variant(ab.sqrt() * x0d, "the noise term √(1 − ᾱ_t)·ε is missing."),
        _Variant(ab.sqrt() * (x0d + 1) / 2 + (1 - ab).sqrt() * nd,
                 "data range: your function rescaled x0 to [0, 1]. q_sample takes x0 as given; "
                 "the data is already in [−1, 1]."),
        _Variant(ab.sqrt() * (2 * x0d - 1) + (1 - ab).sqrt() * nd,
                 "data range: your function rescaled x0 with 2·x0 − 1, but x0 is already in [−1, 1]."),
        _Variant(ab_same.sqrt() * x0d + (1 - ab_same).sqrt() * nd,
                 "every image used the timestep of the first one. t holds one timestep per image: gather "
                 "the coefficient per image, e.g. schedule.gather('alpha_bars', t, x0)."),
        _Variant(torch.where(t.reshape(-1, *[1] * (d - 1)) == 0, x0d,
                             ab.sqrt() * x0d + (1 - ab).sqrt() * nd),
                 "at t = 0 you returned x0 unchanged. Code index 0 is paper step 1, which still adds a "
                 "little noise: ᾱ_0 = 1 − β_1 < 1."),
    ]


@_check(1, "q_sample(schedule, x0, t, noise) -> x_t (closed form q(x_t | x_0))",
        "x_t = √ᾱ_t · x0 + √(1 − ᾱ_t) · noise, with ᾱ_t gathered at t and reshaped to (B, 1, 1, 1).")
def check_q_sample(fn) -> list[str]:
    """Check ``fn(schedule, x0, t, noise) -> x_t`` (Chapter 1, Eq. @eq-q-sample).

    ``x0`` is a batch in [−1, 1], ``t`` an int64 tensor (B,) of 0-based timesteps, ``noise`` the ε to use.
    """
    ddpm = _ddpm()
    g = _gen(1)
    lin = ddpm.NoiseSchedule.linear(T=1000)
    cos = ddpm.NoiseSchedule.cosine(T=50)
    x0 = torch.rand(6, 1, 5, 5, generator=g) * 2 - 1
    noise = torch.randn(6, 1, 5, 5, generator=g)
    cases = [
        (lin, torch.tensor([150, 300, 450, 600, 750, 900]), "the linear schedule (T=1000)"),
        (lin, torch.tensor([0, 1, 999, 998, 0, 999]), "the linear schedule (T=1000) at the edges t = 0 and T−1"),
        (cos, torch.tensor([0, 7, 19, 28, 41, 49]), "a cosine schedule with T=50"),
        (lin, 500, "the linear schedule (T=1000) with t given as a Python int"),
    ]
    cases_ = _Cases()
    for schedule, t_arg, name in cases:
        if isinstance(t_arg, int):
            t = torch.full((len(x0),), t_arg)
            on, args = f"{name}, t = {t_arg}", (schedule, x0.clone(), t_arg, noise.clone())
        else:
            t = t_arg
            on, args = f"{name}, t = {_tlist(t)}", (schedule, x0.clone(), t.clone(), noise.clone())
        out = _tensor(cases_.call(fn, *args, on=on))
        exp = ddpm.q_sample(schedule, x0.double(), t, noise.double())
        variants = _q_sample_variants(schedule, x0, t, noise, schedule.T)
        if schedule is cos:
            ab = _at(lin.alpha_bars, t, 4)
            variants.append(_Variant(ab.sqrt() * x0.double() + (1 - ab).sqrt() * noise.double(),
                                     "your function used a linear T=1000 schedule, not the `schedule` "
                                     "argument it was given."))
        if out.shape == exp.shape and _score(out, exp, 1e-4, 1e-4) > 1:
            again = _tensor(_call(fn, *args, on=on))
            if again.shape == out.shape and not torch.allclose(again, out):
                raise _Fail(f"On {on}: two calls with the same inputs gave different results.\n"
                            f"{_worst(out, exp)}.",
                            "your function draws its own noise; use the `noise` argument it is given.")
        cases_.compare(out, exp, on=on, variants=variants, atol=1e-4, rtol=1e-4, what="x_t")
    cases_.finish()
    return ["24 images on a linear (T=1000) and a cosine (T=50) schedule, t mixed per image, "
            "including the edges t = 0 and t = T−1, and t given as a Python int",
            "matches dnnl.models.ddpm.q_sample with the same noise within 1e-4"]


# --------------------------------------------------------------------------- chapter 2

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


_ORACLE_WHY = {
    "off-by-one t−1": "an off-by-one in t: your coefficients are those of index t−1. Code index t is paper "
                      "step t+1; schedule.posterior_mean_coef1[t] and posterior_variance[t] already belong to it.",
    "off-by-one t+1": "an off-by-one in t: your coefficients are those of index t+1. Code index t is paper "
                      "step t+1; schedule.posterior_mean_coef1[t] and posterior_variance[t] already belong to it.",
    "alpha": "ᾱ vs α: the posterior mean uses ᾱ_{t−1} and ᾱ_t (products of α), not single-step α's: "
             "μ̃ = √ᾱ_{t−1}·β_t/(1−ᾱ_t)·x0 + √α_t·(1−ᾱ_{t−1})/(1−ᾱ_t)·x_t.",
    "abar-in-c2": "ᾱ vs α: the x_t coefficient is √α_t·(1−ᾱ_{t−1})/(1−ᾱ_t); you used √ᾱ_t instead of √α_t.",
    "alpha-in-c1": "ᾱ vs α: the x0 coefficient is √ᾱ_{t−1}·β_t/(1−ᾱ_t); you used √α_t instead of √ᾱ_{t−1}.",
    "no-sqrt": "a missing √: the coefficients contain √ᾱ_{t−1} and √α_t, not ᾱ_{t−1} and α_t.",
    "swapped": "the x0 and x_t coefficients are swapped.",
}


@_check(2, "one sample of q(x_{t−1} | x_t, x_0), with the noise z",
        "mean, var = posterior mean and variance at t; return mean + sqrt(var) * z with "
        "z = torch.randn(..., generator=generator), and no noise where t == 0.")
def check_oracle_step(fn) -> list[str]:
    """Check ``fn(schedule, x0, xt, t, generator) -> x_{t−1}``, a sample of q(x_{t−1} | x_t, x0) (Eq. @eq-oracle-step).

    Compared with ``dnnl.models.ddpm.q_posterior`` statistically: 400 copies of each (x0, x_t, t) give the
    sample mean (must be μ̃_t) and variance (must be β̃_t; exactly 0 at t = 0).
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
                    "a square root or log of a negative number, or a division by zero? At t = 0 the posterior "
                    "variance is exactly 0, so its log is −inf.")
    again = _tensor(_call(fn, schedule, x0.clone(), xt.clone(), t.clone(), _gen(7), on=on))
    if not torch.equal(again, out):
        raise _Fail(f"On {on}: two calls with identically seeded generators gave different samples.",
                    "draw z with the generator you are given: torch.randn(xt.shape, generator=generator, "
                    "dtype=xt.dtype, device=xt.device).")

    problems = _oracle_groups(schedule, x0, xt, t, out, groups, R)
    if not problems:
        # a Python int t, as the package also accepts: one mid step and the last step
        for tv in (500, 0):
            x0_i = (torch.rand(1, *shape, generator=g) * 2 - 1).expand(R, *shape).contiguous()
            xt_i = ddpm.q_sample(schedule, x0_i[:1], tv, torch.randn(1, *shape, generator=g)).expand(R, *shape)
            on_i = f"{R} copies of one (x0, x_t) pair with t given as the Python int {tv}"
            out_i = _tensor(_call(fn, schedule, x0_i.clone(), xt_i.contiguous(), tv, _gen(8), on=on_i))
            if out_i.shape != x0_i.shape:
                raise _Fail(f"On {on_i}: expected x_(t−1) of shape {tuple(x0_i.shape)}, got {tuple(out_i.shape)}.")
            problems += _oracle_groups(schedule, x0_i, xt_i, torch.full((R,), tv), out_i, [tv], R)
            if problems:
                on = on_i
                break
    if problems:
        here, what, _ = problems[0]
        others = [p[0] for p in problems[1:]]
        extra = f"\nAlso wrong at: {', '.join(others)}." if others else ""
        raise _Fail(f"On {on}: your samples do not follow q(x_(t−1) | x_t, x0).\n{what}{extra}",
                    [p[2] for p in problems if p[2]])
    return [f"400 samples at each of t = {groups}, with one (x0, x_t) pair per t, mixed in one batch; "
            "then t = 500 and t = 0 given as Python ints",
            "sample mean matches μ̃_t from dnnl.models.ddpm.q_posterior and the sample variance matches β̃_t "
            "(5 standard errors); t = 0 returns the mean exactly; the same generator seed gives the same sample"]


def _oracle_groups(schedule, x0, xt, t, out, groups, R):
    """Per-t statistics of R samples per group; a list of (where, what, likely cause) for each bad group."""
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
            if float((o - m).abs().max()) <= 1e-4:
                continue
            if v_hat > 1e-10:
                problems.append((here, f"at {here} your samples vary (std {_fmt(math.sqrt(v_hat))}); at t = 0 the "
                                       "step must return the posterior mean, which is x0 itself.",
                                 "noise added at t = 0: the last step (code index 0, paper step 1) adds no noise, "
                                 "because β̃ at t = 0 is exactly 0. Mask the noise with (t > 0)."))
                continue
        tol_m = 5 * math.sqrt(max(v_hat, v) / R) + 1e-4
        mean_ok = dev <= tol_m
        var_ok = tv == 0 or abs(v_hat / v - 1) <= rtol
        if mean_ok and var_ok:
            continue
        what = (f"at {here}: sample mean off by up to {_fmt(dev)} (allowed {_fmt(tol_m)}), sample variance "
                f"{_fmt(v_hat)} (expected β̃ = {_fmt(v)}).")
        why = None
        if v_hat < 1e-12 * max(v, 1e-30) or v_hat < 1e-14:
            shift = (m_hat - m[0])
            if tv > 0 and float((shift - math.sqrt(v)).abs().max()) <= 1e-4 + 1e-3 * math.sqrt(v):
                why = ("the noise z is missing: you return mean + √β̃ (a fixed shift, the same for every sample) "
                       "instead of mean + √β̃·z with z ~ N(0, I). The reference text has exactly this bug.")
            elif dev <= 1e-4:
                why = ("no noise: you return the posterior mean. A sample of q(x_{t−1} | x_t, x0) is "
                       "mean + √β̃_t·z with z ~ N(0, I).")
        if why is None and mean_ok:
            if abs(v_hat / bt - 1) <= rtol and abs(bt / v - 1) > 2 * rtol:
                why = ("the variance is β_t instead of β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t)·β_t. β_t is an allowed "
                       "choice for the learned reverse model p_θ, but the true posterior q(x_{t−1} | x_t, x0) "
                       "has variance β̃_t (schedule.posterior_variance).")
            elif abs(v_hat / (v * v) - 1) <= rtol:
                why = "a missing √: you multiplied z by the variance β̃_t; the standard deviation is √β̃_t."
            elif abs(v_hat - 1) <= rtol:
                why = "z is not scaled: multiply it by the standard deviation √β̃_t."
            else:
                why = f"the noise has {_fmt(v_hat / v)} times the variance β̃_t."
        if why is None:
            for name, wm, _ in wrong_means:
                if float((m_hat - wm[sl][0]).abs().max()) <= tol_m:
                    why = _ORACLE_WHY[name]
                    break
        problems.append((here, what, why))
    return problems


# --------------------------------------------------------------------------- chapter 3

def _kl(m1, lv1, m2, lv2):
    return 0.5 * (-1.0 + lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2))


def _kl_var(m1, v1, m2, v2):
    return 0.5 * (-1.0 + torch.log(v2) - torch.log(v1) + v1 / v2 + (m1 - m2) ** 2 / v2)


@_check(3, "normal_kl(mean1, logvar1, mean2, logvar2) -> elementwise KL in nats",
        "KL(N(μ1, σ1²) ‖ N(μ2, σ2²)) = ½(log σ2² − log σ1² + σ1²/σ2² + (μ1 − μ2)²/σ2² − 1), elementwise.")
def check_normal_kl(fn) -> list[str]:
    """Check ``fn(mean1, logvar1, mean2, logvar2) -> KL(N1 ‖ N2)`` elementwise, in nats (Eq. @eq-gaussian-kl).

    Arguments are tensors (they broadcast); log-variances are natural logs of variances.
    """
    ddpm = _ddpm()
    g = _gen(3)
    r = lambda *s, lo=-1.0, hi=1.0: torch.rand(*s, generator=g, dtype=torch.float64) * (hi - lo) + lo  # noqa: E731
    z = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    cases = [
        ("KL(N(0, 1) ‖ N(1, 1)) (the answer is 0.5)", (z(0.0), z(0.0), z(1.0), z(0.0))),
        ("KL(N(0, 2) ‖ N(0, 1)) (the answer is ½(1 − ln 2) ≈ 0.1534)", (z(0.0), z(math.log(2)), z(0.0), z(0.0))),
        ("random tensors of shape (5, 7), log-variances in [−3, 1]",
         (r(5, 7, lo=-2, hi=2), r(5, 7, lo=-3, hi=1), r(5, 7, lo=-2, hi=2), r(5, 7, lo=-3, hi=1))),
        ("random tensors of shape (4, 6), log-variances in [0.2, 1.5]",
         (r(4, 6, lo=-1, hi=1), r(4, 6, lo=0.2, hi=1.5), r(4, 6, lo=-1, hi=1), r(4, 6, lo=0.2, hi=1.5))),
        ("two identical distributions (the answer is 0)", (r(3, 3), r(3, 3)) * 2),
        ("mean1, logvar1 of shape (3, 4) against the scalar N(0, 1) (broadcasting)",
         (r(3, 4, lo=-2, hi=2), r(3, 4, lo=-2, hi=1), z(0.0), z(0.0))),
    ]
    cases_ = _Cases()
    for on, args in cases:
        m1, lv1, m2, lv2 = args
        out = cases_.call(fn, *(a.clone() for a in args), on=on)
        exp = ddpm.normal_kl(m1, lv1, m2, lv2).double()
        exp = exp.expand(torch.broadcast_shapes(m1.shape, lv1.shape, m2.shape, lv2.shape))
        with torch.no_grad():
            variants = [
                _Variant(_kl(m2, lv2, m1, lv1).expand_as(exp),
                         "the arguments are swapped: you computed KL(N2 ‖ N1). KL is not symmetric; the first "
                         "distribution is the one the expectation is taken under."),
                _Variant(2 * exp, "the factor ½ in front of the bracket is missing."),
                _Variant(exp / math.log(2), "the result is in bits; normal_kl returns nats (natural log). "
                                            "Convert to bits only at the end, when you compute bits/dim."),
                _Variant(exp + 0.5, "the −1 inside the bracket is missing."),
                _Variant(_kl_var(m1, torch.exp(2 * lv1), m2, torch.exp(2 * lv2)).expand_as(exp),
                         "you treated the log-variance as a log standard deviation (exp(2·logvar)); "
                         "the variance is exp(logvar)."),
                _Variant((0.5 * (-1 + lv1 - lv2 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2)))
                         .expand_as(exp),
                         "the log term has the wrong sign: it is log σ2² − log σ1² = logvar2 − logvar1."),
                _Variant((0.5 * (-1 + lv2 - lv1 + torch.exp(lv2 - lv1) + (m1 - m2) ** 2 * torch.exp(-lv2)))
                         .expand_as(exp),
                         "the variance ratio is upside down: it is σ1²/σ2² = exp(logvar1 − logvar2)."),
                _Variant(0.5 * (-1 + lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2).expand_as(exp),
                         "the squared mean difference must be divided by σ2² (times exp(−logvar2))."),
                _Variant(exp.sum(), "you summed the KL over all elements; return it elementwise "
                                    "(the same shape as the inputs) and reduce later."),
                _Variant(exp.mean(), "you averaged the KL over all elements; return it elementwise "
                                     "(the same shape as the inputs) and reduce later."),
            ]
            if bool((lv1 > 0).all() and (lv2 > 0).all()):
                variants.append(_Variant(_kl_var(m1, lv1, m2, lv2).expand_as(exp),
                                         "variance vs log-variance: you used the log-variance as if it were the "
                                         "variance. Use exp(logvar) for σ², and logvar itself for log σ²."))
        cases_.compare(out, exp, on=on, variants=variants, atol=1e-6, rtol=1e-5, what="KL",
                       nan_why="a log of a log-variance? logvar can be 0 or negative: log σ² is logvar itself, "
                               "and the variance is σ² = exp(logvar).")
    cases_.finish()
    return ["the two textbook values 0.5 and ½(1 − ln 2), random tensors, identical distributions "
            "and broadcasting against N(0, 1)",
            "matches dnnl.models.ddpm.normal_kl elementwise within 1e-5"]


@_check(3, "prior_bpd(schedule, x0) -> (B,) bits/dim of KL(q(x_T | x_0) ‖ N(0, I))",
        "q(x_T | x0) = N(√ᾱ_{T−1}·x0, (1 − ᾱ_{T−1})·I) with code index T−1; KL against N(0, I) per pixel, "
        "mean over all dims but the batch, divided by ln 2.")
def check_prior_bpd(fn) -> list[str]:
    """Check ``fn(schedule, x0) -> (B,)`` bits/dim of the prior term L_T (Eqs. @eq-prior-term, @eq-bpd).

    Compared with ``dnnl.models.ddpm.prior_bpd`` on a standard, a short and a cosine schedule.
    """
    ddpm = _ddpm()
    g = _gen(4)
    x0 = torch.rand(4, 1, 6, 6, generator=g) * 2 - 1
    pm1 = torch.where(torch.rand(3, 1, 6, 6, generator=g) < 0.5, -1.0, 1.0)
    cases = [
        (ddpm.NoiseSchedule.linear(T=10), x0, "a short linear schedule (T=10), where L_T is large"),
        (ddpm.NoiseSchedule.linear(T=1000), x0, "the standard linear schedule (T=1000)"),
        (ddpm.NoiseSchedule.linear(T=1000), pm1, "pixels at ±1 on the standard linear schedule "
                                                  "(the answer is 2.9113e-5 bits/dim)"),
        (ddpm.NoiseSchedule.cosine(T=50), x0[:1], "a single image on a cosine schedule (T=50)"),
    ]
    cases_ = _Cases()
    for schedule, x, on in cases:
        out = cases_.call(fn, schedule, x.clone(), on=on)
        exp = ddpm.prior_bpd(schedule, x.double()).double()
        T = schedule.T
        D = x[0].numel()
        xd = x.double()

        def kl_bpd(ab, sqrt_mean=True, std_as_var=False, reduce="mean", bits=True):
            mu = (ab.sqrt() if sqrt_mean else ab) * xd
            var = (1 - ab).sqrt() if std_as_var else (1 - ab)
            kl = _kl_var(mu, var.expand_as(mu), torch.zeros(()), torch.ones(()))
            kl = kl.reshape(len(x), -1)
            kl = kl.mean(1) if reduce == "mean" else kl.sum(1)
            return kl / math.log(2) if bits else kl

        ab_last = torch.as_tensor(schedule.alpha_bars).double()[T - 1]
        ab_prev = torch.as_tensor(schedule.alpha_bars).double()[T - 2]
        a_last = torch.as_tensor(schedule.alphas).double()[T - 1]
        variants = [
            _Variant(exp * math.log(2), "the result is in nats: bits/dim divides the KL by ln 2."),
            _Variant(exp * D, f"you summed over the {D} dimensions: bits per dim averages over them."),
            _Variant(exp * D * math.log(2), f"nats summed over the {D} dimensions: average over the dims "
                                            "and divide by ln 2."),
            _Variant(kl_bpd(ab_prev), "an off-by-one in t: you used ᾱ at index T−2. The last code index is "
                                      "T−1 (paper step T): schedule.alpha_bars[T - 1] or alpha_bars[-1]."),
            _Variant(kl_bpd(a_last), "ᾱ vs α: q(x_T | x0) uses ᾱ_T, the product of all α's "
                                     "(schedule.alpha_bars[-1]), not the last α_T."),
            _Variant(kl_bpd(ab_last, sqrt_mean=False), "a missing √: the mean of q(x_T | x0) is √ᾱ_T·x0."),
            _Variant(kl_bpd(ab_last, std_as_var=True), "a √ too many: the variance of q(x_T | x0) is "
                                                       "1 − ᾱ_T, not its square root."),
            _Variant(exp.mean(), "you averaged over the batch: return one value per image, shape (B,)."),
            _Variant(exp.mean() * math.log(2), "nats averaged over the batch: return one value per image, "
                                               "shape (B,), in bits (divide by ln 2)."),
        ]
        cases_.compare(out, exp, on=on, variants=variants, atol=1e-10, rtol=1e-4, what="bits/dim")
    cases_.finish()
    return ["linear schedules with T=10 and T=1000, a cosine schedule with T=50, pixels at ±1 and a single image",
            "matches dnnl.models.ddpm.prior_bpd per image within 1e-4 (relative)"]


# --------------------------------------------------------------------------- chapter 4

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
            raise _Misuse(f"the model got t = {t!r}; pass a tensor of shape (B,) with one timestep per image.")
        if t.is_floating_point() or t.dtype == torch.bool:
            raise _Misuse(f"the model got t with dtype {t.dtype}; pass integer timesteps (torch.long), "
                          "one per image. The network embeds them itself.")
        if t.shape != (xt.shape[0],):
            raise _Misuse(f"the model got t of shape {tuple(t.shape)} for a batch of {xt.shape[0]} images; "
                          "draw one timestep per image: torch.randint(0, T, (B,), generator=generator).")
        if int(t.min()) < 0 or int(t.max()) > self.T - 1:
            raise _Misuse(f"the model got t = {int(t.max()) if int(t.max()) > self.T - 1 else int(t.min())}, but "
                          f"code timesteps run over 0..T−1 = 0..{self.T - 1}. {_T0_HINT} Draw t with "
                          "torch.randint(0, T, (B,), generator=generator).")
        self.calls.append((xt.detach().cpu().clone(), t.detach().cpu().clone()))
        return self.w * xt + self.b * (t.to(xt.dtype) / self.T).reshape(-1, *[1] * (xt.dim() - 1))


@_check(4, "L_simple(model, schedule, x0, generator) -> scalar noise-prediction loss",
        "t = torch.randint(0, T, (B,), generator=generator); noise = torch.randn(x0.shape, generator=generator); "
        "xt = q_sample(...); return ((model(xt, t) - noise) ** 2).mean().")
def check_l_simple(fn) -> list[str]:
    """Check ``fn(model, schedule, x0, generator) -> loss``, the L_simple of Algorithm 1 (Eq. @eq-l-simple).

    A small recording model sees the x_t and t you build; the check rebuilds ε from them and needs your
    loss to equal mean((ε − model(x_t, t))²). Over 12 calls, t must cover 0..T−1 uniformly, ε must look
    like N(0, I), and the average must agree with ``dnnl.models.ddpm.noise_prediction_loss``.
    """
    ddpm = _ddpm()
    schedule = ddpm.NoiseSchedule.linear(T=20, beta_start=0.01, beta_end=0.3)
    T, K, B = schedule.T, 12, 64
    x0 = torch.rand(B, 1, 3, 3, generator=_gen(5)) * 2 - 1
    D = x0[0].numel()
    losses, eps_all, t_all, per_call_t = [], [], [], []
    for k in range(K):
        model = _RecordingModel(T)
        on = f"call {k + 1} of {K} (a batch of {B} images of shape (1, 3, 3), a linear schedule with T={T})"
        raw = _call(fn, model, schedule, x0.clone(), _gen(100 + k), on=on)
        if raw is None:
            raise _Fail(f"On {on}: your function returned None.", "is a `return loss` missing?")
        if not isinstance(raw, torch.Tensor):
            raise _Fail(f"On {on}: your function returned a {type(raw).__name__}; expected a scalar tensor.",
                        "return the tensor itself, not loss.item(): training needs it for loss.backward().")
        if raw.numel() != 1:
            per = raw.detach().reshape(-1).shape[0]
            raise _Fail(f"On {on}: expected a scalar loss, got a tensor of shape {tuple(raw.shape)}.",
                        f"reduce with .mean() over all {per} numbers: L_simple is the mean squared error.")
        if not raw.requires_grad:
            raise _Fail(f"On {on}: the loss has no gradient with respect to the model's parameters.",
                        "did you call the model under torch.no_grad(), detach the output, or use .item()?")
        if len(model.calls) != 1:
            raise _Fail(f"On {on}: your function called the model {len(model.calls)} times; expected once.",
                        "L_simple needs exactly one forward pass: model(x_t, t).")
        xt, t = model.calls[0]
        L = float(raw.detach())
        xd, x0d, out = xt.double(), x0.double(), None
        with torch.no_grad():
            out = model(xt, t).double()
        model.calls.pop()
        ab, a = _at(schedule.alpha_bars, t, 4), _at(schedule.alphas, t, 4)

        def rebuilt(ab_):
            return (xd - ab_.sqrt() * x0d) / (1 - ab_).sqrt()

        eps = rebuilt(ab)
        ref = float(((eps - out) ** 2).mean())
        if abs(L - ref) > 1e-4 * abs(ref) + 1e-6:
            cand = [
                (float(((x0d - out) ** 2).mean()),
                 "the target is x0. L_simple regresses the noise: compare model(x_t, t) with ε, not with x0."),
                (float(((rebuilt(a) - out) ** 2).mean()),
                 "ᾱ vs α: x_t must be built with ᾱ_t = α_1·…·α_t (schedule.alpha_bars[t]), not α_t."),
                (float((((xd - ab * x0d) / (1 - ab) - out) ** 2).mean()),
                 "a missing √: x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε."),
                (float(((rebuilt(_at(schedule.alpha_bars_prev, t, 4)) - out) ** 2).mean())
                 if int(t.min()) > 0 else math.nan,
                 "an off-by-one in t: x_t was built with ᾱ at index t−1 but the model got t. Use the same "
                 "0-based t for both: schedule.alpha_bars[t]."),
                (float(((rebuilt(_at(schedule.alpha_bars, (t + 1).clamp(max=T - 1), 4)) - out) ** 2).mean())
                 if int(t.max()) < T - 1 else math.nan,
                 "an off-by-one in t: x_t was built with ᾱ at index t+1 but the model got t. Use the same "
                 "0-based t for both."),
                (float(((eps - out) ** 2).sum()),
                 "you summed the squared errors; L_simple is their mean (.mean(), or F.mse_loss)."),
                (float(((eps - out) ** 2).reshape(B, -1).sum(1).mean()),
                 f"you summed over the {D} pixels of each image; L_simple averages over them too."),
                (float((eps - out).abs().mean()), "that is the mean absolute error; L_simple squares the error."),
                (float(((xd - (1 - ab).sqrt() * x0d) / ab.sqrt() - out).pow(2).mean()),
                 "the weights are swapped: x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε."),
            ]
            why = next((w for v, w in cand if math.isfinite(v) and abs(L - v) <= 1e-4 * abs(v) + 1e-6), None)
            at0 = t == 0
            if why is None and bool(at0.any()) and float((xd[at0] - x0d[at0]).abs().max()) <= 1e-6:
                why = ("an off-by-one in t: at t = 0 your x_t equals x0, so ᾱ came from index t−1 "
                       "(schedule.alpha_bars_prev[0] = 1). Code index 0 is paper step 1 and still adds noise: "
                       "use schedule.alpha_bars[t] with the same t the model gets.")
            if why is None:
                why = ("the loss is not mean((ε − model(x_t, t))²) for the x_t your function passed to the model. "
                       "Use the same ε to build x_t and as the target, and build x_t with the same t the model gets.")
            raise _Fail(f"On {on}: your loss is {_fmt(L)}, but for the x_t and t your function gave the model, "
                        f"L_simple is {_fmt(ref)}.", why)
        losses.append(L)
        eps_all.append(eps.reshape(-1))
        t_all.append(t)
        per_call_t.append(t)

    raw2 = _call(fn, _RecordingModel(T), schedule, x0.clone(), _gen(100), on="a repeated call with the same seed")
    if float(raw2.detach()) != losses[0]:
        raise _Fail("Two calls with identically seeded generators gave different losses "
                    f"({_fmt(losses[0])} and {_fmt(float(raw2.detach()))}).",
                    "draw t and the noise with the generator you are given, e.g. torch.randint(0, T, (B,), "
                    "generator=generator) and torch.randn(x0.shape, generator=generator).")
    if all(bool((tt == tt[0]).all()) for tt in per_call_t):
        raise _Fail("Every call used a single timestep for the whole batch.",
                    "Algorithm 1 draws one t per image: torch.randint(0, T, (B,), generator=generator).")
    ts = torch.cat(t_all)
    counts = torch.bincount(ts, minlength=T).double()
    if int(counts[0]) == 0 or int(counts[-1]) == 0:
        missing = [i for i in (0, T - 1) if counts[i] == 0]
        raise _Fail(f"Over {K} calls ({K * B} draws of t) the model never saw t = {missing}.",
                    f"an off-by-one in the range of t: code timesteps are 0..T−1. torch.randint(0, T, ...) "
                    f"includes 0 and excludes T. {'You seem to draw from 1..T−1.' if 0 in missing else ''}")
    expected = K * B / T
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    if chi2 > (T - 1) + 8 * math.sqrt(2 * (T - 1)):
        raise _Fail(f"Over {K * B} draws, t is far from uniform on 0..{T - 1} (χ² = {_fmt(chi2)} with "
                    f"{T - 1} degrees of freedom). Counts per t: {counts.long().tolist()}.",
                    "draw t uniformly: torch.randint(0, T, (B,), generator=generator).")
    e = torch.cat(eps_all)
    n = e.numel()
    e_mean, e_var = float(e.mean()), float(e.var())
    if abs(e_mean) > 5 / math.sqrt(n) or abs(e_var - 1) > 5 * math.sqrt(2 / n):
        raise _Fail(f"The noise your function used has mean {_fmt(e_mean)} and variance {_fmt(e_var)} "
                    "(expected 0 and 1).",
                    "ε must be standard normal: torch.randn(x0.shape, generator=generator), not torch.rand.")
    with torch.no_grad():
        ref_losses = [float(ddpm.noise_prediction_loss(_RecordingModel(T), schedule, x0, generator=_gen(900 + k)))
                      for k in range(3 * K)]
    ls, lr = torch.tensor(losses, dtype=torch.float64), torch.tensor(ref_losses, dtype=torch.float64)
    se = math.sqrt(float(ls.var()) / len(ls) + float(lr.var()) / len(lr))
    if abs(float(ls.mean() - lr.mean())) > 5 * se + 1e-6:
        raise _Fail(f"Your average loss over {K} calls is {_fmt(float(ls.mean()))}, the package's "
                    f"noise_prediction_loss averages {_fmt(float(lr.mean()))} (allowed difference {_fmt(5 * se)}).")
    return [f"{K} calls on a batch of {B} with a T={T} schedule and a small recording model",
            "the loss equals mean((ε − model(x_t, t))²) for the x_t and t passed to the model; "
            "t is one per image, uniform on 0..T−1; ε is N(0, 1); the same seed gives the same loss",
            f"the average loss {_fmt(float(ls.mean()))} agrees with dnnl.models.ddpm.noise_prediction_loss "
            f"({_fmt(float(lr.mean()))}) within 5 standard errors"]


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
            raise _Misuse(f"eps_fn got t with dtype {tt.dtype}; pass integer timesteps (torch.long).")
        if tt.numel() not in (1, self.shape[0]):
            raise _Misuse(f"eps_fn got t of shape {tuple(tt.shape)}; pass one timestep per sample, shape "
                          f"({self.shape[0]},), e.g. torch.full((B,), t, dtype=torch.long).")
        vals = tt.reshape(-1)
        if not bool((vals == vals[0]).all()):
            raise _Misuse("eps_fn got different timesteps within one batch; every sample is at the same step.")
        tv = int(vals[0])
        if not 0 <= tv <= T - 1:
            raise _Misuse(f"eps_fn was called with t = {tv}, but code timesteps run over 0..T−1 = 0..{T - 1}. "
                          f"{_T0_HINT} Loop with `for t in reversed(range(T))`.")
        self.calls.append((xt.detach().double().cpu().clone(), tv))
        return self.eps(xt.detach().double(), tv).to(xt.dtype)

    def eps(self, xt, tv: int):
        ab = float(torch.as_tensor(self.schedule.alpha_bars).double()[tv])
        return math.sqrt(1 - ab) * (xt - math.sqrt(ab) * self.mu) / (ab * self.s ** 2 + 1 - ab)


def _sampler_means(schedule, x, eps, tv, T):
    """Known-wrong Algorithm 2 means (why, mean) for one step at index tv, in float64."""
    A = lambda name, i: float(torch.as_tensor(getattr(schedule, name)).double()[min(max(i, 0), T - 1)])  # noqa: E731
    a, ab, b = A("alphas", tv), A("alpha_bars", tv), A("betas", tv)
    off = ("an off-by-one in t: the coefficients come from index t{0}1 while eps_fn got t. Use the same "
           "0-based index for both.")
    out = [
        ("ᾱ vs α: the ε coefficient is β_t/√(1 − ᾱ_t); you used √(1 − α_t) = √β_t, i.e. α_t where ᾱ_t belongs "
         "(a slip also found in the Ko tutorial).", (x - math.sqrt(b) * eps) / math.sqrt(a)),
        ("ᾱ vs α: divide by √α_t, not √ᾱ_t.", (x - b / math.sqrt(1 - ab) * eps) / math.sqrt(ab)),
        ("a missing √: the ε coefficient is β_t/√(1 − ᾱ_t), not β_t/(1 − ᾱ_t).",
         (x - b / (1 - ab) * eps) / math.sqrt(a)),
        ("a missing √: divide by √α_t, not α_t.", (x - b / math.sqrt(1 - ab) * eps) / a),
        ("a sign error: Algorithm 2 subtracts the predicted noise, x_t − β_t/√(1 − ᾱ_t)·ε_θ.",
         (x + b / math.sqrt(1 - ab) * eps) / math.sqrt(a)),
    ]
    for shift, sign in ((-1, "−"), (1, "+")):
        i = tv + shift
        if 0 <= i <= T - 1:
            a2, ab2, b2 = A("alphas", i), A("alpha_bars", i), A("betas", i)
            out.append((off.format(sign), (x - b2 / math.sqrt(1 - ab2) * eps) / math.sqrt(a2)))
    return out


@_check(4, "Algorithm 2: sample(eps_fn, schedule, shape, generator) -> x_0",
        "x = randn(shape); for t in reversed(range(T)): eps = eps_fn(x, t as a (B,) long tensor); "
        "mean = (x − β_t/√(1−ᾱ_t)·eps)/√α_t; x = mean + σ_t·z if t > 0 else mean.")
def check_sampler(fn) -> list[str]:
    """Check ``fn(eps_fn, schedule, shape, generator) -> x_0``, Algorithm 2 (Eq. @eq-p-sample).

    ``eps_fn(x_t, t)`` is the exact ideal noise predictor for Gaussian data; the check records every call
    and tests each step: (x_{t−1} − μ_θ)/σ_t must look like N(0, 1) with σ_t² = β̃_t or β_t (both are
    allowed by Ho et al.), and the last step (t = 0) must return μ_θ without noise.
    """
    ddpm = _ddpm()
    schedule = ddpm.NoiseSchedule.linear(T=40, beta_start=2e-3, beta_end=0.25)
    T, shape, mu, s = schedule.T, (256, 16), 0.4, 0.15
    n = shape[0] * shape[1]
    on = f"shape {shape} with a linear schedule (T={T}) and the exact ε for data N({mu}, {s}²)"
    eps_fn = _GaussianEps(schedule, mu, s, shape)
    out = _tensor(_call(fn, eps_fn, schedule, shape, _gen(11), on=on))
    if tuple(out.shape) != shape:
        raise _Fail(f"On {on}: expected samples of shape {shape}, got {tuple(out.shape)}.")
    ts = [tv for _, tv in eps_fn.calls]
    want = list(range(T - 1, -1, -1))
    if ts != want:
        if ts == want[:-1]:
            why = ("your loop stops before t = 0, so the last step (code index 0, paper step 1) is missing. "
                   "Loop over reversed(range(T)).")
        elif ts == list(range(T)):
            why = "the loop runs forwards; Algorithm 2 goes from t = T−1 down to t = 0."
        elif ts[1:] == want:
            why = "eps_fn was called twice at the first step."
        else:
            why = None
        shown = ts if len(ts) <= 8 else ts[:4] + ["…"] + ts[-3:]
        raise _Fail(f"On {on}: expected eps_fn to be called once per step at t = {T - 1}, {T - 2}, …, 0; "
                    f"it was called {len(ts)} times, at t = {shown}.", why)
    xT = eps_fn.calls[0][0]
    if abs(float(xT.mean())) > 5 / math.sqrt(n) or abs(float(xT.var()) - 1) > 5 * math.sqrt(2 / n):
        raise _Fail(f"On {on}: x_T has mean {_fmt(float(xT.mean()))} and variance {_fmt(float(xT.var()))}; "
                    "expected a draw from N(0, I).",
                    "start from x_T = torch.randn(shape, generator=generator), not torch.rand.")
    again = _GaussianEps(schedule, mu, s, shape)
    out2 = _tensor(_call(fn, again, schedule, shape, _gen(11), on=on))
    if not torch.equal(out2, out):
        raise _Fail(f"On {on}: two runs with identically seeded generators gave different samples.",
                    "draw x_T and every z with the generator you are given: "
                    "torch.randn(shape, generator=generator).")

    nexts = [c[0] for c in eps_fn.calls[1:]] + [out.double()]
    sig2 = {"β̃": [float(v) for v in torch.as_tensor(schedule.posterior_variance).double()],
            "β": [float(v) for v in torch.as_tensor(schedule.betas).double()]}
    tol_m, tol_2 = 5 / math.sqrt(n), 5 * math.sqrt(2 / n)

    def fits(resid: torch.Tensor) -> bool:
        return abs(float(resid.mean())) <= tol_m and abs(float((resid ** 2).mean()) - 1) <= tol_2

    steps = []
    for (x, tv), x_next in zip(eps_fn.calls, nexts):
        eps = eps_fn.eps(x, tv)
        mean = ddpm.p_mean_variance(schedule, eps, x, torch.full((shape[0],), tv))[0].double()
        steps.append((tv, x, eps, mean, x_next))
    last_tv, _, _, last_mean, _ = steps[-1]

    good = None
    for key in ("β̃", "β"):
        if all(fits((xn - m) / math.sqrt(sig2[key][tv])) for tv, _, _, m, xn in steps[:-1]):
            good = key
            break
    final_err = float((out.double() - last_mean).abs().max())
    if good is not None and final_err <= 1e-4:
        fm, fs = float(out.mean()), float(out.std())
        return [f"{T} steps on {shape[0]}×{shape[1]} samples; eps_fn called at t = {T - 1}, …, 0 in order",
                f"every step t ≥ 1 is μ_θ + σ_t·z with σ_t² = {good}_t (tested to 5 standard errors); "
                "the last step returns μ_θ without noise; the same seed gives the same samples",
                f"your samples have mean {_fmt(fm)} and std {_fmt(fs)} (data: N({mu}, {s}²))"]
    if good is not None:
        resid = (out.double() - last_mean)
        std = float(resid.std())
        why = (f"noise added at t = 0: the last step (code index 0, paper step 1) must return the mean; "
               f"your output differs from it with std {_fmt(std)}." if std > 1e-6 else None)
        raise _Fail(f"On {on}: the last step (t = 0) is wrong: largest difference from μ_θ is {_fmt(final_err)}.",
                    why)

    # diagnose: find the first step that fails and a known mistake that explains it
    for tv, x, eps, mean, xn in steps[:-1]:
        sd = math.sqrt(sig2["β̃"][tv])
        if fits((xn - mean) / sd) or fits((xn - mean) / math.sqrt(sig2["β"][tv])):
            continue
        resid = xn - mean
        r = resid / sd
        what = (f"On {on}: the step at t = {tv} is not x_(t−1) = μ_θ + σ_t·z.\n"
                f"(x_(t−1) − μ_θ)/σ_t has mean {_fmt(float(r.mean()))} and mean square "
                f"{_fmt(float((r ** 2).mean()))} (expected 0 and 1, σ_t² = β̃_t).")
        why = None
        if float(resid.std()) <= 1e-6 * sd + 1e-9:
            if float((resid - sd).abs().max()) <= 1e-4 + 1e-3 * sd or \
                    float((resid - math.sqrt(sig2["β"][tv])).abs().max()) <= 1e-4 + 1e-3 * sd:
                why = ("the noise z is missing: you add σ_t (a fixed shift) instead of σ_t·z with z ~ N(0, I). "
                       "The reference text's denoiser has exactly this bug.")
            elif float(resid.abs().max()) <= 1e-4:
                why = "no noise: Algorithm 2 adds σ_t·z with z ~ N(0, I) at every step with t > 0."
        if why is None:
            for key in ("β̃", "β"):
                v = sig2[key][tv]
                if fits(resid / v):
                    why = f"a missing √: you multiplied z by the variance {key}_t; σ_t is its square root."
                elif fits(resid):
                    why = "z is not scaled: multiply it by σ_t = √β̃_t (or √β_t)."
                if why:
                    break
        if why is None:
            for text, wm in _sampler_means(schedule, x, eps, tv, T):
                if any(fits((xn - wm) / math.sqrt(sig2[k][tv])) for k in sig2):
                    why = text
                    break
                if float((xn - wm).abs().max()) <= 1e-4:
                    why = text + " (There is also no noise z in this step.)"
                    break
        raise _Fail(what, why)
    raise _Fail(f"On {on}: your steps do not match Algorithm 2 with one consistent σ_t (β̃_t or β_t).",
                "use the same variance choice at every step: schedule.posterior_variance or schedule.betas.")


# --------------------------------------------------------------------------- chapter 5

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


@_check(5, "Monte-Carlo estimate of E[ε | x_t] for 1-D data, against ideal_eps",
        "draw x0 rows from data, weight each by q(x_t | x0) = N(√ᾱ_t·x0, 1 − ᾱ_t), and average "
        "ε = (x_t − √ᾱ_t·x0)/√(1 − ᾱ_t) with those weights.")
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
        if out.numel() == exp.numel():
            out = out.reshape(exp.shape)
        else:
            raise _Fail(f"On {on}: expected an estimate of shape {tuple(exp.shape)}, got {tuple(out.shape)}.")
    if not torch.isfinite(out).all():
        raise _Fail(f"On {on}: your estimate contains NaN or infinite values.",
                    "weights like exp(−(x_t − √ᾱ·x0)²/(2(1 − ᾱ))) underflow to 0 when x_t is far from every "
                    "sample: normalise in log space (torch.softmax over the log-weights).")
    _, sd = _post_eps(ab.reshape(-1), xt, data)
    tol = 6 * sd / math.sqrt(n) + 0.08  # room for estimators that keep only samples near x_t
    err = (out.double().reshape(-1) - exp.reshape(-1)).abs()
    if bool((err <= tol).all()):
        out2 = _tensor(_call(fn, schedule, xt.clone(), t.clone(), data.clone(), n, _gen(22), on=on))
        if float((out.double().reshape(-1) - exp.reshape(-1)).abs().max()) < 1e-6 and \
                float((out2.double().reshape(-1) - exp.reshape(-1)).abs().max()) < 1e-6:
            raise _Fail(f"On {on}: your result equals ideal_eps to float precision and does not depend on the "
                        "generator.", "the exercise asks for a Monte-Carlo estimate from n_samples random draws, "
                        "not the exact sum over the data.")
        return [f"{B} points x_t at t = {_tlist(t)} on a T={T} schedule, 4-point 1-D data, n_samples = {n}",
                f"every estimate is within its tolerance of dnnl.models.ddpm.ideal_eps "
                f"(largest error {_fmt(float(err.max()))}; "
                f"tolerances {_fmt(float(tol.min()))}–{_fmt(float(tol.max()))})"]
    k = int((err / tol).argmax())
    A = lambda name, i: torch.as_tensor(getattr(schedule, name)).double()[i.clamp(0, T - 1)]  # noqa: E731
    variants = [
        (_post_eps(A("alphas", t), xt, data)[0], "ᾱ vs α: q(x_t | x0) uses ᾱ_t (schedule.alpha_bars[t]), "
                                                  "not the single-step α_t."),
        (_post_eps(A("alpha_bars", t), xt, data, sqrt_mean=False, sqrt_std=False)[0],
         "a missing √: q(x_t | x0) has mean √ᾱ_t·x0 and standard deviation √(1 − ᾱ_t)."),
        (_post_eps(A("alpha_bars", t), xt, data, sqrt_std=False)[0],
         "a missing √: ε = (x_t − √ᾱ_t·x0)/√(1 − ᾱ_t), divided by the standard deviation, not the variance."),
        (_post_eps(A("alpha_bars", t - 1), xt, data)[0],
         "an off-by-one in t: you used ᾱ at index t−1; schedule.alpha_bars[t] already belongs to code index t."),
        (_post_eps(A("alpha_bars", t + 1), xt, data)[0],
         "an off-by-one in t: you used ᾱ at index t+1; schedule.alpha_bars[t] already belongs to code index t."),
        (((xt.double().reshape(-1) - ab.reshape(-1).sqrt() * data.double().mean())
          / (1 - ab.reshape(-1)).sqrt()),
         "the samples are not weighted: every x0 counts equally, so you get E[ε] under the prior, not E[ε | x_t]. "
         "Weight each draw by q(x_t | x0) (or keep only samples that land near x_t)."),
        (torch.zeros(B, dtype=torch.float64),
         "your estimate is about 0, the unconditional mean of ε. Condition on x_t: weight each draw by q(x_t | x0)."),
    ]
    why = None
    o = out.double().reshape(-1)
    for value, text in variants:
        if bool(((o - value).abs() <= tol).all()) or float(((o - value).abs() / tol).max()) < 1:
            why = text
            break
    raise _Fail(f"On {on}: your estimate is too far from the exact E[ε | x_t].\n"
                f"At x_t = {_fmt(float(xt[k]))}, t = {int(t[k])}: expected {_fmt(float(exp.reshape(-1)[k]))}, "
                f"got {_fmt(float(o[k]))} (allowed error ±{_fmt(float(tol[k]))} for n_samples = {n}).", why)
