"""What the training tests share: one torch thread, a very small model on a 64-image subset, and a
read-only folder."""
import errno
import importlib
import os
from pathlib import Path

import pytest
import torch

from dnnl.models.ddpm import TrainConfig


@pytest.fixture
def one_thread():
    """The tiny models here are overhead-bound: one thread is faster and immune to a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(root, out, **kw):
    """A very small model on a 64-image subset: four batches per epoch, so runs cross epochs."""
    base = dict(channels=(8, 16, 16), steps=20, batch_size=16, subset=64, lr=1e-3, warmup=5, dropout=0.1,
                data_root=str(root), out_dir=str(out), log_every=5, checkpoint_every=10)
    return TrainConfig(**{**base, **kw})


def read_only(monkeypatch, folder):
    """Make ``folder`` read-only for checkpoint writes (chmod does not stop root, so the write itself fails)."""
    ckpt_module = importlib.import_module("dnnl.models.ddpm.checkpoint")
    real_open = open

    def fake_open(file, mode="r", *args, **kwargs):
        if "w" in mode and Path(file).parent == folder:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(ckpt_module, "open", fake_open, raising=False)


def resumes_bit_identically(root, tmp_path, **kw):
    """Train ``tiny(**kw)`` in one go and in two stretches (10 steps, then resumed); assert that the model, EMA,
    optimizer, RNG and losses match exactly. Returns the uninterrupted run's result."""
    from dnnl.models.ddpm.train import load_checkpoint, train
    from test_train import same_tensors

    whole = train(tiny(root, tmp_path / "whole", **kw), progress=False)
    train(tiny(root, tmp_path / "split", steps=10, **kw), progress=False)
    resumed = train(tiny(root, tmp_path / "split", **kw), resume=True, progress=False)
    a, b = load_checkpoint(whole.checkpoint), load_checkpoint(resumed.checkpoint)
    for key in ("model", "ema", "optimizer", "rng"):
        same_tensors(a[key], b[key], key)
    assert resumed.losses == whole.losses
    return whole
