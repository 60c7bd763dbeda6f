"""Shipped checkpoints: a U-Net trained on MNIST by this package's own loop, ready to sample (chapter 4).

Each checkpoint ``weights/<name>.pt`` (a ``weights_only`` state dict of the EMA weights) comes with
``weights/<name>.json``: the training config, steps, seed, wall time, machine and sample-quality numbers.
"""
from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import torch

from .schedule import NoiseSchedule
from .train import TrainConfig
from .unet import UNet

__all__ = ["load_pretrained", "pretrained_info", "pretrained_schedule", "available_pretrained", "WEIGHTS_DIR"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_STATE_KEYS = ("ema", "ema_model", "model")  # in a full training checkpoint, the EMA weights come first


def available_pretrained() -> list[str]:
    """Names of the checkpoints shipped in ``dnnl/models/ddpm/weights``."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt") if p.with_suffix(".json").is_file())


def _paths(name: str, path: str | os.PathLike | None) -> tuple[Path, Path]:
    if path is not None:
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
                                "`python -m dnnl.models.ddpm.train --preset quick --out DIR` and pass path=.")
    return weights, record


def pretrained_info(name: str = "ddpm_mnist_quick", *, path: str | os.PathLike | None = None) -> dict:
    """The JSON record of a checkpoint: config, steps, seed, wall time, machine, quality numbers."""
    return json.loads(_paths(name, path)[1].read_text())


def pretrained_schedule(name: str = "ddpm_mnist_quick", *, path: str | os.PathLike | None = None) -> NoiseSchedule:
    """The noise schedule the checkpoint was trained with (``schedule`` and ``T`` of its config)."""
    config = pretrained_info(name, path=path).get("config") or {}
    return TrainConfig(**{key: config[key] for key in ("schedule", "T") if key in config}).build_schedule()


def _unet_kwargs(info: dict) -> dict:
    """UNet constructor arguments from the record: ``info["model"]``, else matching keys of ``info["config"]``."""
    allowed = set(inspect.signature(UNet).parameters)
    for source in (info.get("model"), (info.get("config") or {}).get("model"), info.get("config")):
        if isinstance(source, dict):
            kwargs = {k: v for k, v in source.items() if k in allowed}
            if "channels" in kwargs:
                kwargs["channels"] = tuple(kwargs["channels"])
                return kwargs
    raise ValueError("the checkpoint record has no U-Net config: expected a 'model' (or 'config') entry "
                     f"with UNet arguments such as 'channels' (found keys {sorted(info)})")


def _state_dict(blob) -> dict:
    if isinstance(blob, dict):
        for key in _STATE_KEYS:
            if isinstance(blob.get(key), dict):
                return blob[key]
    return blob


def load_pretrained(name: str = "ddpm_mnist_quick", device: torch.device | str | None = None, *,
                    path: str | os.PathLike | None = None) -> UNet:
    """The EMA U-Net of a shipped checkpoint, in eval mode on ``device`` (default: the CPU); ``.info`` is its record.

    ``path`` loads ``<path>`` and its ``.json`` record instead of a shipped name. Sample from it with
    ``sample(model, NoiseSchedule.linear(), (16, 1, 28, 28), steps=100)``.
    """
    weights, _ = _paths(name, path)
    info = pretrained_info(name, path=path)
    model = UNet(**_unet_kwargs(info))
    state = _state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"the weights in {weights} do not fit the U-Net described in {weights.with_suffix('.json')}: "
                         f"{err}") from err
    model.info = info  # the JSON record travels with the model
    return model.to(device if device is not None else "cpu").eval()
