"""Self-checks for the book's code exercises: ``check_<name>(student_fn) -> bool``.

Each check runs the student's function on seeded random and edge-case inputs, compares the result with
the package implementation (exactly where the output is deterministic, statistically where it is random),
and gives a verdict: what passed, or what is wrong, on which input, expected against got, and a likely
cause only where its test isolates one (ᾱ for α, a missing √, a missing noise z, noise at t = 0, an
off-by-one in t, data in [0, 1]).

``evaluate(name, fn, hints="full"|"terse") -> CheckResult`` computes a verdict without printing and never
raises for the student's code (``SystemExit`` included); ``check_<name>(fn)`` prints its message and
returns whether it passed. A stub that raises ``NotImplementedError`` gives TODO, so a notebook runs on.
"""
from ._compare import _at, _Cases, _compare, _ddpm, _fmt, _gen, _tlist, _Variant, _worst
from ._core import (HINT_LEVELS, HINTS_ENV, STATUSES, CheckResult, _call, _check, _dtype, _Fail, _Misuse, _tensor,
                    _Todo, _why, _Why, check_info, evaluate, list_checks)
from .ch1 import check_q_sample, check_to_model_range
from .ch2 import check_oracle_step
from .ch3 import check_normal_kl, check_prior_bpd
from .ch4 import check_l_simple
from .ch4_sampler import check_sampler
from .ch5 import check_mc_eps

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
    "evaluate",
    "CheckResult",
]
