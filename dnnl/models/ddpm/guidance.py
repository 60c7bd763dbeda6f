"""Classifier-free guidance (chapter 7): one network learns ε_θ(x_t, t, y) and ε_θ(x_t, t, ∅).

- :func:`drop_labels` is the label dropout of training (Eq. @eq-ch7-label-dropout): with probability
  p_uncond a label becomes the "no label" token ∅, index ``num_classes`` of the U-Net's label embedding;
- :func:`cfg_eps` is the guided noise prediction (Eq. @eq-ch7-cfg),
  ε̃ = (1 + w) ε_θ(x_t, t, y) − w ε_θ(x_t, t, ∅);
- :func:`guided` wraps a conditional U-Net into an ε-predictor ``eps_fn(x, t)`` that :func:`sample` takes,
  running both branches in one batched forward.

Convention: the guidance weight is **w** (Ho & Salimans, 2022): w = 0 is the plain conditional model and
w = −1 the unconditional one. Many codes (diffusers' ``guidance_scale``) use γ = 1 + w instead, with
ε̃ = γ ε_cond + (1 − γ) ε_uncond, so their γ = 1 is our w = 0; the same number means different things.
"""
from __future__ import annotations

import numbers

import torch
from torch import Tensor, nn

from ._rng import _check_generator
from ._validate import check_float, check_int, check_same_shape, check_tensor

__all__ = ["drop_labels", "cfg_eps", "guided", "GuidedEps"]


def _check_w(w) -> float:
    return check_float(w, "w (the guidance weight; 0 = conditional, -1 = unconditional)", low=-1.0)


def drop_labels(y: Tensor, p_uncond: float, num_classes: int, generator: torch.Generator | None = None) -> Tensor:
    """Label dropout (Eq. @eq-ch7-label-dropout): each label becomes ∅ = ``num_classes`` with probability p_uncond.

    ``y``: integer labels (B,) in 0..num_classes; ``p_uncond`` in [0, 1). The B uniform draws come from
    ``generator`` (on its own device), so a seeded training step drops the same labels every time.
    """
    num_classes = check_int(num_classes, "num_classes")
    p_uncond = check_float(p_uncond, "p_uncond", low=0.0, high=1.0, open_high=True)
    _check_generator(generator)
    y = _check_labels(y, num_classes, "y")
    return _drop_labels(y, p_uncond, num_classes, generator)


def _drop_labels(y: Tensor, p_uncond: float, num_classes: int, generator) -> Tensor:
    """:func:`drop_labels` for checked arguments (no host–device sync)."""
    if generator is None:
        u = torch.rand(y.shape, device=y.device)
    else:
        u = torch.rand(y.shape, generator=generator, device=generator.device).to(y.device)
    return torch.where(u < p_uncond, torch.full_like(y, num_classes), y)


def _label_dropout_model(model, y: Tensor, p_uncond: float, generator):
    """``model`` as (x_t, t) -> ε_θ(x_t, t, y') with y' = :func:`drop_labels` of y: what a training step calls.

    Checks the types only (no sync); a model wrapped by DistributedDataParallel is looked into.
    """
    num_classes = getattr(getattr(model, "module", model), "num_classes", None)
    if num_classes is None:
        raise ValueError("y must be None for an unconditional model; build the U-Net with num_classes to "
                         "train on labels")
    if not isinstance(y, Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"y must be an int64 tensor of class labels (got {getattr(y, 'dtype', type(y).__name__)})")
    p_uncond = check_float(p_uncond, "p_uncond", low=0.0, high=1.0, open_high=True)
    if p_uncond:
        y = _drop_labels(y, p_uncond, num_classes, generator)
    return lambda xt, t: model(xt, t, y)


def cfg_eps(eps_cond: Tensor, eps_uncond: Tensor, w: float) -> Tensor:
    """The guided noise prediction (1 + w) ε_cond − w ε_uncond (Eq. @eq-ch7-cfg).

    w = 0 returns ε_cond (no guidance), w = −1 returns ε_uncond, w > 0 pushes away from the unconditional
    prediction. In the γ = 1 + w convention (diffusers' ``guidance_scale``) this is γ ε_cond + (1 − γ) ε_uncond.
    ``w`` is a finite real >= −1; the two predictions are float tensors of one shape.
    """
    check_tensor(eps_cond, "eps_cond")
    check_tensor(eps_uncond, "eps_uncond")
    check_same_shape(eps_cond, "eps_cond", eps_uncond, "eps_uncond")
    return _cfg_eps(eps_cond, eps_uncond, _check_w(w))


