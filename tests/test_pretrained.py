"""Tests for dnnl.models.ddpm.pretrained: loading checkpoints and sampling from them."""
from __future__ import annotations

import json

import pytest
import torch

from dnnl.models.ddpm import NoiseSchedule
from dnnl.models.ddpm.pretrained import WEIGHTS_DIR, load_pretrained, pretrained_info, pretrained_schedule
from dnnl.models.ddpm.sample import sample
from dnnl.models.ddpm.unet import UNet

CONFIDENCE_FLOOR = 0.7  # share of 128 samples (50 steps) read as a digit with max-prob > 0.9; measured 0.875
TINY = {"channels": [8, 16], "num_res_blocks": 1, "attention": False, "groups": 4, "heads": 2}


@pytest.fixture()
def tiny_checkpoint(tmp_path):
    torch.manual_seed(0)
    model, ema = UNet(**TINY), UNet(**TINY)
    with torch.no_grad():
        for p in ema.parameters():
            p.normal_(0, 0.05)   # EMA weights differ from the raw ones, so we can tell which one loads
    path = tmp_path / "tiny.pt"
    torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "step": 3}, path)
    path.with_suffix(".json").write_text(json.dumps({"model": TINY, "config": {"steps": 3}, "seed": 0}))
    return path, ema


def test_load_pretrained_returns_the_ema_model_in_eval_mode(tiny_checkpoint):
    path, ema = tiny_checkpoint
    model = load_pretrained(path=path)
    assert isinstance(model, UNet) and not model.training
    for (name, p), q in zip(model.state_dict().items(), ema.state_dict().values()):
        torch.testing.assert_close(p, q, atol=0, rtol=0, msg=name)
    assert pretrained_info(path=path)["model"]["channels"] == [8, 16]
    assert model.info == pretrained_info(path=path)


def test_the_schedule_comes_from_the_record(tmp_path):
    path = tmp_path / "c.pt"
    path.write_bytes(b"")
    path.with_suffix(".json").write_text(json.dumps({"config": {"schedule": "cosine", "T": 500}}))
    sched = pretrained_schedule(path=path)
    torch.testing.assert_close(sched.alpha_bars, NoiseSchedule.cosine(T=500).alpha_bars, atol=0, rtol=0)
    path.with_suffix(".json").write_text(json.dumps({"config": {"schedule": "sigmoid"}}))
    with pytest.raises(ValueError, match="'linear' or 'cosine'"):
        pretrained_schedule(path=path)


def test_a_bare_state_dict_with_a_model_record_loads_too(tmp_path):
    model = UNet(**TINY)
    path = tmp_path / "bare.pt"
    torch.save(model.state_dict(), path)
    path.with_suffix(".json").write_text(json.dumps({"model": TINY}))
    x = torch.randn(2, 1, 8, 8)
    t = torch.tensor([3, 700])
    torch.testing.assert_close(load_pretrained(path=path)(x, t), model.eval()(x, t))


def test_samples_from_a_loaded_checkpoint_have_the_right_shape_and_range(tiny_checkpoint):
    model = load_pretrained(path=tiny_checkpoint[0])
    x = sample(model, NoiseSchedule.linear(), (4, 1, 28, 28), steps=5, progress=False,
               generator=torch.Generator().manual_seed(0)).images
    assert x.shape == (4, 1, 28, 28) and torch.isfinite(x).all()
    assert x.min() >= -1 and x.max() <= 1


def test_missing_or_mismatched_checkpoints_give_clear_errors(tmp_path, tiny_checkpoint):
    with pytest.raises(FileNotFoundError, match="missing .*nothing.pt"):
        load_pretrained(path=tmp_path / "nothing.pt")
    with pytest.raises(FileNotFoundError, match="Shipped checkpoints"):
        load_pretrained("no_such_checkpoint")
    with pytest.raises(ValueError, match="checkpoint name"):
        load_pretrained("../etc/passwd")
    path = tiny_checkpoint[0]
    path.with_suffix(".json").write_text(json.dumps({"model": dict(TINY, channels=[8, 32])}))
    with pytest.raises(ValueError, match="do not fit the U-Net"):
        load_pretrained(path=path)
    path.with_suffix(".json").write_text(json.dumps({"seed": 0}))
    with pytest.raises(ValueError, match="no U-Net config"):
        load_pretrained(path=path)


