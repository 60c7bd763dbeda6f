"""Comparing a student's result with the right one, and the small helpers the chapters' checks share.

:func:`_compare` fails with the largest error and every known-wrong variant the result matches;
:class:`_Cases` collects the failures of several test inputs and explains them by a cause common to all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ._core import _call, _Fail, _tensor, _why


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
    return [why for s, _, why in sorted(scored, key=lambda x: (x[0], x[1])) if s <= 1.0]


def _worst(got: torch.Tensor, exp: torch.Tensor) -> str:
    g, e = got.double(), exp.double()
    diff = torch.nan_to_num((g - e).abs(), nan=math.inf)
    flat = int(diff.reshape(-1).argmax())
    idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape)) if diff.dim() else ()
    pair = f"expected {_fmt(float(e.reshape(-1)[flat]))}, got {_fmt(float(g.reshape(-1)[flat]))}"
    return f"Largest error at index {list(idx)}: {pair}" if idx else pair[0].upper() + pair[1:]


_NAN_WHY = _why("a NaN or inf from an invalid operation",
                "a log or square root of a negative number, or a division by zero?")


def _compare(got, exp: torch.Tensor, *, on: str, variants=(), atol=1e-5, rtol=1e-4, what="result",
             nan_why: str | None = None) -> None:
    got = _tensor(got)
    if got.shape != exp.shape:
        raise _Fail(f"On {on}: expected a {what} of shape {tuple(exp.shape)}, got shape {tuple(got.shape)}.",
                    _matching(got, variants, atol, rtol))
    if got.is_floating_point() and not torch.isfinite(got).all():
        bad = int((~torch.isfinite(got)).sum())
        raise _Fail(f"On {on}: your {what} has {bad} NaN or infinite value(s); expected finite numbers.",
                    _matching(got, variants, atol, rtol) or [nan_why or _NAN_WHY])
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


Body = Callable[[Callable], list]


def _normal_ks(r: torch.Tensor) -> float:
    """√n times the Kolmogorov–Smirnov distance of the sample ``r`` from N(0, 1); above 2.7 has p < 1e-6."""
    x, _ = r.double().reshape(-1).sort()
    n = x.numel()
    if n == 0:
        return 0.0
    cdf = torch.special.ndtr(x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    d = torch.maximum(i / n - cdf, cdf - (i - 1) / n).max()
    return float(d) * math.sqrt(n)


_KS_LIMIT = 2.7
_NOT_GAUSSIAN = _why("noise that is not Gaussian", "its mean and variance may be right, but its distribution is "
                     "not N(0, 1): draw it with torch.randn (not torch.rand, or a rescaled uniform).")
