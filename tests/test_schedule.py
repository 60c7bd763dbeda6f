"""NoiseSchedule buffers against the float64 closed forms and the reference values."""
import math

import pytest
import torch

from dnnl.models.ddpm import NoiseSchedule


@pytest.fixture(scope="module")
def lin():
    return NoiseSchedule.linear()


@pytest.fixture(scope="module")
def cos():
    return NoiseSchedule.cosine()


def close(a, b, rel=1e-7, abs_=0.0):
    return math.isclose(float(a), b, rel_tol=rel, abs_tol=abs_)


def test_every_buffer_is_float64_and_length_T(lin, cos):
    for s in (lin, cos):
        for name in ("betas", "alphas", "alpha_bars", "alpha_bars_prev", "posterior_variance",
                     "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2"):
            buf = getattr(s, name)
            assert buf.dtype == torch.float64, name
            assert buf.shape == (s.T,), name


def test_linear_reference_values(lin):
    assert lin.T == 1000
    assert close(lin.betas[0], 1e-4) and close(lin.betas[1], 1.19919920e-4) and close(lin.betas[999], 0.02)
    assert close(lin.alpha_bars[0], 0.9999, rel=1e-12)
    assert close(lin.alpha_bars[499], 0.078587243)
    assert close(lin.alpha_bars[999], 4.0358298e-5)
    assert close(lin.alpha_bars[999] ** 0.5, 0.0063528181)
    assert lin.posterior_variance[0] == 0
    assert close(lin.posterior_variance[1], 5.4531877e-5)
    assert close(lin.posterior_log_variance_clipped[1], -9.8167251)
    assert close(lin.posterior_variance[999], 0.019999984)
    assert close(lin.posterior_mean_coef1[0], 1.0, rel=1e-12) and lin.posterior_mean_coef2[0] == 0
    assert close(lin.posterior_mean_coef1[1], 0.54529150) and close(lin.posterior_mean_coef2[1], 0.45470850)
    assert close(lin.posterior_mean_coef1[999], 1.2835149e-4) and close(lin.posterior_mean_coef2[999], 0.98994868)


def test_log_variance_at_index_0_is_clipped_to_index_1(lin):
    assert lin.posterior_log_variance_clipped[0] == lin.posterior_log_variance_clipped[1]
    sigma0 = math.exp(0.5 * float(lin.posterior_log_variance_clipped[0]))
    assert close(sigma0, 0.0073845702) and not close(sigma0, 0.01, rel=1e-3)


def test_buffers_match_closed_forms_elementwise(lin, cos):
    for s in (lin, cos):
        b = s.betas
        ab = torch.tensor([math.prod(1 - float(x) for x in b[: i + 1]) for i in range(0, s.T, 97)], dtype=torch.float64)
        assert torch.allclose(s.alpha_bars[::97], ab, rtol=1e-11, atol=0)
        assert torch.equal(s.alphas, 1 - b)
        assert s.alpha_bars_prev[0] == 1 and torch.equal(s.alpha_bars_prev[1:], s.alpha_bars[:-1])
        pv = b[1:] * (1 - s.alpha_bars[:-1]) / (1 - s.alpha_bars[1:])
        assert torch.allclose(s.posterior_variance[1:], pv, rtol=1e-12)
        c1 = b * s.alpha_bars_prev.sqrt() / (1 - s.alpha_bars)
        c2 = (1 - s.alpha_bars_prev) * (1 - b).sqrt() / (1 - s.alpha_bars)
        assert torch.allclose(s.posterior_mean_coef1, c1, rtol=1e-12)
        assert torch.allclose(s.posterior_mean_coef2, c2, rtol=1e-12)


def test_cosine_reference_values(cos):
    assert close(cos.betas[0], 4.1284225e-5)
    assert close(cos.betas[999], 0.999, rel=1e-12)
    assert close(cos.betas[998], 0.74999939)
    assert (cos.betas[:999] < 0.999).all(), "only the last beta is clipped"
    assert close(cos.alpha_bars[999], 2.4287669e-9, rel=1e-6)
    c4 = NoiseSchedule.cosine(T=4000)
    assert close(c4.betas[0], 9.8658e-6, rel=1e-4) and close(c4.alpha_bars[-1], 1.518e-10, rel=1e-3)
    assert math.sqrt(float(cos.betas[0])) < 1 / 127.5


