import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dnnl.models.ddpm import TrainConfig, UNet, train

train_module = importlib.import_module("dnnl.models.ddpm.train")  # the module, not the function
from dnnl.models.ddpm.train import ema_decay_at, ema_update, load_checkpoint, lr_factor, save_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


from _train_helpers import one_thread, tiny  # noqa: E402,F401

pytestmark = pytest.mark.usefixtures("one_thread")


def same_tensors(a, b, where=""):
    """Every tensor in two nested state structures is torch.equal; other leaves are ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), f"tensors differ at {where}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"keys differ at {where}"
        for k in a:
            same_tensors(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"lengths differ at {where}"
        for i, (x, y) in enumerate(zip(a, b)):
            same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{a!r} != {b!r} at {where}"


def test_presets_build_models_that_fit_mnist():
    for config in (TrainConfig.quick(), TrainConfig.full()):
        model = config.build_model()
        assert isinstance(model, UNet)
        assert model(torch.zeros(1, 1, 28, 28), 0).shape == (1, 1, 28, 28)
    assert TrainConfig.quick(steps=7).steps == 7
    assert TrainConfig.preset_named("full").preset == "full"


def test_bad_config_values_are_rejected():
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match=r"ema_decay must be a finite number in \[0, 1\)"):
        TrainConfig(ema_decay=1.0)
    with pytest.raises(ValueError, match="schedule must be"):
        TrainConfig(schedule="quadratic")
    with pytest.raises(ValueError, match="preset must be"):
        TrainConfig.preset_named("medium")
    with pytest.raises(TypeError, match="TrainConfig"):
        train({"steps": 3})


def test_ema_decay_warms_up_then_caps():
    assert ema_decay_at(0, 0.9999) == pytest.approx(0.1)
    assert ema_decay_at(90, 0.9999) == pytest.approx(91 / 100)
    assert ema_decay_at(10**6, 0.999) == 0.999
    assert all(ema_decay_at(n, 0.9999) <= ema_decay_at(n + 1, 0.9999) for n in range(1000))


def test_ema_update_is_a_convex_combination():
    ema, model = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = [p.clone() for p in ema.parameters()]
    ema_update(ema, model, 0.75)
    for e, b, p in zip(ema.parameters(), before, model.parameters()):
        assert torch.allclose(e, 0.75 * b + 0.25 * p)


def test_training_on_the_cpu_looks_at_the_load_once_a_step(mnist_root, tmp_path, monkeypatch):
    """So that kernels which all started on an idle machine give CPUs back to each other (dnnl/_threads.py)."""
    looks = []
    monkeypatch.setattr(importlib.import_module("dnnl.models.ddpm.train"), "rebalance", lambda: looks.append(1))
    train(tiny(mnist_root, tmp_path, steps=3, checkpoint_every=3), progress=False)
    assert len(looks) == 3


def test_checkpoint_loads_weights_only_with_everything_needed(mnist_root, tmp_path):
    config = tiny(mnist_root, tmp_path, steps=3, checkpoint_every=3)
    result = train(config, progress=False)
    state = torch.load(result.checkpoint, weights_only=True)
    assert {"model", "ema", "optimizer", "lr_scheduler", "step", "rng", "config", "losses"} <= state.keys()
    assert state["step"] == 3 and len(state["losses"]) == 3 and result.steps == 3
    assert state["config"] == config.to_dict()
    assert {"torch", "cuda", "numpy", "python"} <= state["rng"][0].keys()
    json.dumps(state["config"])  # plain types only
    same_tensors(state["ema"], result.ema_model.state_dict())
    assert not list(tmp_path.glob(".*.tmp"))


def test_resume_is_bit_identical_to_an_uninterrupted_run(mnist_root, tmp_path):
    whole = train(tiny(mnist_root, tmp_path / "whole"), progress=False)
    train(tiny(mnist_root, tmp_path / "split", steps=10), progress=False)
    resumed = train(tiny(mnist_root, tmp_path / "split"), resume=True, progress=False)
    assert resumed.steps == whole.steps == 20
    a, b = load_checkpoint(whole.checkpoint), load_checkpoint(resumed.checkpoint)
    for key in ("model", "ema", "optimizer", "lr_scheduler", "losses", "rng"):
        same_tensors(a[key], b[key], key)
    assert resumed.losses == whole.losses
    same_tensors(resumed.model.state_dict(), whole.model.state_dict())


def test_lr_factor_is_warm_up_times_cosine():
    config = TrainConfig(warmup=10, decay_steps=100)
    for step in (0, 4, 9, 10, 37, 50, 99, 100, 250):
        warm = min(1.0, (step + 1) / 10)
        decay = 0.5 * (1 + math.cos(math.pi * min(step, 100) / 100))
        assert math.isclose(lr_factor(step, config), warm * decay, rel_tol=1e-12, abs_tol=1e-15), step
    assert lr_factor(50, config) == pytest.approx(0.5)          # half-way down the cosine
    assert lr_factor(100, config) == 0.0 and lr_factor(500, config) == 0.0
    assert lr_factor(5, TrainConfig(warmup=10)) == 0.6           # no decay: warm-up, then constant
    assert lr_factor(5000, TrainConfig(warmup=10)) == 1.0
    # the presets decay over their own run unless told otherwise
    assert TrainConfig.quick().decay_steps == TrainConfig.quick().steps
    assert TrainConfig.quick(steps=300).decay_steps == 300
    assert TrainConfig.quick(steps=300, decay_steps=1000).decay_steps == 1000
    assert TrainConfig.full().decay_steps == TrainConfig.full().steps
    with pytest.raises(ValueError, match="decay_steps"):
        TrainConfig(decay_steps=0)


def test_the_optimiser_follows_lr_factor(mnist_root, tmp_path):
    config = tiny(mnist_root, tmp_path, steps=12, warmup=3, decay_steps=24, checkpoint_every=12)
    result = train(config, progress=False)
    state = load_checkpoint(result.checkpoint)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(config.lr * lr_factor(12, config))
    assert state["lr_scheduler"]["last_epoch"] == 12


def test_resume_with_a_cosine_decay_is_bit_identical(mnist_root, tmp_path):
    whole = train(tiny(mnist_root, tmp_path / "whole", decay_steps=20), progress=False)
    train(tiny(mnist_root, tmp_path / "split", steps=10, decay_steps=20), progress=False)
    resumed = train(tiny(mnist_root, tmp_path / "split", decay_steps=20), resume=True, progress=False)
    a, b = load_checkpoint(whole.checkpoint), load_checkpoint(resumed.checkpoint)
    for key in ("model", "ema", "optimizer", "lr_scheduler", "losses"):
        same_tensors(a[key], b[key], key)


def test_train_takes_another_network(mnist_root, tmp_path):
    class Tiny(torch.nn.Module):  # any (x_t, t) -> eps module
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x, t):
            return self.conv(x)

    result = train(tiny(mnist_root, tmp_path, steps=3, checkpoint_every=3), progress=False, model=Tiny())
    assert isinstance(result.model, Tiny) and isinstance(result.ema_model, Tiny)
    assert set(load_checkpoint(result.checkpoint)["model"]) == {"conv.weight", "conv.bias"}
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        train(tiny(mnist_root, tmp_path / "bad", steps=1), progress=False, model=lambda x, t: x)


def test_resume_refuses_a_different_model(mnist_root, tmp_path):
    train(tiny(mnist_root, tmp_path, steps=2, checkpoint_every=2), progress=False)
    with pytest.raises(ValueError, match="lr: checkpoint 0.001 vs now 0.002"):
        train(tiny(mnist_root, tmp_path, steps=4, lr=2e-3), resume=True, progress=False)


@pytest.mark.slow
def test_loss_decreases_over_50_steps_on_512_images(mnist_root, tmp_path):
    config = tiny(mnist_root, tmp_path, channels=(16, 32, 32), steps=50, batch_size=32, subset=512, lr=2e-3,
                  warmup=5, dropout=0.0, checkpoint_every=50)
    losses = train(config, progress=False).losses
    assert len(losses) == 50 and all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.8 * first, (first, last)


def test_atomic_save_survives_a_crash_mid_write(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def crash(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial checkpoint bytes")  # a torn write ...
        raise OSError("disk full")                       # ... then the crash

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(mnist_root, tmp_path, monkeypatch):
    real_loss, calls = train_module._noise_prediction_loss, []

    def nan_at_step_7(*args, **kwargs):
        calls.append(1)
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if len(calls) == 7 else loss

    monkeypatch.setattr(train_module, "_noise_prediction_loss", nan_at_step_7)
    config = tiny(mnist_root, tmp_path, steps=20, checkpoint_every=5, log_every=3)
    with pytest.raises(RuntimeError, match=r"non-finite loss nan at step 7.*step 5\)"):
        train(config, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 5 and len(state["losses"]) == 5
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def _run(args, timeout=300, **env):
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def test_cli_help():
    """The CLI (dnnl/models/ddpm/__main__.py) lists its options."""
    out = _run(["-m", "dnnl.models.ddpm", "--help"])
    assert out.returncode == 0, out.stderr
    for flag in ("--preset", "--out", "--steps", "--resume", "--subset", "--batch-size", "--seed"):
        assert flag in out.stdout
    assert "RuntimeWarning" not in out.stderr
    old = _run(["-m", "dnnl.models.ddpm.train", "--help"])  # the older command still works
    assert old.returncode == 0 and "--resume" in old.stdout, old.stderr


@pytest.mark.slow
def test_cli_runs_20_steps_and_resumes(mnist_root, tmp_path):
    args = ["-m", "dnnl.models.ddpm", "--preset", "quick", "--out", str(tmp_path), "--subset", "64",
            "--batch-size", "8", "--data-root", str(mnist_root), "--no-progress"]
    out = _run([*args, "--steps", "20"])
    assert out.returncode == 0, out.stderr
    assert "done: 20 steps" in out.stdout
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 20
    out = _run([*args, "--steps", "22", "--resume"])
    assert out.returncode == 0, out.stderr
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 22 and len(state["losses"]) == 22


@pytest.mark.slow
def test_two_process_gloo_ddp_run(mnist_root, tmp_path):
    out = _run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "dnnl.models.ddpm", "--preset", "quick", "--steps", "4", "--subset", "64",
                "--batch-size", "8", "--out", str(tmp_path), "--data-root", str(mnist_root), "--no-progress"],
               timeout=240, DNNL_DEVICE="cpu")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.count("done: 4 steps") == 1  # rank 0 only
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["world_size"] == 2 and state["step"] == 4 and len(state["losses"]) == 4
    assert len(state["rng"]) == 2
    assert all(math.isfinite(v) for v in state["losses"])


# --------------------------------------------------------------------------- train_step (Algorithm 1)

class _Conv(torch.nn.Module):
    """A tiny ε-model that ignores t: the step's own code is what these tests are about."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x, t):
        return self.conv(x)


