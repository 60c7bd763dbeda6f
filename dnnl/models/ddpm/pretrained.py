"""Shipped checkpoints: U-Nets trained on MNIST by this package's own loop, ready to sample.

- ``ddpm_mnist_quick``: the unconditional ε_θ(x_t, t) of chapter 4;
- ``ddpm_mnist_cond``: the conditional ε_θ(x_t, t, y) of chapter 7 (``num_classes=10``, label dropout), fine-tuned
  from ``ddpm_mnist_quick``; sample it with ``sample(guided(model, y, w), ...)``.

Each checkpoint ``weights/<name>.pt`` (a ``weights_only`` state dict of the EMA weights) comes with
``weights/<name>.json``: the U-Net arguments (``model``), the training config, steps, seed, wall time,
machine and sample-quality numbers.
"""
from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import torch

from ... import resolve_device
from .checkpoint import load_checkpoint
from .schedule import NoiseSchedule
from .unet import UNet

__all__ = ["load_pretrained", "pretrained_info", "pretrained_schedule", "available_pretrained", "init_weights",
           "WEIGHTS_DIR"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_SCHEDULES = ("linear", "cosine")


def available_pretrained() -> list[str]:
    """Names of the checkpoints shipped in ``dnnl/models/ddpm/weights``."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt") if p.with_suffix(".json").is_file())


def _paths(name: str, path: str | os.PathLike | None) -> tuple[Path, Path]:
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike (got {type(path).__name__})")
        weights = Path(path)
    else:
        if not isinstance(name, str) or not name or Path(name).name != name:
            raise ValueError(f"name must be a checkpoint name such as 'ddpm_mnist_quick' (got {name!r}); "
                             "pass path= for a file elsewhere")
        weights = WEIGHTS_DIR / f"{name}.pt"
    record = weights.with_suffix(".json")
    if not weights.is_file() or not record.is_file():
        missing = [str(p) for p in (weights, record) if not p.is_file()]
        shipped = ", ".join(available_pretrained()) or "none"
        raise FileNotFoundError(f"pretrained checkpoint {name!r} is incomplete: missing {', '.join(missing)}. "
                                f"Shipped checkpoints: {shipped}. Train one with "
                                "`python -m dnnl.models.ddpm --preset quick --out DIR` and pass path=.")
    return weights, record


def pretrained_info(name: str = "ddpm_mnist_quick", *, path: str | os.PathLike | None = None) -> dict:
    """The JSON record of a checkpoint: U-Net arguments, config, steps, seed, wall time, machine, quality."""
    record = _paths(name, path)[1]
    try:
        info = json.loads(record.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"the checkpoint record {record} is not valid JSON: {err}") from err
    if not isinstance(info, dict):
        raise ValueError(f"the checkpoint record {record} must hold a JSON object (got {type(info).__name__})")
    return info


def pretrained_schedule(name: str = "ddpm_mnist_quick", *, path: str | os.PathLike | None = None) -> NoiseSchedule:
    """The noise schedule the checkpoint was trained with: ``schedule`` ('linear') and ``T`` (1000) of its config."""
    config = pretrained_info(name, path=path).get("config") or {}
    kind, T = config.get("schedule", "linear"), config.get("T", 1000)
    if kind not in _SCHEDULES:
        raise ValueError(f"the record's config.schedule must be 'linear' or 'cosine' (got {kind!r})")
    return getattr(NoiseSchedule, kind)(T)


def _unet_kwargs(info: dict) -> dict:
    """UNet constructor arguments from the record's ``model`` entry."""
    kwargs = info.get("model")
    allowed = set(inspect.signature(UNet).parameters)
    if not isinstance(kwargs, dict) or "channels" not in kwargs:
        raise ValueError("the checkpoint record has no U-Net config: expected a 'model' entry with UNet "
                         f"arguments such as 'channels' (found keys {sorted(info)})")
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(f"the record's 'model' entry has keys UNet does not take: {unknown} "
                         f"(UNet takes {sorted(allowed)})")
    return dict(kwargs, channels=tuple(kwargs["channels"]))


def init_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load the weights of ``path`` (a state dict, or a training checkpoint's EMA) into ``model``, in place.

    Every weight must fit; only a conditional U-Net's label embedding may be missing, and it keeps its zeros,
    so a conditional model starts as the unconditional one it was loaded from (``TrainConfig.init_from``).
    Into a learned-variance U-Net (twice the output channels), an ε-only model's output layer fills the ε
    half, and the v half keeps the model's own weights (zeros for a fresh U-Net: v = 0).
    """
    state = load_checkpoint(path, map_location="cpu")
    if isinstance(state.get("ema"), dict):
        state = state["ema"]
    state = _widen_output(state, model)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ValueError(f"init_from={str(path)!r}: its weights do not fit the model: {err}") from err
    missing = [k for k in missing if k != "label_emb.weight"]
    if missing or unexpected:
        raise ValueError(f"init_from={str(path)!r}: its weights do not fit the model (missing {missing}, "
                         f"unexpected {unexpected})")


def _widen_output(state: dict, model: torch.nn.Module) -> dict:
    """``state`` with an ε-only output layer padded to ``model``'s ε-and-v one (from the model's own v rows)."""
    own = model.state_dict()
    w, b = state.get("conv_out.weight"), state.get("conv_out.bias")
    if not isinstance(w, torch.Tensor) or "conv_out.weight" not in own or 2 * w.shape[0] != own["conv_out.weight"].shape[0]:
        return state
    n = w.shape[0]
    return dict(state, **{"conv_out.weight": torch.cat([w, own["conv_out.weight"][n:].cpu()]),
                          "conv_out.bias": torch.cat([b, own["conv_out.bias"][n:].cpu()])})


def load_pretrained(name: str = "ddpm_mnist_quick", device: torch.device | str | None = None, *,
                    path: str | os.PathLike | None = None) -> UNet:
    """The EMA U-Net of a shipped checkpoint, in eval mode on ``device`` (default: the CPU); ``.info`` is its record.

    ``path`` loads ``<path>`` and its ``.json`` record instead of a shipped name: a bare state dict, or a
    training checkpoint, whose ``ema`` weights load. Sample from it with
    ``sample(model, pretrained_schedule(), (16, 1, 28, 28), steps=100).images``.
    """
    device = torch.device("cpu") if device is None else resolve_device(device)
    weights, _ = _paths(name, path)
    info = pretrained_info(name, path=path)
    model = UNet(**_unet_kwargs(info))
    state = load_checkpoint(weights, map_location="cpu")  # weights_only; a clear error for a damaged file
    if isinstance(state.get("ema"), dict):
        state = state["ema"]  # a training checkpoint: its EMA weights
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(f"the weights in {weights} do not fit the U-Net described in {weights.with_suffix('.json')}: "
                         f"{err}") from err
    model.info = info  # the JSON record travels with the model
    return model.to(device).eval()
