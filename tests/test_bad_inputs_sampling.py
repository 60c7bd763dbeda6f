"""Bad input to sampling, the scheduler, pictures, pretrained loading and devices: each gets a clear
TypeError/ValueError (or FileNotFoundError) whose message names the argument and what is allowed."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dnnl.models.ddpm import DDPMScheduler, NoiseSchedule, ddim_step, sample, timesteps_for
from dnnl.models.ddpm.pretrained import WEIGHTS_DIR, load_pretrained, pretrained_info, pretrained_schedule
from dnnl.models.ddpm.unet import UNet
from dnnl.plot import make_grid_image, save_gif, save_grid

SCHEDULE = NoiseSchedule.linear(1000)
NO_CUDA = not torch.cuda.is_available()
NO_CUDA_MESSAGE = r"device='cuda', but no cuda device is available here; device must be one of: cpu"
SHIPPED = (WEIGHTS_DIR / "ddpm_mnist_quick.pt").is_file()
TINY = {"channels": [8, 16], "num_res_blocks": 1, "attention": False, "groups": 4, "heads": 2}


def eps_fn(x, t):
    return 0.5 * x


# --------------------------------------------------------------------------- sample()

SAMPLE_CASES = [
    ({"steps": 0}, ValueError, r"steps must be an int in \[1, 1000\] \(got 0\)"),
    ({"steps": 1001}, ValueError, r"steps must be an int in \[1, 1000\] \(got 1001\)"),
    ({"steps": -3}, ValueError, r"steps must be an int in \[1, 1000\]"),
    ({"steps": 2.5}, TypeError, r"steps must be an int"),
    ({"steps": "10"}, TypeError, r"steps must be an int.*str"),
    ({"steps": True}, TypeError, r"steps must be an int.*bool"),
    ({"steps": torch.tensor(10.0)}, TypeError, r"steps must be an int"),
    ({"method": "euler"}, ValueError, r"method must be one of \['ddpm', 'ddim'\]"),
    ({"method": None}, ValueError, r"method must be one of"),
    ({"shape": 5}, TypeError, r"shape must be a tuple"),
    ({"shape": "2,1,2,2"}, TypeError, r"shape must be a tuple"),
    ({"shape": (0, 1, 2, 2)}, ValueError, r"shape must be a tuple of positive ints"),
    ({"shape": (4,)}, ValueError, r"shape must be a tuple of positive ints \(batch, \*sample_shape\)"),
    ({"shape": (2, 1.5, 2, 2)}, ValueError, r"shape must be a tuple of positive ints"),
    ({"shape": (2, True, 2, 2)}, ValueError, r"shape must be a tuple of positive ints"),
    ({"noise": torch.zeros(3, 1, 2, 2)}, ValueError, r"noise must have shape \(2, 1, 2, 2\)"),
    ({"noise": torch.zeros(2, 1, 2, 2, dtype=torch.long)}, TypeError, r"noise must be a floating-point tensor"),
    ({"noise": [[0.0]]}, TypeError, r"noise must be a torch.Tensor"),
    ({"schedule": "linear"}, TypeError, r"schedule must be a NoiseSchedule"),
    ({"schedule": None}, TypeError, r"schedule must be a NoiseSchedule"),
    ({"model": 3}, TypeError, r"model must be an nn.Module or a callable"),
    ({"model": lambda x, t: x[:, :, :1]}, ValueError, r"model\(x, t\) must return an ε prediction of x's shape"),
    ({"model": lambda x, t: x.numpy()}, ValueError, r"model\(x, t\) must return an ε prediction.*ndarray"),
    ({"generator": 0}, TypeError, r"generator must be a torch.Generator or None"),
    ({"generator": np.random.default_rng(0)}, TypeError, r"generator must be a torch.Generator"),
    ({"batch_size": 0}, ValueError, r"batch_size must be an int >= 1 \(got 0\)"),
    ({"batch_size": -1}, ValueError, r"batch_size must be an int >= 1"),
    ({"batch_size": 2.0}, TypeError, r"batch_size must be an int"),
    ({"batch_size": True}, TypeError, r"batch_size must be an int"),
    ({"batch_size": "2"}, TypeError, r"batch_size must be an int"),
    ({"clip": "no"}, TypeError, r"clip must be True or False \(got str 'no'\)"),
    ({"clip": None}, TypeError, r"clip must be True or False"),
    ({"progress": 1}, TypeError, r"progress must be True or False"),
    ({"return_trajectory": "yes"}, TypeError, r"return_trajectory must be True or False"),
    ({"device": "banana"}, ValueError, r"device='banana' is not a torch device name; device must be one of: cpu"),
    pytest.param({"device": "cuda"}, ValueError, NO_CUDA_MESSAGE,
                 marks=pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")),
    ({"device": "cpu:7"}, ValueError, r"device='cpu:7', but this machine has 1 cpu device.*must be one of"),
    ({"device": 2.5}, TypeError, r"device"),
]


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
def test_sample_says_where_the_model_lives():
    model = UNet(**TINY)
    with pytest.raises(ValueError, match=r"device='cuda', but no cuda device is available"):
        sample(model, SCHEDULE, (1, 1, 8, 8), steps=2, progress=False, device="cuda")


def test_a_model_on_another_device_than_device_is_named(monkeypatch):
    import importlib

    sampler = importlib.import_module("dnnl.models.ddpm.sample")  # pretend this machine has a "meta" device
    monkeypatch.setattr(sampler, "resolve_device", lambda device, name="device": torch.device("meta"))
    with pytest.raises(ValueError, match=r"the model lives on cpu but device='meta'; move it first"):
        sample(UNet(**TINY), SCHEDULE, (1, 1, 8, 8), steps=2, progress=False, device="meta")


@pytest.mark.parametrize("kwargs,error,match", SAMPLE_CASES)
def test_sample_rejects(kwargs, error, match):
    args = {"model": eps_fn, "schedule": SCHEDULE, "shape": (2, 1, 2, 2), "progress": False, "steps": 3}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        sample(args.pop("model"), args.pop("schedule"), args.pop("shape"), **args)


# --------------------------------------------------------------------------- timesteps_for and ddim_step

@pytest.mark.parametrize("args,kwargs,error,match", [
    ((1000, 0), {}, ValueError, r"steps must be an int in \[1, 1000\] \(got 0\)"),
    ((1000, 1001), {}, ValueError, r"steps must be an int in \[1, 1000\]"),
    ((1000, 2.0), {}, TypeError, r"steps must be an int"),
    ((0, 1), {}, ValueError, r"T must be an int >= 1 \(got 0\)"),
    (("1000", 10), {}, TypeError, r"T must be an int"),
    ((1000, 10), {"spacing": "trailingx"}, ValueError, r"spacing must be one of \['leading'"),
])
def test_timesteps_for_rejects(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        timesteps_for(*args, **kwargs)


X = torch.zeros(2, 1, 2, 2)


@pytest.mark.parametrize("args,error,match", [
    (("linear", X, X, 5), TypeError, r"schedule must be a NoiseSchedule"),
    ((SCHEDULE, X[:1], X, 5), ValueError, r"eps must have the same shape as xt"),
    ((SCHEDULE, X, X, 1000), ValueError, r"t must be in \[0, 999\]"),
    ((SCHEDULE, X, X, -1), ValueError, r"t must be in \[0, 999\]"),
    ((SCHEDULE, X, X, 1.5), TypeError, r"t must be a Python int or an int64 tensor"),
    ((SCHEDULE, X, X, torch.tensor([1, 2, 3])), ValueError, r"t has 3 timesteps but the batch has 2"),
    ((SCHEDULE, X, X.long(), 5), TypeError, r"xt must be a floating-point tensor"),
])
def test_ddim_step_rejects(args, error, match):
    with pytest.raises(error, match=match):
        ddim_step(*args)


@pytest.mark.parametrize("clip", ["no", None, 1])
def test_ddim_step_clip_must_be_a_flag(clip):
    with pytest.raises(TypeError, match=r"clip must be True or False"):
        ddim_step(SCHEDULE, X, X, 5, clip=clip)


def test_numpy_integers_work_as_timesteps():
    a = ddim_step(SCHEDULE, X + 0.1, X + 0.3, np.int64(500))
    torch.testing.assert_close(a, ddim_step(SCHEDULE, X + 0.1, X + 0.3, 500), atol=0, rtol=0)


# --------------------------------------------------------------------------- DDPMScheduler

@pytest.mark.parametrize("kwargs,error,match", [
    ({"beta_schedule": "cosine", "beta_start": 0.5}, ValueError, r"beta_start only apply to beta_schedule='linear'"),
    ({"beta_schedule": "cosine", "beta_end": 0.1}, ValueError, r"beta_end only apply to beta_schedule='linear'"),
    ({"beta_schedule": "quadratic"}, ValueError, r"beta_schedule must be one of"),
    ({"variance_type": "learned"}, ValueError, r"variance_type must be one of \['fixed_small', 'fixed_large'\]"),
    ({"num_train_timesteps": 1}, ValueError, r"num_train_timesteps must be an int >= 2 \(got 1\)"),
    ({"num_train_timesteps": 10.0}, TypeError, r"num_train_timesteps must be an int"),
    ({"beta_start": "0.001"}, TypeError, r"beta_start must be a real number"),
    ({"beta_start": 0}, ValueError, r"beta_start must be a finite number in \(0, 1\)"),
    ({"beta_end": float("nan")}, ValueError, r"beta_end must be a finite number in \(0, 1\)"),
    ({"beta_start": 0.03, "beta_end": 0.02}, ValueError, r"beta_start.*beta_end"),
    ({"clip_sample": "no"}, TypeError, r"clip_sample must be True or False"),
])
def test_scheduler_constructor_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        DDPMScheduler(**kwargs)


def _scheduler():
    s = DDPMScheduler()
    s.set_timesteps(10)
    return s


@pytest.mark.parametrize("call,error,match", [
    (lambda s: s.set_timesteps(0), ValueError, r"num_inference_steps must be an int in \[1, 1000\]"),
    (lambda s: s.set_timesteps(1001), ValueError, r"num_inference_steps must be an int in \[1, 1000\]"),
    (lambda s: s.set_timesteps(10.0), TypeError, r"num_inference_steps must be an int"),
    (lambda s: s.step(X, 999, X), ValueError, r"timestep 999 is not on the current chain"),
    (lambda s: s.step(X, 1000, X), ValueError, r"timestep must be in \[0, 999\]"),
    (lambda s: s.step(X, 900.0, X), TypeError, r"timestep must be a Python int"),
    (lambda s: s.step(X, torch.tensor([900, 900]), X), ValueError, r"timestep must be a single int"),
    (lambda s: s.step(X[:1], 900, X), ValueError, r"model_output must have the same shape as sample"),
    (lambda s: s.step(X, 900, X.long()), TypeError, r"sample must be a floating-point tensor"),
    (lambda s: s.step(X, 900, X, generator="seed"), TypeError, r"generator must be a torch.Generator"),
    (lambda s: s.previous_timestep(901), ValueError, r"timestep 901 is not on the current chain"),
    (lambda s: DDPMScheduler.from_schedule("cosine"), TypeError, r"schedule must be a NoiseSchedule"),
])
def test_scheduler_methods_reject(call, error, match):
    with pytest.raises(error, match=match):
        call(_scheduler())


def test_scheduler_takes_numpy_integers():
    s = DDPMScheduler()
    s.set_timesteps(np.int64(10))
    g = torch.Generator().manual_seed(0)
    a = s.step(X + 0.1, np.int64(900), X + 0.2, generator=g).prev_sample
    b = s.step(X + 0.1, 900, X + 0.2, generator=torch.Generator().manual_seed(0)).prev_sample
    assert s.num_inference_steps == 10 and torch.equal(a, b)


# --------------------------------------------------------------------------- pictures

IMAGES = torch.zeros(4, 1, 6, 6)
NAN = IMAGES.clone()
NAN[2, 0, 1, 1] = float("nan")


@pytest.mark.parametrize("call,error,match", [
    (lambda p: save_grid(NAN, p / "g.png"), ValueError, r"images must be finite: image\(s\) 2 of 4 hold NaN"),
    (lambda p: make_grid_image(NAN), ValueError, r"images must be finite"),
    (lambda p: save_grid(torch.zeros(2, 2, 6, 6), p / "g.png"), ValueError, r"1 \(grey\) or 3 \(RGB\) channels"),
    (lambda p: make_grid_image(torch.zeros(2, 4, 6, 6)), ValueError, r"channels.*C=4"),
    (lambda p: make_grid_image(torch.zeros(0, 1, 6, 6)), ValueError, r"images must hold at least one image"),
    (lambda p: save_grid(torch.zeros(0, 1, 6, 6), p / "g.png"), ValueError, r"at least one image"),
    (lambda p: make_grid_image(IMAGES[0]), ValueError, r"images must have shape \(B, C, H, W\)"),
    (lambda p: make_grid_image(IMAGES.tolist()), TypeError, r"images must be a torch.Tensor"),
    (lambda p: make_grid_image((IMAGES * 127).to(torch.uint8)), TypeError, r"images must be a floating-point"),
    (lambda p: save_grid(IMAGES, p / "g.png", nrow=0), ValueError, r"nrow must be an int >= 1 \(got 0\)"),
    (lambda p: make_grid_image(IMAGES, nrow=2.5), TypeError, r"nrow must be an int"),
    (lambda p: make_grid_image(IMAGES, padding=-1), ValueError, r"padding must be an int >= 0"),
    (lambda p: save_gif([IMAGES, torch.zeros(4, 1, 8, 8)], p / "a.gif"), ValueError,
     r"every frame of trajectory must have one shape: trajectory\[1\] has \(4, 1, 8, 8\)"),
    (lambda p: save_gif([], p / "a.gif"), ValueError, r"trajectory must be a non-empty list"),
    (lambda p: save_gif("abc", p / "a.gif"), ValueError, r"trajectory must be a non-empty list"),
    (lambda p: save_gif([IMAGES.numpy()], p / "a.gif"), TypeError, r"trajectory\[0\] must be a torch.Tensor"),
    (lambda p: save_gif([IMAGES, NAN], p / "a.gif"), ValueError, r"trajectory\[1\] must be finite"),
    (lambda p: save_gif([IMAGES], p / "a.gif", frames=0), ValueError, r"frames must be an int >= 1"),
    (lambda p: save_gif([IMAGES], p / "a.gif", scale=1.5), TypeError, r"scale must be an int"),
    (lambda p: save_gif([IMAGES], p / "a.gif", hold_last_ms=-1), ValueError, r"hold_last_ms must be an int >= 0"),
    (lambda p: save_gif([IMAGES], p / "a.gif", duration_ms=0), ValueError, r"duration_ms must be an int >= 1"),
])
def test_pictures_reject(tmp_path, call, error, match):
    with pytest.raises(error, match=match):
        call(tmp_path)
    assert not any(tmp_path.iterdir())  # nothing half-written


# --------------------------------------------------------------------------- pretrained loading

def _checkpoint(tmp_path, record, state=None):
    path = tmp_path / "m.pt"
    torch.save(UNet(**TINY).state_dict() if state is None else state, path)
    path.with_suffix(".json").write_text(record if isinstance(record, str) else json.dumps(record))
    return path


@pytest.mark.parametrize("setup,error,match", [
    (lambda p: {"name": "../etc/passwd"}, ValueError, r"name must be a checkpoint name"),
    (lambda p: {"name": 3}, ValueError, r"name must be a checkpoint name"),
    (lambda p: {"name": ""}, ValueError, r"name must be a checkpoint name"),
    (lambda p: {"path": 3}, TypeError, r"path must be a str or os.PathLike"),
    (lambda p: {"name": "no_such_checkpoint"}, FileNotFoundError, r"missing .*no_such_checkpoint.pt.*Shipped"),
    (lambda p: {"path": p / "nothing.pt"}, FileNotFoundError, r"missing .*nothing.pt"),
    (lambda p: {"path": _checkpoint(p, "{not json")}, ValueError, r"record .*m.json is not valid JSON"),
    (lambda p: {"path": _checkpoint(p, "[1, 2]")}, ValueError, r"must hold a JSON object \(got list\)"),
    (lambda p: {"path": _checkpoint(p, {"seed": 0})}, ValueError, r"no U-Net config: expected a 'model' entry"),
    (lambda p: {"path": _checkpoint(p, {"model": dict(TINY, wings=2)})}, ValueError,
     r"'model' entry has keys UNet does not take: \['wings'\]"),
    (lambda p: {"path": _checkpoint(p, {"model": dict(TINY, channels=[8, 32])})}, ValueError,
     r"do not fit the U-Net described in"),
    (lambda p: {"path": _checkpoint(p, {"model": TINY}, state=[1, 2])}, ValueError,
     r"checkpoint .*m.pt is corrupted or not a dnnl checkpoint"),
    (lambda p: {"path": _checkpoint(p, {"model": TINY}), "device": "banana"}, ValueError,
     r"device='banana' is not a torch device name; device must be one of: cpu"),
    pytest.param(lambda p: {"path": _checkpoint(p, {"model": TINY}), "device": "cuda"}, ValueError,
                 NO_CUDA_MESSAGE, marks=pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")),
    (lambda p: {"path": _checkpoint(p, {"model": TINY}), "device": 1.5}, TypeError, r"device"),
])
def test_load_pretrained_rejects(tmp_path, setup, error, match):
    with pytest.raises(error, match=match):
        load_pretrained(**setup(tmp_path))


def test_random_bytes_are_a_clear_error(tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    path.with_suffix(".json").write_text(json.dumps({"model": TINY}))
    with pytest.raises(ValueError, match=r"checkpoint .*m.pt is corrupted or not a dnnl checkpoint: torch.load"):
        load_pretrained(path=path)


@pytest.mark.parametrize("config,error,match", [
    ({"schedule": "sigmoid"}, ValueError, r"config.schedule must be 'linear' or 'cosine' \(got 'sigmoid'\)"),
    ({"T": 1}, ValueError, r"T must be"),
    ({"T": "1000"}, TypeError, r"T must be an int"),
])
def test_pretrained_schedule_rejects(tmp_path, config, error, match):
    path = _checkpoint(tmp_path, {"model": TINY, "config": config})
    with pytest.raises(error, match=match):
        pretrained_schedule(path=path)


@pytest.mark.skipif(not SHIPPED, reason="shipped checkpoint not present")
def test_shipped_record_is_what_the_loader_expects():
    info = pretrained_info()
    assert set(info["model"]) <= {"in_channels", "out_channels", "channels", "num_res_blocks", "attention",
                                  "dropout", "groups", "heads"}
    model = load_pretrained(device="cpu")
    assert not model.training and next(model.parameters()).device.type == "cpu"
