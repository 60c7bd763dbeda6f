"""What every check shares: the registry, the verdict, calling the student's function (comparing: _compare.py).

A check body ``body(fn) -> list[str]`` runs the student's function through :func:`_call` and raises
:class:`_Fail` (what is wrong, and a cause only where its test isolates one), :class:`_Todo` (a stub) or
returns what it tested. :func:`evaluate` turns that into a :class:`CheckResult`; it never raises (every
``BaseException`` but ``KeyboardInterrupt`` becomes a verdict) and prints nothing.

Two hint levels: ``"full"`` (self-study: the hint and the likely cause with its detail) and ``"terse"``
(graded: the concept's name only, no code and no formula). The default comes from ``DNNL_HINTS``.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import io
import os
import re
from dataclasses import dataclass, field

import torch

from .._notebook import STUB_MESSAGE
from ._hide import _HIDDEN_TAG, _HIDE, _hidden

STATUSES = ("PASS", "FAIL", "TODO", "ERROR")
HINT_LEVELS = ("full", "terse")
HINTS_ENV = "DNNL_HINTS"

_REGISTRY: dict[str, dict] = {}


# --------------------------------------------------------------------------- causes and verdicts

class _Why(str):
    """A likely cause: the full text (``str(self)``) and its terse form, the concept's name alone."""

    terse: str

    def __new__(cls, terse: str, detail: str | None = None):
        self = super().__new__(cls, f"{terse}: {detail}" if detail else terse)
        self.terse = terse
        return self


def _why(terse: str, detail: str | None = None) -> _Why:
    """A cause named ``terse`` (no code, no formula); ``detail`` is added at the full hint level only."""
    return _Why(terse, detail)


class _Fail(Exception):
    """The student's function gave a wrong result; `what` says what is observed, `whys` the likely causes."""

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
    """A helper handed to the student (a model, an eps_fn) was called the wrong way: what, and a cause."""

    def __init__(self, what: str, why: str | None = None):
        super().__init__(what)
        self.what, self.why = what, why


@dataclass
class CheckResult:
    """One verdict. ``message`` is exactly what the student sees; ``cause`` the named cause (terse form)."""

    name: str
    status: str
    message: str
    tested: list[str] = field(default_factory=list)
    cause: str | None = None
    output: str = ""  # what the student's function printed while it was checked


def _indent(text: str, pad: str = "   ") -> str:
    return "\n".join(pad + line for line in text.splitlines())


def _level(hints: str | None) -> str:
    level = (os.environ.get(HINTS_ENV, "") or "full").strip().lower() if hints is None else hints
    if level not in HINT_LEVELS:
        if hints is None:
            return "full"
        raise ValueError(f"hints must be one of {HINT_LEVELS} (got {hints!r})")
    return level


def _cause_text(why: str, level: str) -> str | None:
    if level == "full":
        return str(why)
    return why.terse if isinstance(why, _Why) else None


def _fail_message(name: str, fail: _Fail, level: str) -> tuple[str, str | None]:
    lines = fail.what.splitlines() or [""]
    out = [f"❌ {name}: {lines[0]}"]
    if lines[1:]:
        out.append(_indent("\n".join(lines[1:])))
    causes = [c for c in (_cause_text(w, level) for w in dict.fromkeys(fail.whys)) if c]
    causes = list(dict.fromkeys(causes))
    for k, text in enumerate(causes):
        out.append(_indent(f"💡 {'Likely cause' if k == 0 else 'Also'}: {text}"))
    first = fail.whys[0] if fail.whys else None
    named = (first.terse if isinstance(first, _Why) else str(first)) if first else None
    return "\n".join(out), named


def _todo_message(name: str, todo: _Todo, entry: dict, level: str) -> str:
    msg = str(todo).strip()
    if level == "terse" or not msg or msg == STUB_MESSAGE:
        msg = entry["hint"] if level == "full" else entry["terse"]
    return f"⏳ {name}: not implemented yet. Hint: {msg}"


