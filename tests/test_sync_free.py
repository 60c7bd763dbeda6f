"""The training loop reads no tensor value back between its log steps: on a GPU, no host-device sync per step.

A CPU cannot show a sync, so these tests count its causes instead: every call that turns a tensor's value
into a Python object (``item``, ``tolist``, ``bool``/``int``/``float``, ``numpy``, ``cpu``, printing) or
whose output size depends on values (``nonzero``, ``unique``, ``masked_select``), seen through a
``TorchFunctionMode``. benchmarks/gpu_sync_check.py checks the same on CUDA with torch's own sync detector.
"""
from __future__ import annotations

import importlib
import traceback
from collections import Counter

import pytest
import torch
from torch.overrides import TorchFunctionMode

from _train_helpers import one_thread, tiny  # noqa: F401
from dnnl.models.ddpm import train

train_module = importlib.import_module("dnnl.models.ddpm.train")
pytestmark = pytest.mark.usefixtures("one_thread")

# Reads the code makes only of CPU tensors (it tests ``device.type == "cpu"`` first): none in a GPU run.
CPU_ONLY = {("unet.py", "_timesteps"), ("unet.py", "_labels")}  # the model's checks of t and y

READS = {"item", "tolist", "__bool__", "__int__", "__float__", "__index__", "numpy", "cpu", "__repr__",
         "__format__", "nonzero", "unique", "masked_select"}


class HostReads(TorchFunctionMode):
    """Counts the calls that read tensor values on the host, with the dnnl line that made each."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in READS:
            ours = [f for f in traceback.extract_stack()[:-1] if "/dnnl/" in f.filename.replace("\\", "/")]
            here = (ours[-1].filename.replace("\\", "/").split("/")[-1], ours[-1].name) if ours else None
            if here not in CPU_ONLY:
                self.calls.append(f"{name} at {here[0]}:{ours[-1].lineno} in {here[1]}" if here else
                                  f"{name} outside dnnl")
        return func(*args, **(kwargs or {}))


def test_the_cpu_only_reads_are_guarded_by_the_device():
    import inspect

    from dnnl.models.ddpm import unet

    for file, func in CPU_ONLY:
        assert file == "unet.py" and 'device.type == "cpu"' in inspect.getsource(getattr(unet.UNet, func))


def _reads(config, **kw) -> list[str]:
    with HostReads() as mode:
        train(config, progress=False, **kw)
    return mode.calls


@pytest.mark.parametrize("labels", [False, True], ids=["unconditional", "conditional"])
def test_the_loop_reads_no_tensor_values_between_log_steps(mnist_root, tmp_path, labels):
    """5 and 8 steps cover the same two epochs (4 batches each) and log and save only at their last step, so
    every read beyond the setup, the epochs and the final save would be a read per step."""
    extra = dict(num_classes=10, p_uncond=0.3) if labels else {}
    five = _reads(tiny(mnist_root, tmp_path / "five", steps=5, log_every=100, checkpoint_every=100, **extra))
    eight = _reads(tiny(mnist_root, tmp_path / "eight", steps=8, log_every=100, checkpoint_every=100, **extra))
    more = Counter(eight) - Counter(five)
    assert len(eight) == len(five), f"reads per step (counts over 3 more steps): {dict(more)}"


def test_the_count_sees_a_read_per_step(mnist_root, tmp_path, monkeypatch):
    """The check can fail: a step that reads its loss (loss.item(), as a naive loop logs) is seen at every step."""
    real = train_module.train_step

    def logging_step(*args, **kwargs):
        loss = real(*args, **kwargs)
        loss.item()
        return loss

    monkeypatch.setattr(train_module, "train_step", logging_step)
    five = _reads(tiny(mnist_root, tmp_path / "five", steps=5, log_every=100, checkpoint_every=100))
    eight = _reads(tiny(mnist_root, tmp_path / "eight", steps=8, log_every=100, checkpoint_every=100))
    (extra, count), = (Counter(eight) - Counter(five)).items()  # one read, made at each of the 3 more steps
    assert count == 3 and extra.startswith("item at train.py:") and extra.endswith(" in loop")