def _step_inputs(seed=0):
    from dnnl.models.ddpm import NoiseSchedule

    torch.manual_seed(seed)
    model = _Conv()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)  # as train() builds it
    x0 = torch.rand(4, 1, 8, 8) * 2 - 1
    return model, NoiseSchedule.linear(50), x0, opt


def test_train_step_is_one_step_of_algorithm_1():
    """train_step = L_simple from the generator's draws, backward, clip, AdamW: checked against doing it by hand."""
    import copy

    from dnnl.models.ddpm import noise_prediction_loss, train_step

    model, schedule, x0, opt = _step_inputs()
    ref_model = copy.deepcopy(model)
    ref_opt = torch.optim.AdamW(ref_model.parameters(), lr=1e-2, fused=True)
    ref_loss = noise_prediction_loss(ref_model, schedule, x0, generator=torch.Generator().manual_seed(7))
    ref_opt.zero_grad()
    ref_loss.backward()
    torch.nn.utils.clip_grad_norm_(ref_model.parameters(), 0.5)
    ref_opt.step()
    loss = train_step(model, schedule, x0, opt, generator=torch.Generator().manual_seed(7), grad_clip=0.5)
    assert not loss.requires_grad and torch.equal(loss, ref_loss.detach())
    same_tensors(model.state_dict(), ref_model.state_dict())