def test_cosine_alpha_bar_is_the_squared_cosine(cos):
    s = 0.008
    t = torch.arange(1, 1000, dtype=torch.float64)
    f = torch.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    assert torch.allclose(cos.alpha_bars[:999], f / f0, rtol=1e-10)


def test_float32_gather_error_budget(lin):
    x = torch.zeros(1000, dtype=torch.float32)
    t = torch.arange(1000)
    ab32 = lin.gather("alpha_bars", t, x).flatten().double()
    assert ((ab32 - lin.alpha_bars).abs() / lin.alpha_bars).max() <= 4e-7
    pv32 = lin.gather("posterior_variance", t[1:], x[1:]).flatten().double()
    assert ((pv32 - lin.posterior_variance[1:]).abs() / lin.posterior_variance[1:]).max() <= 5e-4


def test_gather_casts_and_broadcasts(lin):
    x = torch.zeros(3, 1, 2, 2, dtype=torch.float32)
    g = lin.gather("alpha_bars", torch.tensor([0, 5, 999]), x)
    assert g.shape == (3, 1, 1, 1) and g.dtype == torch.float32
    assert lin.gather("alpha_bars", 7, x).shape == (1, 1, 1, 1)


def test_snr_is_decreasing(lin, cos):
    for s in (lin, cos):
        snr = s.snr()
        assert (snr[1:] < snr[:-1]).all()
        assert torch.allclose(snr, s.alpha_bars / (1 - s.alpha_bars))


def test_respaced_schedule_keeps_alpha_bar_at_visited_steps(lin):
    taus = torch.arange(0, 1000, 20)
    r = NoiseSchedule.respaced(lin, taus)
    assert r.T == 50
    assert torch.allclose(r.alpha_bars, lin.alpha_bars[taus], rtol=1e-12)
    assert math.isclose(float(r.betas[1]), 1 - float(lin.alpha_bars[20] / lin.alpha_bars[0]), rel_tol=1e-12)


@pytest.mark.parametrize("betas, match", [
    (torch.full((2, 3), 0.1), "1-D"),
    (torch.tensor([0.1]), "at least 2"),
    (torch.tensor([0.1, float("nan")]), "finite"),
    (torch.tensor([0.1, float("inf")]), "finite"),
    (torch.tensor([0.0, 0.1]), r"\(0, 1\)"),
    (torch.tensor([0.1, 1.0]), r"\(0, 1\)"),
    (torch.tensor([-0.1, 0.5]), r"\(0, 1\)"),
])
def test_invalid_betas_raise_value_error(betas, match):
    with pytest.raises(ValueError, match=match):
        NoiseSchedule(betas)


def test_invalid_constructor_arguments():
    with pytest.raises(ValueError, match="T must be an int >= 2"):
        NoiseSchedule.linear(T=1)
    with pytest.raises(TypeError, match="T must be an int"):
        NoiseSchedule.linear(T=10.0)
    with pytest.raises(ValueError, match="beta_start"):
        NoiseSchedule.linear(beta_start=0.5, beta_end=0.1)
    with pytest.raises(ValueError, match="max_beta"):
        NoiseSchedule.cosine(max_beta=1.0)
    with pytest.raises(TypeError, match="betas"):
        NoiseSchedule("abc")


def test_schedule_accepts_float32_betas_but_stores_float64():
    s = NoiseSchedule(torch.linspace(1e-4, 0.02, 1000))
    assert s.betas.dtype == torch.float64


def test_to_moves_every_tensor_attribute_including_new_ones():
    s = NoiseSchedule.linear(T=10)
    s.extra_buffer = torch.ones(10, dtype=torch.float64)   # a buffer a later version might add
    s.label = "linear"
    moved = s.to("meta")
    assert set(moved.buffers()) == set(s.buffers()) and "extra_buffer" in moved.buffers()
    for name, value in moved.buffers().items():
        assert value.device.type == "meta" and value.dtype == torch.float64, name
    assert moved.T == 10 and moved.label == "linear" and moved.device.type == "meta"
    back = s.to(torch.device("cpu"))
    assert all(torch.equal(back.buffers()[n], v) for n, v in s.buffers().items())
    assert s.betas.device.type == "cpu"   # the original is untouched


def test_buffers_lists_every_derived_coefficient():
    names = set(NoiseSchedule.linear(T=10).buffers())
    assert {"betas", "alphas", "alpha_bars", "alpha_bars_prev", "sqrt_alpha_bars", "sqrt_one_minus_alpha_bars",
            "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1",
            "posterior_mean_coef2"} <= names
