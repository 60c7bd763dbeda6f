"""Self-checking exercises: ``check_<name>(your_function)`` prints a verdict and returns True or False.

Each chapter's exercises call one of these checks right after the cell where you write your function.
``list_checks()`` names them in book order; ``python -m dnnl.exercises.grade submissions/`` grades a folder.
"""
from .checks import __all__ as _checks_all
from .checks import *  # noqa: F401,F403
from .ddim_checks import __all__ as _ddim_all
from .ddim_checks import *  # noqa: F401,F403
from .bound_checks import __all__ as _bound_all
from .bound_checks import *  # noqa: F401,F403
from .ema_score_checks import __all__ as _ema_score_all
from .ema_score_checks import *  # noqa: F401,F403
from .guidance_checks import __all__ as _guidance_all
from .guidance_checks import *  # noqa: F401,F403

__all__ = [*_checks_all, *_ddim_all, *_bound_all, *_ema_score_all, *_guidance_all]