def evaluate(name: str, fn, *, hints: str | None = None, hide: bool = False) -> CheckResult:
    """Run check ``name`` on the student's ``fn``; return its verdict. Never raises for the student's code.

    ``hints`` is ``"full"`` or ``"terse"`` (default: ``$DNNL_HINTS``, else full). ``hide=True`` switches the
    package's reference implementations of the exercise off while the student's function runs.
    """
    if name not in _REGISTRY:
        raise ValueError(f"name must be one of the registered checks {list_checks()} (got {name!r})")
    entry, level = _REGISTRY[name], _level(hints)
    if not callable(fn):
        return CheckResult(name, "FAIL", f"❌ {name}: expected your function, got a {type(fn).__name__}. "
                                         f"Pass the function itself, without calling it.")
    printed = io.StringIO()
    token = _HIDE.set(entry["hides"] if hide else ())
    try:
        with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(printed), \
                contextlib.redirect_stderr(printed):  # the notebook's global random stream stays untouched
            tested = entry["body"](fn)
    except KeyboardInterrupt:
        raise
    except _Todo as todo:
        return CheckResult(name, "TODO", _todo_message(name, todo, entry, level), output=printed.getvalue())
    except _Fail as fail:
        message, cause = _fail_message(name, fail, level)
        return CheckResult(name, "FAIL", message, cause=cause, output=printed.getvalue())
    except BaseException as err:  # a problem in the check itself: say so, never raise into the notebook
        return CheckResult(name, "ERROR", f"❌ {name}: the check itself could not run ({type(err).__name__}: "
                                          f"{err}). This is not a verdict on your code; please report it "
                                          "together with this message.", output=printed.getvalue())
    finally:
        _HIDE.reset(token)
    tested = [str(line) for line in (tested or [])]
    message = "\n".join([f"✅ {name}: passed."] + [f"   • {line}" for line in tested])
    return CheckResult(name, "PASS", message, tested=tested, output=printed.getvalue())


def _check(chapter: int, summary: str, hint: str, *, terse: str, hides: tuple[str, ...] = ()):
    """Register a check body `body(fn) -> list[str]` (what was tested) under its function name.

    ``hint`` is the self-study hint, ``terse`` the graded one (names the concept, no code or formula);
    ``hides`` lists ``"module:attr"`` of the package's implementations a submission could forward to.
    """

    def deco(body):
        name = body.__name__

        @functools.wraps(body)
        def wrapper(fn, *, hints: str | None = None) -> bool:
            result = evaluate(name, fn, hints=hints)
            if result.output:
                print(result.output, end="" if result.output.endswith("\n") else "\n")
            print(result.message)
            return result.status == "PASS"

        wrapper.__doc__ = body.__doc__
        _REGISTRY[name] = {"chapter": chapter, "summary": summary, "hint": hint, "terse": terse,
                           "hides": tuple(hides), "fn": wrapper, "body": body, "order": len(_REGISTRY)}
        return wrapper

    return deco


def list_checks() -> list[str]:
    """Names of all checks in book order (by chapter, then registration)."""
    return sorted(_REGISTRY, key=lambda n: (_REGISTRY[n]["chapter"], _REGISTRY[n]["order"]))


def check_info() -> list[dict]:
    """One dict per check (name, chapter, summary, hint, terse, hides), in book order."""
    return [{"name": n, **{k: _REGISTRY[n][k] for k in ("chapter", "summary", "hint", "terse", "hides")}}
            for n in list_checks()]


# --------------------------------------------------------------------------- calling the student

_T0_HINT = _why("an off-by-one in t", "code timesteps are 0-based: index t runs over 0..T−1 and is paper step "
                "t+1, so the last valid index is T−1. Did you use t+1, or loop from T instead of T−1?")


def _explain(err: BaseException) -> str | None:
    text = str(err)
    if isinstance(err, IndexError) or "out of bounds" in text or "out of range" in text or \
            re.search(r"must be in \[0, \d+\]", text):
        return _T0_HINT
    if "ambiguous" in text and "Boolean value of Tensor" in text:
        return _why("a Python if on a batched t",
                    "t is a tensor holding one timestep per image, so `if t == 0:` is ambiguous. Use a mask "
                    "instead, for example `nonzero = (t > 0).float().view(-1, *[1] * (x.dim() - 1))`.")
    if "must match the size" in text or "broadcast" in text or "size of tensor" in text:
        return _why("a shape mismatch in broadcasting",
                    "a coefficient gathered at t has shape (B,) and must be reshaped to (B, 1, 1, ...) before "
                    "it multiplies an image batch, for example with `schedule.gather('alpha_bars', t, x)`.")
    if "generator" in text and ("unexpected keyword" in text or "got an unexpected" in text):
        return _why("a random function that takes no generator",
                    "torch.randn_like does not take a generator; use "
                    "`torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)`.")
    if isinstance(err, (TypeError, AttributeError)) and "NoneType" in text:
        return _why("a missing return", "your function (or a helper) returned None: is a `return` missing?")
    return None


