import math

import pytest
import torch

from dnnl.models.ddpm import UNet, sinusoidal_embedding


def small(**kw):
    return UNet(channels=(8, 16, 16), groups=4, heads=2, **kw)


@pytest.mark.parametrize("side", [28, 32])
@pytest.mark.parametrize("c", [1, 3])
def test_output_has_input_shape(side, c):
    torch.manual_seed(0)
    model = small(in_channels=c, out_channels=c)
    x = torch.randn(2, c, side, side)
    out = model(x, torch.tensor([0, 999]))
    assert out.shape == x.shape and out.dtype == torch.float32


def test_non_square_and_four_levels():
    model = UNet(channels=(8, 8, 16, 16), groups=4, heads=2)
    assert model(torch.randn(1, 1, 32, 16), 5).shape == (1, 1, 32, 16)


def test_output_depends_on_t_and_x_once_trained_weights_are_nonzero():
    torch.manual_seed(0)
    model = small()
    for p in model.parameters():  # zero-initialised output layers would hide the dependence
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(1, 1, 28, 28)
    assert not torch.allclose(model(x, 1), model(x, 500))
    assert not torch.allclose(model(x, 1), model(x + 0.1, 1))


def test_fresh_model_predicts_zero_noise():
    model = small()
    assert torch.equal(model(torch.randn(2, 1, 28, 28), 3), torch.zeros(2, 1, 28, 28))


def test_int_and_zero_dim_t_broadcast_like_a_batch():
    torch.manual_seed(0)
    model = small()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(3, 1, 28, 28)
    ref = model(x, torch.full((3,), 7, dtype=torch.long))
    assert torch.allclose(model(x, 7), ref)
    assert torch.allclose(model(x, torch.tensor(7)), ref)
    assert torch.allclose(model(x, torch.tensor([7])), ref)


def test_batch_elements_are_independent():
    torch.manual_seed(0)
    model = small()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([0, 10, 100, 999])
    full = model(x, t)
    assert torch.allclose(model(x[2:3], t[2:3]), full[2:3], atol=1e-5)


def test_side_not_divisible_is_a_clear_error():
    model = small()
    with pytest.raises(ValueError, match=r"30x30.*divisible by 2\*\*2 = 4"):
        model(torch.randn(1, 1, 30, 30), 0)
    with pytest.raises(ValueError, match="28x28.*divisible by 2\\*\\*3 = 8"):
        UNet(channels=(8, 8, 8, 8), groups=4, heads=2, image_size=28)


