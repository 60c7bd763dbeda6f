"""The min-SNR-γ weighting of L_simple (Eq. @eq-ch4-min-snr): weights, the weighted loss, the config and the loop."""
import math

import numpy as np
import pytest
import torch

from dnnl.models.ddpm import NoiseSchedule, min_snr_weights, noise_prediction_loss, q_sample
from dnnl.models.ddpm.train import TrainConfig, train, train_step


@pytest.mark.parametrize("schedule", [NoiseSchedule.linear(), NoiseSchedule.cosine()], ids=["linear", "cosine"])
@pytest.mark.parametrize("gamma", [1.0, 5.0, 20.0])
def test_weights_match_the_float64_closed_form(schedule, gamma):
    betas = schedule.betas.numpy()
    alpha_bar = np.cumprod(1 - betas)
    snr = alpha_bar / (1 - alpha_bar)
    expected = np.minimum(snr, gamma) / snr
    w = min_snr_weights(schedule, gamma)
    assert w.dtype == torch.float64 and w.shape == (schedule.T,)
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-12)
    # 1 wherever the image is noisier than SNR = gamma, below 1 only at the faint-noise end, never rising towards t = 0
    assert torch.all(w[torch.from_numpy(snr <= gamma)] == 1) and w.min() < 1
    assert torch.all(torch.diff(w) >= 0)


def test_weighted_loss_matches_a_manual_draw():
    s = NoiseSchedule.linear()
    x0 = torch.rand(64, 3, dtype=torch.float64) * 2 - 1
    model = lambda xt, t: 0.5 * xt  # noqa: E731
    loss = noise_prediction_loss(model, s, x0, generator=torch.Generator().manual_seed(1), min_snr_gamma=5.0)
    g = torch.Generator().manual_seed(1)
    t = torch.randint(0, 1000, (64,), generator=g)
    noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    xt = q_sample(s, x0, t, noise)
    snr = s.alpha_bars[t] / (1 - s.alpha_bars[t])
    manual = (torch.clamp(snr, max=5.0) / snr * ((model(xt, t) - noise) ** 2).mean(1)).mean()
    assert math.isclose(loss.item(), manual.item(), rel_tol=1e-12)
    unweighted = noise_prediction_loss(model, s, x0, generator=torch.Generator().manual_seed(1))
    assert loss.item() < unweighted.item()  # every weight is at most 1 and some are far below


def test_a_gamma_above_every_snr_is_plain_l_simple():
    s = NoiseSchedule.linear()
    x0 = torch.rand(32, 1, 4, 4, dtype=torch.float64) * 2 - 1
    model = lambda xt, t: 0.3 * xt  # noqa: E731
    big = float(s.snr().max()) * 2
    a = noise_prediction_loss(model, s, x0, generator=torch.Generator().manual_seed(4), min_snr_gamma=big)
    b = noise_prediction_loss(model, s, x0, generator=torch.Generator().manual_seed(4))
    assert math.isclose(a.item(), b.item(), rel_tol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, -1.0, math.nan])
def test_bad_gamma_names_the_argument(gamma):
    with pytest.raises(ValueError, match="min_snr_gamma"):
        min_snr_weights(NoiseSchedule.linear(), gamma)
    with pytest.raises(ValueError, match="min_snr_gamma"):
        noise_prediction_loss(lambda x, t: x, NoiseSchedule.linear(), torch.zeros(2, 2), min_snr_gamma=gamma)
    with pytest.raises(ValueError, match="min_snr_gamma"):
        TrainConfig(min_snr_gamma=gamma)


def test_train_step_refuses_weights_of_the_wrong_shape():
    s = NoiseSchedule.linear(T=10)
    lin = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"loss_weights must be None or a tensor of shape \(T,\) = \(10,\)"):
        train_step(lambda x, t: lin(x), s, torch.zeros(4, 2), opt, loss_weights=torch.ones(9))


def test_the_loop_trains_with_the_weighting_and_resumes_bit_identically(tmp_path, mnist_root):
    kw = dict(data_root=mnist_root, steps=4, batch_size=8, subset=64, warmup=1, channels=(8, 16), attention=False,
              log_every=1, checkpoint_every=2, decay_steps=4, min_snr_gamma=5.0)
    whole = train(TrainConfig(**kw, out_dir=str(tmp_path / "a")), progress=False)
    train(TrainConfig(**{**kw, "steps": 2}, out_dir=str(tmp_path / "b")), progress=False)
    split = train(TrainConfig(**kw, out_dir=str(tmp_path / "b")), resume=True, progress=False)
    assert whole.losses == split.losses
    plain = train(TrainConfig(**{**kw, "min_snr_gamma": None}, out_dir=str(tmp_path / "c")), progress=False)
    assert plain.losses != whole.losses  # the same draws, weighted differently