def _snapshot(args) -> list:
    """Copies of the tensors among ``args`` and among their attributes (a schedule's buffers)."""
    snap = []
    for k, a in enumerate(args):
        if isinstance(a, torch.Tensor):
            snap.append((k, None, a, a.detach().clone()))
        elif hasattr(a, "__dict__") and not isinstance(a, (torch.nn.Module, torch.Generator, type)) \
                and not callable(a):
            for attr, v in vars(a).items():
                if isinstance(v, torch.Tensor):
                    snap.append((k, attr, v, v.detach().clone()))
    return snap


def _changed(snap) -> tuple[int, str | None] | None:
    for k, attr, live, copy in snap:
        if live.shape != copy.shape or live.dtype != copy.dtype or \
                not torch.equal(torch.nan_to_num(live.detach()), torch.nan_to_num(copy)):
            return k, attr
    return None


def _arg_name(fn, k: int) -> str:
    try:
        params = list(inspect.signature(fn).parameters)
        return params[k] if k < len(params) else f"argument {k + 1}"
    except (TypeError, ValueError):
        return f"argument {k + 1}"


def _call(fn, *args, on: str):
    """Call the student's function; turn its exceptions (SystemExit too) and in-place edits into verdicts."""
    snap = _snapshot(args)
    try:
        with _hidden(_HIDE.get()):
            out = fn(*args)
    except NotImplementedError as err:
        raise _Todo(str(err)) from None
    except _Misuse as err:
        raise _Fail(f"On {on}: {err.what}", err.why) from None
    except (_Fail, _Todo, KeyboardInterrupt):
        raise
    except RuntimeError as err:
        if str(err).startswith(_HIDDEN_TAG):
            spec = str(err)[len(_HIDDEN_TAG):]
            raise _Fail(f"On {on}: your function calls the package's own {spec.replace(':', '.')}, which is "
                        "switched off while this exercise is graded.",
                        _why("handing in the package's implementation",
                             "write the computation yourself; the exercise is to implement it.")) from None
        raise _Fail(f"On {on}: your function raised RuntimeError: {err}", _explain(err)) from None
    except Exception as err:
        raise _Fail(f"On {on}: your function raised {type(err).__name__}: {err}", _explain(err)) from None
    except BaseException as err:  # SystemExit, GeneratorExit, ...: a verdict, not a crash
        raise _Fail(f"On {on}: your function raised {type(err).__name__}: {err}",
                    _why("an exit inside the function",
                         "do not call exit() or sys.exit() inside the function; return the result.")) from None
    bad = _changed(snap)
    if bad is not None:
        k, attr = bad
        what = f"`{_arg_name(fn, k)}`" + (f" (its {attr})" if attr else "")
        raise _Fail(f"On {on}: your function changed its input {what} in place.",
                    _why("an in-place edit of an input",
                         "operations such as x.mul_(2), x -= 1 or x[...] = v modify the caller's tensor; "
                         "build a new tensor instead (x * 2 - 1)."))
    return out


def _tensor(out, what: str = "your function") -> torch.Tensor:
    if out is None:
        raise _Fail(f"{what} returned None.", _why("a missing return", "is a `return` statement missing?"))
    if isinstance(out, torch.Tensor):
        return out.detach().cpu()
    if isinstance(out, (tuple, list)):
        raise _Fail(f"{what} returned a {type(out).__name__} of {len(out)} items; expected one tensor.")
    try:
        return torch.as_tensor(out).detach().cpu()
    except Exception:
        raise _Fail(f"{what} returned a {type(out).__name__}; expected a torch tensor.") from None


def _dtype(out: torch.Tensor, want: torch.dtype, *, on: str, what: str = "result") -> None:
    """The exercise specifies the result's dtype: a float64 result where float32 is asked for fails."""
    if out.dtype != want:
        raise _Fail(f"On {on}: your {what} has dtype {out.dtype}; the exercise asks for {want}.",
                    _why("the wrong dtype", f"cast the result once at the end, to {want}."))
