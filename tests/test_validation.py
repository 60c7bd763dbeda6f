"""One test per bad-input rule: every message names the argument and the allowed range."""
import pytest
import torch

from dnnl.models.ddpm import (NoiseSchedule, oracle_denoise, p_mean_variance, predict_x0, prior_bpd, q_posterior,
                              q_sample)

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
    with pytest.raises(ValueError, match="schedule lives on meta but x is on cpu"):
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
