"""Numbers quoted in the book's prose, checked where they are computed.

The prose marks a computed number as a span, ``[0.913]{.claim}``; the cell that computes it calls
``check_claim(value, "0.913")``. The check passes when ``value`` rounds to the digits shown (half a unit
in the last shown place), or lies within ``tol`` when the text implies a looser match.
"""
from __future__ import annotations

import math
import re

_NUMBER = re.compile(r"^[+\-−]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?([eE][+-]?\d+)?$")


def shown_tolerance(text: str) -> float:
    """Half a unit in the last place of ``text`` ("0.913" → 0.0005, "1,600" → 0.5, "2e-3" → 5e-4)."""
    mantissa, _, exponent = text.replace(",", "").lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def parse_shown(text: str) -> float:
    """The value of a number as printed in the prose (thousands commas and a Unicode minus allowed)."""
    if not isinstance(text, str) or not _NUMBER.match(text.strip()):
        raise ValueError(f"text must be a number as printed, like '0.913' or '1,600' (got {text!r})")
    return float(text.strip().replace(",", "").replace("−", "-"))


def check_claim(value, text: str, *, tol: float | None = None) -> float:
    """Assert that the computed ``value`` is what the prose prints as ``text``; return ``value``.

    ``tol`` defaults to the rounding the text implies (``shown_tolerance``).
    """
    shown = parse_shown(text)
    value = float(value)
    limit = shown_tolerance(text.strip()) if tol is None else float(tol)
    if not math.isfinite(value) or abs(value - shown) > limit * (1 + 1e-9):
        raise AssertionError(f"the text says {text} but the cell computes {value:.6g} "
                             f"(allowed difference {limit:g}); update the prose or the computation")
    return value
