"""How the README's benchmark section writes its numbers: marks, percentages, provenance, a missing result."""
from __future__ import annotations


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _pct(x: float) -> str:
    """A share as a percentage with one decimal; two where one would round a shortfall up to 100 %."""
    shown = f"{100 * x:.1f}"
    return f"{100 * x:.2f} %" if shown == "100.0" and x < 1 else f"{shown} %"


def _provenance(r: dict) -> str:
    """Where a result came from: machine, date and the command that reruns it."""
    return f"{r['machine']}; {r['date']}. Rerun: `{r['command']}`."


def _missing(script: str) -> list[str]:
    return [f"Not measured yet: run `python benchmarks/{script}`.", ""]
