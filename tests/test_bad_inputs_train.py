"""Bad input to TrainConfig, train, train_step and the LR/EMA helpers: a clear TypeError or ValueError that names
the argument and what is allowed, raised at construction, never a silent wrong run."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dnnl.models.ddpm import (NoiseSchedule, TrainConfig, ema_decay_at, ema_update, lr_factor, train,
                              train_step)

CASES = [
    # strings and objects where numbers go
    (dict(lr="1e-3"), TypeError, r"lr must be a real number > 0 \(got str '1e-3'\)"),
    (dict(dropout="0.1"), TypeError, "dropout must be a real number"),
    (dict(ema_decay=None), TypeError, "ema_decay must be a real number"),
    (dict(weight_decay=[0.1]), TypeError, "weight_decay must be a real number"),
    (dict(grad_clip="1"), TypeError, "grad_clip must be a real number > 0"),
    (dict(steps="100"), TypeError, r"steps must be an int >= 1 \(got str '100'\)"),
    (dict(steps=10.5), TypeError, "steps must be an int"),
    (dict(steps=100.0), TypeError, "steps must be an int"),
    (dict(batch_size=True), TypeError, "batch_size must be an int"),
    (dict(seed=1.5), TypeError, "seed must be an int"),
    (dict(T=1e3), TypeError, "T must be an int"),
    (dict(num_res_blocks=1.5), TypeError, "num_res_blocks must be an int"),
    (dict(decay_steps=2.5), TypeError, r"decay_steps \(None or an int\) must be an int"),
    (dict(subset="64"), TypeError, r"subset \(None or an int\) must be an int"),
    (dict(channels=16), TypeError, "channels must be a non-empty tuple of ints"),
    (dict(channels="16,32"), TypeError, "channels must be a non-empty tuple of ints"),
    (dict(channels=(16, 32.0)), TypeError, r"channels\[1\] must be an int"),
    (dict(attention="no"), TypeError, r"attention must be True or False \(got str 'no'\)"),
    (dict(attention=1), TypeError, "attention must be True or False"),
    (dict(out_dir=3), TypeError, "out_dir must be a folder path"),
    (dict(data_root=1), TypeError, "data_root must be a folder path"),
    (dict(preset=None), TypeError, "preset must be a str"),
    # values outside the allowed range
    (dict(lr=0.0), ValueError, "lr must be a finite number > 0"),
    (dict(lr=-1e-3), ValueError, "lr must be a finite number > 0"),
    (dict(lr=math.inf), ValueError, "lr must be a finite number > 0"),
    (dict(lr=math.nan), ValueError, "lr must be a finite number > 0"),
    (dict(dropout=1.0), ValueError, r"dropout must be a finite number in \[0, 1\)"),
    (dict(dropout=-0.1), ValueError, r"dropout must be a finite number in \[0, 1\)"),
    (dict(ema_decay=-0.5), ValueError, r"ema_decay must be a finite number in \[0, 1\)"),
    (dict(weight_decay=-1.0), ValueError, "weight_decay must be a finite number >= 0"),
    (dict(grad_clip=0.0), ValueError, "grad_clip must be a finite number > 0.*use math.inf for no clipping"),
    (dict(grad_clip=-math.inf), ValueError, "grad_clip must be a finite number > 0"),
    (dict(T=1), ValueError, "T must be an int >= 2"),
    (dict(steps=-5), ValueError, r"steps must be an int >= 1 \(got -5\)"),
    (dict(batch_size=0), ValueError, "batch_size must be an int >= 1"),
    (dict(warmup=-1), ValueError, "warmup must be an int >= 0"),
    (dict(seed=-1), ValueError, "seed must be an int >= 0"),
    (dict(num_workers=-2), ValueError, "num_workers must be an int >= 0"),
    (dict(log_every=0), ValueError, "log_every must be an int >= 1"),
    (dict(checkpoint_every=0), ValueError, "checkpoint_every must be an int >= 1"),
    (dict(sample_every=-1), ValueError, "sample_every must be an int >= 0"),
    (dict(sample_steps=0), ValueError, r"sample_steps must be an int in \[1, 1000\]"),
    (dict(T=50, sample_steps=100), ValueError, r"sample_steps must be an int in \[1, 50\]"),
    (dict(subset=0), ValueError, r"subset \(None or an int\) must be an int >= 1"),
    (dict(decay_steps=0), ValueError, r"decay_steps \(None or an int\) must be an int >= 1"),
    (dict(channels=()), TypeError, "channels must be a non-empty tuple"),
    (dict(channels=(16, 0)), ValueError, r"channels\[1\] must be an int >= 1"),
    (dict(schedule="quadratic"), ValueError, "schedule must be one of 'linear', 'cosine'"),
    (dict(schedule=None), ValueError, "schedule must be one of 'linear', 'cosine'"),
]


@pytest.mark.parametrize("kwargs, error, match", CASES, ids=[str(c[0]) for c in CASES])
def test_bad_config_field_is_refused_with_its_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**kwargs)


def test_attention_no_no_longer_means_attention_on():
    """The bug: ``attention="no"`` is truthy, so it built a U-Net with attention."""
    with pytest.raises(TypeError):
        TrainConfig(attention="no")
    assert TrainConfig(attention=False).model_kwargs()["attention"] is False


def test_numpy_numbers_are_accepted_and_stored_as_python_numbers():
    config = TrainConfig(steps=np.int64(30), batch_size=np.int32(8), seed=np.uint8(3), lr=np.float32(1e-3),
                         channels=(np.int64(8), 16), attention=np.bool_(False), subset=np.int16(64),
                         out_dir=Path("runs/x"), grad_clip=math.inf)
    for name in ("steps", "batch_size", "seed", "subset"):
        assert type(getattr(config, name)) is int
    assert type(config.lr) is float and config.lr == pytest.approx(1e-3)
    assert config.channels == (8, 16) and all(type(c) is int for c in config.channels)
    assert config.attention is False and config.out_dir == "runs/x" and config.grad_clip == math.inf
    # plain types only, so the config survives torch.load(weights_only=True)
    assert all(type(v) in (int, float, str, bool, list, type(None)) for v in config.to_dict().values())


def test_presets_apply_the_same_checks():
    with pytest.raises(TypeError, match="lr must be a real number"):
        TrainConfig.quick(lr="fast")
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        TrainConfig.full(steps=0)
    assert TrainConfig.quick(steps=np.int64(7)).decay_steps == 7


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(resume="yes"), TypeError, "resume must be True or False"),
    (dict(progress=None), TypeError, "progress must be True or False"),
    (dict(model="unet"), TypeError, "model must be a torch.nn.Module or None"),
])
def test_bad_train_arguments_are_refused_before_any_work(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        train(TrainConfig(out_dir=str(tmp_path / "run")), **kwargs)
    assert not (tmp_path / "run").exists()  # refused at the door: no folder, no lock, no data


def test_train_refuses_a_config_that_is_not_a_trainconfig():
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        train({"steps": 3})


def test_bad_train_step_arguments_are_refused():
    model = torch.nn.Conv2d(1, 1, 3, padding=1)
    opt = torch.optim.AdamW(model.parameters())
    x0 = torch.zeros(2, 1, 4, 4)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        train_step(lambda x, t: x, "linear", x0, opt)
    with pytest.raises(TypeError, match="x0 a tensor"):
        train_step(lambda x, t: x, NoiseSchedule.linear(10), x0.numpy(), opt)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        train_step(lambda x, t: x, NoiseSchedule.linear(10), x0, "adam")


def test_bad_lr_and_ema_helper_arguments_are_refused():
    config = TrainConfig()
    with pytest.raises(TypeError, match="step must be an int"):
        lr_factor(1.5, config)
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        lr_factor(-1, config)
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        lr_factor(3, {"warmup": 10})
    assert lr_factor(np.int64(5), config) == lr_factor(5, config)
    with pytest.raises(TypeError, match="n must be an int"):
        ema_decay_at("3", 0.99)
    with pytest.raises(ValueError, match=r"decay must be a finite number in \[0, 1\]"):
        ema_decay_at(3, 1.5)
    with pytest.raises(TypeError, match="decay must be a real number"):
        ema_update(torch.nn.Linear(1, 1), torch.nn.Linear(1, 1), "0.9")
