"""Self-checking exercises: ``check_<name>(your_function)`` prints a verdict and returns True or False.

Each chapter's exercises call one of these checks right after the cell where you write your function.
``list_checks()`` names them in book order; ``python -m dnnl.exercises.grade submissions/`` grades a folder.
"""
from .checks import (check_info, check_l_simple, check_mc_eps, check_normal_kl, check_oracle_step,
                     check_prior_bpd, check_q_sample, check_sampler, check_to_model_range, list_checks)

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
