"""Tests for dnnl.metrics: the Fréchet distance against closed forms, and the shipped classifier."""
from __future__ import annotations

import math

import pytest
import torch

from dnnl import metrics
from dnnl.data import mnist_tensors
from dnnl.metrics import (frechet_distance, frechet_distance_from_stats, feature_stats, load_classifier,
                          sample_quality)


def exact_moments(n: int, d: int, seed: int) -> torch.Tensor:
    """n points in d dims whose sample mean is exactly 0 and sample covariance exactly I (float64)."""
    z = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = z - z.mean(0)
    chol = torch.linalg.cholesky(torch.cov(z.T))
    return torch.linalg.solve_triangular(chol, z.T, upper=False).T


# --------------------------------------------------------------------------- Fréchet distance

def test_identical_feature_sets_have_zero_distance():
    feats = torch.randn(500, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64) ** 2
    feats[:, :10] = 0.0        # dead units, as after a ReLU: a singular covariance
    feats[:, 10:20] *= 1e-4    # and a wide spread of scales
    scale = 2 * feats.var(0).sum().item()
    assert frechet_distance(feats, feats.clone()) / scale < 1e-6
    assert frechet_distance(feats.float(), feats.float()) / scale < 1e-6


def test_distance_of_gaussians_with_exact_moments_is_the_closed_form():
    """N(0, I) against N(μ, diag(s²)): FD = ‖μ‖² + Σ_i (1 − s_i)²."""
    d = 16
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    s = torch.rand(d, generator=g, dtype=torch.float64) * 2 + 0.1
    a = exact_moments(300, d, seed=2)
    b = mu + exact_moments(400, d, seed=3) * s
    m_b, c_b = feature_stats(b)
    torch.testing.assert_close(m_b, mu)
    torch.testing.assert_close(c_b, torch.diag(s**2))
    expected = (mu**2).sum().item() + ((1 - s) ** 2).sum().item()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(b, a) == pytest.approx(expected, rel=1e-10)


def test_distance_for_full_covariances_matches_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    d = 12
    g = torch.Generator().manual_seed(4)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    b = torch.randn(d, 3, generator=g, dtype=torch.float64)
    cov_a = a @ a.T / d
    cov_b = b @ b.T + 0.1 * torch.eye(d, dtype=torch.float64)   # not commuting with cov_a
    mu_a = torch.randn(d, generator=g, dtype=torch.float64)
    mu_b = torch.randn(d, generator=g, dtype=torch.float64)
    cross = scipy_linalg.sqrtm((cov_a @ cov_b).numpy()).real.trace()
    expected = ((mu_a - mu_b) ** 2).sum().item() + cov_a.trace().item() + cov_b.trace().item() - 2 * cross
    assert frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b) == pytest.approx(expected, rel=1e-9)


def test_monte_carlo_distance_approaches_the_closed_form():
    """20,000 draws a side, D = 8: over 30 seeds the error had mean 0.0004 and sd 0.06; allow 0.25 (4 sd)."""
    d, n = 8, 20_000
    g = torch.Generator().manual_seed(5)
    mu = torch.linspace(-1, 1, d, dtype=torch.float64)
    s = torch.linspace(0.5, 2.0, d, dtype=torch.float64)
    a = torch.randn(n, d, generator=g, dtype=torch.float64)
    b = mu + s * torch.randn(n, d, generator=g, dtype=torch.float64)
    expected = (mu**2).sum().item() + ((1 - s) ** 2).sum().item()   # 3.43 + 1.43
    assert abs(frechet_distance(a, b) - expected) < 0.25