def test_train_step_makes_no_value_checks_and_reads_no_tensor_values(monkeypatch):
    """Zero host-device syncs: no check helper that reads values runs, and no tensor value reaches Python.

    On the CPU a sync cannot be seen, so this counts its causes: the range checks (check_t, check_range,
    check_int/check_float on tensors) and every way a tensor's value becomes a Python object.
    """
    from dnnl.models.ddpm import train_step

    model, schedule, x0, opt = _step_inputs()
    gen = torch.Generator().manual_seed(0)
    train_step(model, schedule, x0, opt, generator=gen, grad_clip=1.0)  # warm-up: lazy optimizer state
    calls = []

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)
        return wrapper

    for mod in [m for name, m in sys.modules.items() if name.startswith("dnnl.") and m is not None]:
        for name in ("check_t", "check_range", "check_int", "check_float", "_min_max", "check_schedule"):
            if callable(getattr(mod, name, None)):
                monkeypatch.setattr(mod, name, counting(name, getattr(mod, name)))
    for name in ("item", "tolist", "__bool__", "__int__", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, counting(f"Tensor.{name}", getattr(torch.Tensor, name)))
    for _ in range(3):
        train_step(model, schedule, x0, opt, generator=gen, grad_clip=1.0)
    monkeypatch.undo()
    assert calls == []
    # the counters do count: the public loss checks its data's range
    from dnnl.models.ddpm import losses
    monkeypatch.setattr(torch.Tensor, "__float__", counting("Tensor.__float__", torch.Tensor.__float__))
    monkeypatch.setattr(losses, "check_range", counting("check_range", losses.check_range))
    losses.noise_prediction_loss(model, schedule, x0, generator=gen)
    assert "check_range" in calls


def test_train_runs_its_steps_through_train_step(mnist_root, tmp_path, monkeypatch):
    calls = []
    real = train_module.train_step
    monkeypatch.setattr(train_module, "train_step", lambda *a, **k: calls.append(1) or real(*a, **k))
    train(tiny(mnist_root, tmp_path, steps=3, checkpoint_every=3), progress=False)
    assert len(calls) == 3


def test_the_step_and_ema_helpers_are_exported():
    import dnnl.models.ddpm as ddpm

    for name in ("train_step", "lr_factor", "ema_update", "ema_decay_at", "save_checkpoint", "load_checkpoint"):
        assert name in ddpm.__all__ and callable(getattr(ddpm, name))
