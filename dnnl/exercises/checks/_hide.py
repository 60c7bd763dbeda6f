"""Switching the package's reference implementations off while a student's function runs.

The grader checks exercise X with ``evaluate(..., hide=True)``: each ``"module:attr"`` in the check's
``hides`` then raises while (and only while) the student's function runs, so a submission that forwards
to the package fails, and the check's own reference computations are unaffected.
"""
from __future__ import annotations

import contextlib
import contextvars
import importlib

_HIDE: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("dnnl_hide", default=())
_HIDDEN_TAG = "dnnl-hidden:"


def _resolve(spec: str):
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@contextlib.contextmanager
def _hidden(specs: tuple[str, ...]):
    """While active, every function named in ``specs`` raises (its code object is swapped, so aliases
    taken earlier, ``from dnnl.models.ddpm import q_sample as f``, are switched off as well)."""
    swapped = []
    try:
        for spec in specs:
            obj = _resolve(spec)
            obj = getattr(obj, "__func__", obj)
            code = getattr(obj, "__code__", None)
            if code is None or code.co_freevars or any(o is obj for o, _ in swapped):
                continue
            label = spec.replace(":", ".").split(".")[-1]
            src = f"def _off(*args, **kwargs):\n    raise RuntimeError({_HIDDEN_TAG + spec!r})\n"
            space: dict = {}
            exec(compile(src, f"<hidden {label}>", "exec"), space)  # noqa: S102
            swapped.append((obj, code))
            obj.__code__ = space["_off"].__code__
        yield
    finally:
        for obj, code in reversed(swapped):
            obj.__code__ = code


