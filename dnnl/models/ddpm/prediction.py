"""What the network predicts: ε, x_0 or v, the one-line conversions between them, and the loss weights (chapter 6).

All three are linear in x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (Eq. @eq-q-sample). With a = √ᾱ_t and
s = √(1 − ᾱ_t), a² + s² = 1, and v = a ε − s x_0 (Salimans & Ho, 2022):

    x_0 = (x_t − s ε)/a,   ε = (x_t − a x_0)/s,   ε = s x_t + a v,   x_0 = a x_t − s v.

Each public function checks its arguments once (``t`` is a 0-based index, Python int or (B,) tensor).
"""
from __future__ import annotations

from torch import Tensor

from ._validate import check_t
from .diffusion import _setup
from .schedule import _gather, check_schedule

__all__ = ["PREDICTION_TYPES", "eps_to_x0", "x0_to_eps", "v_from", "v_to_eps", "v_to_x0", "prediction_loss_weight"]

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")  # diffusers' names for ε, x_0 and v


def _a_s(schedule, t, like: Tensor) -> tuple[Tensor, Tensor]:
    return _gather(schedule.sqrt_alpha_bars, t, like), _gather(schedule.sqrt_one_minus_alpha_bars, t, like)


def _to_x0_and_eps(schedule, model_output: Tensor, xt: Tensor, t, prediction_type: str) -> tuple[Tensor, Tensor]:
    """(x̂_0, ε̂) implied by a model output of the given type. No checks."""
    a, s = _a_s(schedule, t, xt)
    if prediction_type == "epsilon":
        return (xt - s * model_output) / a, model_output
    if prediction_type == "sample":
        return model_output, (xt - a * model_output) / s
    return a * xt - s * model_output, s * xt + a * model_output


def _check_prediction_type(prediction_type, name: str = "prediction_type") -> str:
    """One of :data:`PREDICTION_TYPES`."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"{name} must be one of {list(PREDICTION_TYPES)} (got {prediction_type!r})")
    return prediction_type


def eps_to_x0(schedule, xt: Tensor, t, eps: Tensor) -> Tensor:
    """x̂_0 = (x_t − √(1 − ᾱ_t) ε)/√ᾱ_t (Eq. @eq-predict-x0); the same as :func:`predict_x0`."""
    t = _setup(schedule, xt, "xt", t, (eps, "eps"))
    a, s = _a_s(schedule, t, xt)
    return (xt - s * eps) / a


def x0_to_eps(schedule, xt: Tensor, t, x0: Tensor) -> Tensor:
    """ε = (x_t − √ᾱ_t x_0)/√(1 − ᾱ_t), the noise that took x_0 to x_t (Eq. @eq-ddim-eps-from-x0)."""
    t = _setup(schedule, xt, "xt", t, (x0, "x0"))
    a, s = _a_s(schedule, t, xt)
    return (xt - a * x0) / s


def v_from(schedule, x0: Tensor, t, eps: Tensor) -> Tensor:
    """v = √ᾱ_t ε − √(1 − ᾱ_t) x_0, the velocity target (Eq. @eq-ddim-v; diffusers' ``get_velocity``)."""
    t = _setup(schedule, x0, "x0", t, (eps, "eps"))
    a, s = _a_s(schedule, t, x0)
    return a * eps - s * x0


def v_to_eps(schedule, xt: Tensor, t, v: Tensor) -> Tensor:
    """ε = √(1 − ᾱ_t) x_t + √ᾱ_t v (Eq. @eq-ddim-eps-from-v)."""
    t = _setup(schedule, xt, "xt", t, (v, "v"))
    a, s = _a_s(schedule, t, xt)
    return s * xt + a * v


def v_to_x0(schedule, xt: Tensor, t, v: Tensor) -> Tensor:
    """x_0 = √ᾱ_t x_t − √(1 − ᾱ_t) v (Eq. @eq-ddim-x0-from-v)."""
    t = _setup(schedule, xt, "xt", t, (v, "v"))
    a, s = _a_s(schedule, t, xt)
    return a * xt - s * v


def prediction_loss_weight(schedule, t, prediction_type: str) -> Tensor:
    """w_t with ‖target error‖² = w_t ‖ε̂ − ε‖² for the error of each target (Eq. @eq-ddim-loss-weights).

    ``"epsilon"``: 1; ``"sample"``: 1/SNR(t), since x̂_0 − x_0 = −(s/a)(ε̂ − ε); ``"v_prediction"``:
    (1 + SNR(t))/SNR(t) = 1/ᾱ_t, since v̂ − v = (ε̂ − ε)/a. So an unweighted x_0 loss is an ε loss
    weighted by 1/SNR and a v loss lies in between: (1 + SNR) times the x_0 loss. Float64, t's shape.
    """
    check_schedule(schedule)
    _check_prediction_type(prediction_type)
    t = check_t(t, schedule.T)
    snr = schedule.snr()[t]
    if prediction_type == "epsilon":
        return snr.new_ones(snr.shape)
    return 1.0 / snr if prediction_type == "sample" else (1.0 + snr) / snr
