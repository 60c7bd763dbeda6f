"""One test per bad-input rule: every message names the argument and the allowed range."""
import pytest
import torch

from dnnl.models.ddpm import (NoiseSchedule, oracle_denoise, p_mean_variance, p_sample_step, predict_x0, prior_bpd,
                              q_posterior, q_sample)

S = NoiseSchedule.linear()
X = torch.zeros(2, 1, 3, 3)


def test_t_out_of_range_names_the_range_and_the_convention():
    with pytest.raises(ValueError, match=r"t must be in \[0, 999\] for a schedule with T=1000 \(got 1000\).*0-based"):
        q_sample(S, X, 1000)
    with pytest.raises(ValueError, match=r"got -1"):
        q_sample(S, X, torch.tensor([-1, 3]))


def test_t_of_wrong_type_or_shape():
    with pytest.raises(TypeError, match="t must be a Python int"):
        q_sample(S, X, 3.0)
    with pytest.raises(TypeError, match="t must be a Python int"):
        q_sample(S, X, True)
    with pytest.raises(TypeError, match="integer timesteps"):
        q_sample(S, X, torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="3 timesteps but the batch has 2"):
        q_sample(S, X, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"scalar or have shape \(B,\)"):
        q_sample(S, X, torch.ones(2, 2, dtype=torch.long))


def test_non_floating_x0_is_a_type_error():
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor"):
        q_sample(S, torch.zeros(2, 3, dtype=torch.uint8), 3)
    with pytest.raises(TypeError, match="x0 must be a torch.Tensor"):
        q_sample(S, [[0.0]], 3)


def test_mismatched_shapes():
    with pytest.raises(ValueError, match="noise must have the same shape as x0"):
        q_sample(S, X, 3, torch.zeros(2, 1, 3, 4))
    with pytest.raises(ValueError, match="xt must have the same shape as x0"):
        q_posterior(S, X, torch.zeros(2, 1, 3, 4), 3)
    with pytest.raises(ValueError, match="eps must have the same shape as xt"):
        predict_x0(S, X, 3, torch.zeros(2, 1, 3, 4))
    with pytest.raises(ValueError, match="eps must have the same shape as xt"):
        p_mean_variance(S, torch.zeros(1, 1, 3, 3), X, 3)


def test_schedule_on_another_device_is_rejected():
    on_meta = S.to("meta")
    with pytest.raises(ValueError, match="schedule lives on meta but x0 is on cpu"):
        q_sample(on_meta, X, 3)


def test_schedule_argument_must_be_a_noise_schedule():
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        q_sample(torch.linspace(1e-4, 0.02, 1000), X, 3)


def test_generator_must_be_a_generator():
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        oracle_denoise(S, X, X, 3, generator=0)


def test_prior_bpd_needs_a_batch_dimension():
    with pytest.raises(ValueError, match="x0 must have at least 1 dimension"):
        prior_bpd(S, torch.tensor(0.5))


# ----------------------------------------------------------------- checks run once, at the door
_HELPERS = ("check_t", "check_tensor", "check_schedule", "check_range")


@pytest.fixture
def counts(monkeypatch):
    """Wrap every check helper, in every dnnl.models.ddpm module that imported it, with a call counter."""
    import sys
    from collections import Counter

    import dnnl.models.ddpm._validate as validate
    import dnnl.models.ddpm.schedule as schedule_module

    calls = Counter()
    originals = {name: getattr(validate, name, None) or getattr(schedule_module, name) for name in _HELPERS}

    def counted(name):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return originals[name](*args, **kwargs)
        return wrapper

    for mod_name, mod in list(sys.modules.items()):
        if mod_name.startswith("dnnl.models.ddpm") and mod is not None:
            for name in _HELPERS:
                if getattr(mod, name, None) is originals[name]:
                    monkeypatch.setattr(mod, name, counted(name))
    return calls


def test_one_reverse_step_checks_t_once(counts):
    t = torch.tensor([5, 7])
    p_sample_step(S, X, X, t, generator=torch.Generator().manual_seed(0))
    assert counts["check_t"] == 1 and counts["check_schedule"] == 1  # was nine check_t calls
    assert counts["check_tensor"] == 2                                 # xt and eps


def test_public_functions_check_once(counts):
    from dnnl.models.ddpm import ideal_score, noise_prediction_loss, vlb_terms

    q_sample(S, X, torch.tensor([1, 2]))
    assert counts["check_t"] == 1
    counts.clear()
    ideal_score(S, torch.zeros(2, 3), 5, torch.ones(4, 3))
    assert counts["check_t"] == 1 and counts["check_schedule"] == 1
    counts.clear()
    noise_prediction_loss(lambda xt, t: xt, S, X)
    assert counts["check_t"] == 0 and counts["check_range"] == 1 and counts["check_schedule"] == 1
    counts.clear()
    short = NoiseSchedule.linear(T=5)
    vlb_terms(short, lambda xt, t: torch.zeros_like(xt), X)
    # x0 once at the door; t is never re-checked; each model output is checked once (its shape).
    assert counts["check_t"] == 0 and counts["check_range"] == 1 and counts["check_schedule"] == 1
    assert counts["check_tensor"] == 1 + short.T


def test_private_step_and_unet_read_no_values():
    """On the meta device a tensor has no data, so any value read (a host–device sync on CUDA) fails."""
    from dnnl.models.ddpm import UNet
    from dnnl.models.ddpm.diffusion import _p_sample_step, _q_sample
    from dnnl.models.ddpm.losses import _noise_prediction_loss

    meta = NoiseSchedule.linear().to("meta")
    x = torch.zeros(2, 1, 8, 8, device="meta")
    t = torch.tensor([3, 999]).to("meta")
    model = UNet(channels=(8, 16), groups=4, heads=2).to("meta")
    assert model(x, t).device.type == "meta" and model(x, 3).shape == x.shape
    assert _p_sample_step(meta, x, x, t).device.type == "meta"
    assert _p_sample_step(meta, x, x, 0).device.type == "meta"
    assert _q_sample(meta, x, t, x).device.type == "meta"
    assert _noise_prediction_loss(model, meta, x).device.type == "meta"
    with pytest.raises(NotImplementedError):  # the public door does read the range of t, once
        p_sample_step(meta, x, x, t)


def test_numpy_integers_are_accepted_where_ints_are():
    import numpy as np

    from dnnl.models.ddpm import UNet, ideal_eps

    assert torch.equal(q_sample(S, X, np.int64(3), torch.ones_like(X)), q_sample(S, X, 3, torch.ones_like(X)))
    assert NoiseSchedule.linear(np.int32(10)).T == 10 and NoiseSchedule.cosine(np.int64(10)).T == 10
    assert torch.equal(NoiseSchedule.respaced(S, np.array([0, 10, 20])).betas,
                       NoiseSchedule.respaced(S, [0, 10, 20]).betas)
    assert S.gather("betas", np.int16(5), X).shape == (1, 1, 1, 1)
    model = UNet(in_channels=np.int64(1), channels=(np.int64(8), 16), groups=np.int64(4), heads=2)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(model(x, np.int64(4)), model(x, 4))
    data = torch.randn(5, 3)
    assert torch.equal(ideal_eps(S, data[:2], np.int64(7), data, chunk_size=np.int64(2)),
                       ideal_eps(S, data[:2], 7, data, chunk_size=2))
    import dnnl
    dnnl.set_seed(np.int64(3))
    a = torch.rand(1)
    dnnl.set_seed(3)
    assert torch.equal(a, torch.rand(1))