def test_bad_inputs_are_rejected():
    model = small()
    x = torch.randn(2, 1, 28, 28)
    with pytest.raises(TypeError, match="integer timesteps"):
        model(x, torch.tensor([0.5, 1.0]))
    with pytest.raises(TypeError, match="int or an int64 tensor"):
        model(x, 1.0)
    with pytest.raises(ValueError, match=r"shape \(B,\) = \(2,\)"):
        model(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=">= 0"):
        model(x, -1)
    with pytest.raises(ValueError, match="in_channels=1"):
        model(torch.randn(2, 3, 28, 28), 0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(torch.randn(1, 28, 28), 0)
    with pytest.raises(ValueError, match="divisible by groups"):
        UNet(channels=(12, 16), groups=8)


def test_sinusoidal_embedding_values_and_shape():
    t = torch.tensor([0, 1, 999])
    emb = sinusoidal_embedding(t, 16)
    assert emb.shape == (3, 16) and emb.dtype == torch.float32
    assert torch.equal(emb[0], torch.cat([torch.zeros(8), torch.ones(8)]))  # sin 0, cos 0
    k = torch.arange(8, dtype=torch.float64)
    freqs = torch.exp(-math.log(10_000) * k / 8)
    expected = torch.cat([torch.sin(999 * freqs), torch.cos(999 * freqs)]).float()
    assert torch.allclose(emb[2], expected, atol=1e-4)
    assert torch.allclose(emb.pow(2).sum(1), torch.full((3,), 8.0))  # sin² + cos² per frequency
    assert sinusoidal_embedding(5, 4).shape == (1, 4)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(t, 7)


def test_distinct_timesteps_get_distinct_embeddings():
    emb = sinusoidal_embedding(torch.arange(1000), 32)
    dists = torch.cdist(emb, emb) + torch.eye(1000) * 1e9
    assert dists.min() > 1e-3


def test_float_inputs_of_other_dtypes_are_cast_to_the_model_dtype():
    torch.manual_seed(0)
    model = small()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(2, 1, 28, 28)
    ref = model(x, 5)
    assert ref.dtype == torch.float32
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        out = model(x.to(dtype), 5)
        assert out.dtype == torch.float32 and out.shape == x.shape, dtype
        assert torch.allclose(out, model(x.to(dtype).float(), 5)), dtype
    assert torch.equal(model(x.double(), 5), ref)   # float64 -> float32 is exact for float32-born data
    double = small().double()
    assert double(x, 5).dtype == torch.float64
    for dtype in (torch.long, torch.bool):
        with pytest.raises(TypeError, match=r"x must be a floating-point tensor"):
            model(x.to(dtype), 5)


# --------------------------------------------------------------------------- conditional U-Net (chapter 7)

def _randomised(model, seed=0):
    """Random non-zero weights everywhere (the zero-initialised layers would hide every dependence)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model


def test_num_classes_none_keeps_the_unconditional_parameters_and_keys():
    torch.manual_seed(0)
    plain = small()
    torch.manual_seed(0)
    none = small(num_classes=None)
    torch.manual_seed(0)
    cond = small(num_classes=10)
    assert list(none.state_dict()) == list(plain.state_dict())
    assert not hasattr(none, "label_emb") and none.num_classes is None
    for (k, a), b in zip(plain.state_dict().items(), none.state_dict().values()):
        assert torch.equal(a, b), k
    # the conditional model adds exactly one tensor, (num_classes + 1) x time_dim, and draws no random numbers
    extra = set(cond.state_dict()) - set(plain.state_dict())
    assert extra == {"label_emb.weight"} and cond.label_emb.weight.shape == (11, 4 * 8)
    for k, v in plain.state_dict().items():
        assert torch.equal(cond.state_dict()[k], v), k
    # an unconditional state dict loads strictly into an unconditional model built with num_classes=None
    none.load_state_dict(plain.state_dict(), strict=True)


def test_conditional_output_has_the_input_shape():
    model = _randomised(small(num_classes=10))
    x = torch.randn(3, 1, 28, 28)
    for y in (None, 4, torch.tensor([0, 9, 10])):
        out = model(x, torch.tensor([0, 500, 999]), y)
        assert out.shape == x.shape and out.dtype == torch.float32


def test_zero_label_embedding_makes_the_conditional_model_the_unconditional_one():
    plain = _randomised(small())
    cond = small(num_classes=10)
    missing, unexpected = cond.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["label_emb.weight"] and unexpected == []
    assert torch.equal(cond.label_emb.weight, torch.zeros(11, 32))  # still zero after loading
    x, t = torch.randn(4, 1, 28, 28), torch.tensor([3, 100, 600, 999])
    ref = plain(x, t)
    for y in (None, torch.tensor([0, 3, 9, 10]), 7):
        assert torch.equal(cond(x, t, y), ref)


def test_the_label_changes_the_output_once_the_embedding_is_trained():
    model = _randomised(small(num_classes=10))
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10, 10])
    a, b = model(x, t, torch.tensor([1, 1])), model(x, t, torch.tensor([2, 1]))
    assert not torch.allclose(a[0], b[0]) and torch.equal(a[1], b[1])  # only the example whose label changed
    # y=None is the "no label" token num_classes, for every example
    assert torch.equal(model(x, t), model(x, t, torch.tensor([10, 10])))
    assert torch.equal(model(x, t, 3), model(x, t, torch.tensor([3, 3])))


@pytest.mark.parametrize("y, error, match", [
    (torch.tensor([0, 11]), ValueError, r"y must be in \[0, 10\] \(got 11\); 10 is the 'no label' token"),
    (torch.tensor([-1, 2]), ValueError, r"y must be in \[0, 10\] \(got -1\)"),
    (11, ValueError, r"y must be in \[0, 10\]"),
    (torch.tensor([1.0, 2.0]), TypeError, "y must hold integer class labels"),
    (torch.tensor([True, False]), TypeError, "y must hold integer class labels"),
    (torch.tensor([1, 2, 3]), ValueError, r"y must have shape \(B,\) = \(2,\)"),
    (torch.tensor(1), ValueError, r"y must have shape \(B,\)"),
    ("3", TypeError, "y must be None, an int or an int64 tensor"),
    (True, TypeError, "y must be None, an int or an int64 tensor"),
])
def test_bad_labels_are_refused_with_their_name(y, error, match):
    model = small(num_classes=10)
    with pytest.raises(error, match=match):
        model(torch.randn(2, 1, 28, 28), 5, y)


def test_an_unconditional_model_refuses_a_label():
    with pytest.raises(ValueError, match=r"y must be None: this U-Net is unconditional \(num_classes=None\)"):
        small()(torch.randn(2, 1, 28, 28), 5, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="num_classes"):
        small(num_classes=0)
    with pytest.raises(TypeError, match="num_classes"):
        small(num_classes=2.5)


def test_attention_flag_says_whether_the_middle_has_self_attention():
    for attention in (True, False):
        net = UNet(channels=(8, 16), attention=attention)
        assert net.attention is attention
        assert isinstance(net.mid_attn, torch.nn.Identity) is not attention