def _cfg_eps(eps_cond: Tensor, eps_uncond: Tensor, w: float) -> Tensor:
    return eps_cond + w * (eps_cond - eps_uncond)  # = (1 + w) ε_cond − w ε_uncond


def _check_labels(y, num_classes: int, name: str, *, allow_null: bool = True) -> Tensor:
    """Integer labels (B,) in 0..num_classes (0..num_classes−1 without ``allow_null``); range read on the CPU only."""
    if not isinstance(y, Tensor):
        raise TypeError(f"{name} must be an int64 tensor of class labels (got {type(y).__name__})")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class labels (int64), not {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{name} must have shape (B,) (got shape {tuple(y.shape)})")
    top = num_classes if allow_null else num_classes - 1
    if y.device.type == "cpu" and y.numel():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi > top:
            raise ValueError(f"{name} must be in [0, {top}] (got {lo if lo < 0 else hi})"
                             + (f"; {num_classes} is the 'no label' token" if allow_null else ""))
    return y.long()


class GuidedEps(nn.Module):
    """ε̃(x, t) of Eq. @eq-ch7-cfg for fixed labels ``y`` and weight ``w``: what :func:`guided` returns.

    A module (holding the U-Net), so :func:`sample` finds its device and dtype and puts it in eval mode.
    """

    def __init__(self, model: nn.Module, y, w: float):
        super().__init__()
        self.model, self.w = model, w
        self.register_buffer("y", y, persistent=False)  # None for one label given as an int
        self.label = None
        self.training = model.training  # the wrapper's own flag follows the U-Net's (sample() restores it)

    def _labels(self, batch: int, device) -> Tensor:
        if self.y is None:
            return torch.full((batch,), self.label, dtype=torch.long, device=device)
        if self.y.shape[0] != batch:
            raise ValueError(f"the guided model has {self.y.shape[0]} labels y but x holds {batch} examples; "
                             "sample with shape[0] = len(y) and without batch_size, or pass one int label")
        return self.y.to(device)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        y = self._labels(x.shape[0], x.device)
        if self.w == 0.0:  # ε̃ = ε_cond: one branch is enough
            return self.model(x, t, y)
        null = torch.full_like(y, self.model.num_classes)
        if self.w == -1.0:
            return self.model(x, t, null)
        t = torch.as_tensor(t, device=x.device)
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t  # one timestep for the batch, or (B,)
        eps = self.model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]))  # one batched forward
        eps_cond, eps_uncond = eps.chunk(2)
        return _cfg_eps(eps_cond, eps_uncond, self.w)


def guided(model: nn.Module, y: Tensor | int, w: float) -> GuidedEps:
    """An ε-predictor ``eps_fn(x, t)`` = ε̃ of Eq. @eq-ch7-cfg, for ``sample(eps_fn, schedule, shape)``.

    ``model`` is a conditional U-Net (built with ``num_classes``); ``y`` one label (an int, for every sample)
    or int64 labels (B,) in 0..num_classes−1, one per sample; ``w`` >= −1 the guidance weight (0: conditional,
    −1: unconditional). Each call runs the conditional and unconditional branches as one batch of 2B.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a conditional UNet, an nn.Module (got {type(model).__name__})")
    num_classes = getattr(model, "num_classes", None)
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool):
        raise ValueError("model must be a conditional U-Net, built with UNet(..., num_classes=...) "
                         f"(its num_classes is {num_classes!r})")
    w = _check_w(w)
    if isinstance(y, numbers.Integral) and not isinstance(y, bool):
        label = check_int(y, "y", low=0, high=num_classes - 1)
        out = GuidedEps(model, None, w)
        out.label = label
        return out
    return GuidedEps(model, _check_labels(y, num_classes, "y", allow_null=False), w)