@pytest.mark.skipif(not (WEIGHTS_DIR / "ddpm_mnist_quick.pt").is_file(), reason="shipped checkpoint not present")
def test_shipped_checkpoint_samples_digits_of_the_right_shape_and_range():
    info = pretrained_info()
    model = load_pretrained()
    assert not model.training
    assert {"config", "seed"} <= set(info)
    x = sample(model, pretrained_schedule(), (4, 1, 28, 28), steps=10, progress=False,
               generator=torch.Generator().manual_seed(0)).images
    assert x.shape == (4, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert x.std() > 0.1   # not a constant image


@pytest.mark.slow
@pytest.mark.skipif(not (WEIGHTS_DIR / "ddpm_mnist_quick.pt").is_file(), reason="shipped checkpoint not present")
def test_shipped_checkpoint_draws_recognisable_digits(mnist_root):
    """The weights fit the code: a change to the U-Net that the shipped weights no longer match (same
    parameter shapes, another function) would still load, but its samples would stop being digits.
    The thresholds sit well below what the checkpoint scores (see benchmarks/results/pretrained_quality.json)."""
    from dnnl import metrics

    images = sample(load_pretrained(), pretrained_schedule(), (128, 1, 28, 28), steps=50, progress=False,
                    generator=torch.Generator().manual_seed(0)).images
    q = metrics.sample_quality(images, root=mnist_root)
    assert q["confidence"] >= CONFIDENCE_FLOOR, q
    assert q["not_a_digit"] <= 0.05, q
    assert sum(c > 0 for c in q["class_histogram"]) == 10, q  # every digit appears


def test_the_schedule_is_built_directly_from_the_record(tmp_path):
    path = tmp_path / "c.pt"
    path.write_bytes(b"")
    path.with_suffix(".json").write_text(json.dumps({"config": {}}))
    torch.testing.assert_close(pretrained_schedule(path=path).betas, NoiseSchedule.linear(1000).betas, atol=0, rtol=0)
    path.with_suffix(".json").write_text(json.dumps({"config": {"schedule": "linear", "T": 300}}))
    torch.testing.assert_close(pretrained_schedule(path=path).betas, NoiseSchedule.linear(300).betas, atol=0, rtol=0)
    if (WEIGHTS_DIR / "ddpm_mnist_quick.json").is_file():
        assert pretrained_schedule().T == pretrained_info()["config"]["T"]


def test_a_training_checkpoint_loads_its_ema_weights_on_the_cpu_by_default(tiny_checkpoint):
    path, ema = tiny_checkpoint
    model = load_pretrained(path=path, device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    torch.testing.assert_close(model.stem.weight, ema.stem.weight, atol=0, rtol=0)


# --------------------------------------------------------------------------- the conditional checkpoint (chapter 7)

COND = WEIGHTS_DIR / "ddpm_mnist_cond.pt"
GUIDED_ACCURACY_FLOOR = 0.9  # share of 100 samples (10 per digit, 50 steps, w = 2) read as the requested digit; chance is 0.1, the targets measured 0.9995 (200 per digit, 100 steps)


@pytest.mark.skipif(not COND.is_file(), reason="shipped conditional checkpoint not present")
def test_shipped_conditional_checkpoint_loads_as_a_conditional_unet():
    model = load_pretrained("ddpm_mnist_cond")
    info = pretrained_info("ddpm_mnist_cond")
    assert isinstance(model, UNet) and model.num_classes == 10 and not model.training
    assert info["model"]["num_classes"] == 10 and info["config"]["p_uncond"] > 0
    assert info["init_from"].endswith("ddpm_mnist_quick.pt")  # the provenance says where it started
    assert COND.stat().st_size < 5 * 2**20  # small enough to ship
    assert model.label_emb.weight.abs().sum() > 0  # the label embedding was trained
    # the unconditional branch is the U-Net's "no label" token
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(model(x, 500), model(x, 500, torch.tensor([10, 10])), rtol=0, atol=0)


@pytest.mark.slow
@pytest.mark.skipif(not COND.is_file(), reason="shipped conditional checkpoint not present")
def test_guided_samples_of_the_shipped_conditional_checkpoint_are_the_requested_digits(mnist_root):
    """The weights fit the code and the guidance: 10 samples of each digit at w = 2 are mostly read as that digit.
    The floor sits well below what the checkpoint scores (benchmarks/results/conditional_targets.json)."""
    from dnnl import metrics
    from dnnl.models.ddpm import guided

    model = load_pretrained("ddpm_mnist_cond")
    y = torch.arange(10).repeat_interleave(10)
    images = sample(guided(model, y, 2.0), pretrained_schedule("ddpm_mnist_cond"), (100, 1, 28, 28), steps=50,
                    progress=False, generator=torch.Generator().manual_seed(0)).images
    top = metrics.predict_proba(images).argmax(dim=1)
    assert (top == y).double().mean() >= GUIDED_ACCURACY_FLOOR