def test_distance_grows_with_the_mean_shift_and_is_never_negative():
    base = torch.randn(1000, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    values = [frechet_distance(base, base + shift) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert values[0] < 1e-12 and all(v >= 0 for v in values)
    for shift, v in zip((0.5, 1.0, 2.0), values[1:]):
        assert v == pytest.approx(4 * shift**2, rel=1e-9)   # a pure shift by shift·1 in 4 dims


@pytest.mark.parametrize("a,b,error,match", [
    (torch.zeros(10, 3), torch.zeros(10, 4), ValueError, "same feature size"),
    (torch.zeros(1, 3), torch.zeros(10, 3), ValueError, "N >= 2"),
    (torch.zeros(10), torch.zeros(10, 3), ValueError, r"shape \(N, D\)"),
    (torch.full((10, 3), float("nan")), torch.zeros(10, 3), ValueError, "NaN"),
    ([[0.0, 1.0]], torch.zeros(10, 2), TypeError, "torch.Tensor"),
])
def test_bad_feature_sets_raise_clear_errors(a, b, error, match):
    with pytest.raises(error, match=match):
        frechet_distance(a, b)


# --------------------------------------------------------------------------- the shipped classifier

@pytest.fixture(scope="module")
def classifier():
    if not metrics.CLASSIFIER_PATH.is_file():
        pytest.skip("classifier weights missing: run python benchmarks/train_classifier.py")
    return load_classifier()


@pytest.fixture(scope="module")
def test_images(mnist_root):
    images, labels = mnist_tensors("test", mnist_root)
    return images[:2000], labels[:2000]


def test_shipped_classifier_is_accurate(classifier, test_images):
    images, labels = test_images
    probs = metrics.predict_proba(images, classifier)
    assert probs.shape == (2000, 11)   # digits 0-9 and "not a digit"
    torch.testing.assert_close(probs.sum(1), torch.ones(2000, dtype=torch.float64))
    assert (probs.argmax(1) == labels).double().mean().item() >= 0.98
    info = metrics.classifier_info()
    assert info["test_accuracy"] >= 0.98 and info["train_split"] == "train[:50000]"
    assert info["not_a_digit_accuracy"] >= 0.95


def test_real_digits_are_read_confidently_and_noise_is_far(classifier, test_images, mnist_root):
    images, labels = test_images
    first, second = images[:1000], images[1000:]
    real = sample_quality(first, reference=second, classifier=classifier)
    assert real["confidence"] > 0.9 and real["not_a_digit"] < 0.02
    assert sum(real["class_histogram"]) == round(1000 * (1 - real["not_a_digit"]))
    assert real["class_histogram"] == torch.bincount(
        metrics.predict_proba(first, classifier).argmax(1), minlength=11)[:10].tolist()
    noise = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(7)) * 2 - 1
    fake = sample_quality(noise, reference=second, classifier=classifier)
    assert fake["fd"] > 20 * real["fd"] and fake["fd"] > 1.0
    assert fake["confidence"] < 0.05 and fake["not_a_digit"] > 0.95   # noise is not read as a digit
    same = sample_quality(first, reference=first, classifier=classifier)
    assert same["fd"] < 1e-6 * real["fd"] + 1e-9


def test_features_are_the_penultimate_layer(classifier, test_images):
    images = test_images[0][:50]
    feats = metrics.extract_features(images, classifier)
    assert feats.shape == (50, 128) and feats.dtype == torch.float64
    logits = classifier.head(feats.float())
    torch.testing.assert_close(logits, classifier(images), atol=1e-5, rtol=1e-5)


def test_real_vs_real_calibration_is_small_against_noise(classifier, mnist_root):
    cal = metrics.real_vs_real(500, root=mnist_root)  # the default classifier is the shipped one
    assert cal["n"] == 500 and cal["n_reference"] == 10_000
    assert math.isfinite(cal["fd"]) and cal["fd"] > 0
    assert cal["confidence"] > 0.9
    with pytest.raises(ValueError, match=r"n must be an int in \[2, 10000\]"):
        metrics.real_vs_real(1, root=mnist_root)


def test_metric_input_errors(classifier):
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        sample_quality(torch.zeros(4, 1, 32, 32), classifier=classifier)
    with pytest.raises(TypeError, match="to_model_range"):
        sample_quality(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), classifier=classifier)
    with pytest.raises(TypeError, match="features"):
        sample_quality(torch.zeros(4, 1, 28, 28), classifier=torch.nn.Linear(2, 2))
    with pytest.raises(FileNotFoundError, match="train_classifier.py"):
        load_classifier("/nonexistent/mnist_classifier.pt")
