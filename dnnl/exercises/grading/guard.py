"""Notice a submission that changes the grader or the libraries it trusts.

Before the student's definitions run, :func:`snapshot` records the identity of every attribute of the
checks, of ``dnnl.*``, ``torch``, ``torch.Tensor``, ``torch.nn.functional``, ``math``, ``builtins``, ``sys``
and ``functools`` (and, for functions, their code, defaults and closures). :func:`changes` lists what
differs afterwards. Any difference means the verdict cannot be trusted, and the grader gives FAIL.
"""
from __future__ import annotations

import sys
import threading
import types

_FIXED = ("torch", "torch.nn.functional", "torch.linalg", "torch.testing", "math", "builtins", "sys",
          "functools", "contextlib", "contextvars", "io", "inspect", "random", "numpy")
_MISSING = object()


def _modules() -> dict[str, types.ModuleType]:
    names = [n for n in list(sys.modules) if n == "dnnl" or n.startswith("dnnl.")] + list(_FIXED)
    return {n: sys.modules[n] for n in names if isinstance(sys.modules.get(n), types.ModuleType)}


def _function_state(value):
    func = getattr(value, "__func__", value)
    if isinstance(func, types.FunctionType):
        cells = [_cell(c) for c in (func.__closure__ or ())]
        return (func.__code__, func.__defaults__, func.__kwdefaults__, func.__globals__, *cells)
    return None


def _cell(c):
    try:
        return c.cell_contents
    except ValueError:  # an empty cell
        return _MISSING


def _classes(mods: dict) -> list[type]:
    import torch

    found = [torch.Tensor, torch.nn.Module, torch.Generator]
    base = getattr(torch._C, "TensorBase", None) or getattr(torch._C, "_TensorBase", None)
    found += [base] if base is not None else []
    for name, mod in mods.items():
        if name.startswith("dnnl"):
            found += [v for v in vars(mod).values() if isinstance(v, type) and
                      getattr(v, "__module__", "").startswith("dnnl")]
    return list({id(c): c for c in found}.values())


class Snapshot:
    """What :func:`snapshot` saw; compare with :func:`changes`."""

    def __init__(self):
        self.mods = _modules()
        self.attrs = {name: dict(vars(mod)) for name, mod in self.mods.items()}
        self.funcs = {(name, k): _function_state(v) for name, attrs in self.attrs.items()
                      for k, v in attrs.items() if _function_state(v) is not None}
        self.classes = {c: dict(vars(c)) for c in _classes(self.mods)}
        self.threads = threading.active_count()
        self.hooks = (sys.gettrace(), sys.getprofile(), sys.meta_path[:], sys.path_hooks[:], sys.excepthook)


def snapshot() -> Snapshot:
    return Snapshot()


def _attr_changes(snap: Snapshot) -> list[str]:
    out = []
    for name, before in snap.attrs.items():
        now = vars(snap.mods[name])
        for key in before.keys() | now.keys():
            old, new = before.get(key, _MISSING), now.get(key, _MISSING)
            if old is new:
                continue
            if old is _MISSING and isinstance(new, types.ModuleType) and new.__name__ == f"{name}.{key}":
                continue  # an import of a submodule adds it to its package
            if name == "sys" and key in ("last_type", "last_value", "last_traceback", "last_exc"):
                continue
            out.append(f"{name}.{key}")
    for (name, key), state in snap.funcs.items():
        value = vars(snap.mods[name]).get(key)
        now = _function_state(value) if value is not None else None
        if now is not None and (len(now) != len(state) or any(a is not b for a, b in zip(now, state))):
            out.append(f"{name}.{key} (its code, defaults or closure)")
    return out


def changes(snap: Snapshot) -> list[str]:
    """What changed since ``snap``: module attributes, function code, class attributes, hooks, threads."""
    out = _attr_changes(snap)
    for cls, before in snap.classes.items():
        now = vars(cls)
        out += [f"{cls.__module__}.{cls.__qualname__}.{k}" for k in before.keys() | now.keys()
                if before.get(k, _MISSING) is not now.get(k, _MISSING)]
    hooks = (sys.gettrace(), sys.getprofile(), sys.meta_path[:], sys.path_hooks[:], sys.excepthook)
    names = ("sys.settrace", "sys.setprofile", "sys.meta_path", "sys.path_hooks", "sys.excepthook")
    for name, old, new in zip(names, snap.hooks, hooks):
        same = old == new if isinstance(old, list) else old is new
        if not same:
            out.append(name)
    if threading.active_count() > snap.threads:
        out.append("a new thread")
    return sorted(set(out))
