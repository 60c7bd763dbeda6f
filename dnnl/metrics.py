"""Sample quality for MNIST: a Fréchet distance on the features of a small shipped classifier.

The FID of Heusel et al. (2017) compares Inception features; here a small CNN trained on MNIST
(``benchmarks/train_classifier.py``) plays that role, so everything runs offline on a CPU.
A distance means little on its own: :func:`real_vs_real` gives the value two sets of *real*
digits reach with the same code, which is the floor a generator can hope for.

The classifier has an eleventh class, "not a digit", trained on noise, blobs, blanks and heavily
noised digits. Without it a CNN reads pure noise as some digit with > 99% probability, and the
share of confidently classified samples would say nothing about whether they are digits.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from . import data as _data
from .models.ddpm._validate import check_int, check_range

__all__ = [
    "MNISTClassifier", "load_classifier", "classifier_info", "CLASSIFIER_PATH",
    "extract_features", "predict_proba",
    "frechet_distance", "frechet_distance_from_stats", "feature_stats",
    "reference_features", "sample_quality", "real_vs_real",
    "CONFIDENCE_THRESHOLD", "CLASSIFIER_TRAIN_SIZE", "NOT_A_DIGIT",
]

CLASSIFIER_PATH = Path(__file__).resolve().parent / "weights" / "mnist_classifier.pt"
CONFIDENCE_THRESHOLD = 0.9
CLASSIFIER_TRAIN_SIZE = 50_000  # the classifier sees train[:50000]; train[50000:] is held out
NOT_A_DIGIT = 10  # index of the extra "not a digit" class


class MNISTClassifier(nn.Module):
    """A small CNN for 28×28 digits in [-1, 1]: classes 0-9 and 10 = "not a digit".

    ``features`` is its 128-d penultimate layer, the space the Fréchet distance is measured in.
    """

    def __init__(self, feature_dim: int = 128, dropout: float = 0.3, num_classes: int = 11):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 32 × 14 × 14
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 64 × 7 × 7
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [-1, 1] -> (B, feature_dim) penultimate activations."""
        return self.fc(self.conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [-1, 1] -> (B, num_classes) logits."""
        return self.head(self.features(x))


# --------------------------------------------------------------------------- classifier weights

def classifier_info(path: str | os.PathLike | None = None) -> dict:
    """The JSON record written next to the classifier weights (accuracy, seed, machine, time)."""
    path = Path(path) if path is not None else CLASSIFIER_PATH
    record = path.with_suffix(".json")
    if not record.is_file():
        raise FileNotFoundError(f"no classifier record at {record}; run `python benchmarks/train_classifier.py`")
    return json.loads(record.read_text())


def load_classifier(path: str | os.PathLike | None = None, device: torch.device | str | None = None
                    ) -> MNISTClassifier:
    """The shipped MNIST classifier (``dnnl/weights/mnist_classifier.pt``) in eval mode."""
    path = Path(path) if path is not None else CLASSIFIER_PATH
    if not path.is_file():
        raise FileNotFoundError(f"classifier weights not found at {path}; "
                                "run `python benchmarks/train_classifier.py` to train them (about 3 min on a CPU)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    feature_dim, num_classes = state["fc.1.weight"].shape[0], state["head.1.weight"].shape[0]
    model = MNISTClassifier(feature_dim=feature_dim, num_classes=num_classes)
    model.load_state_dict(state)
    return model.to(device if device is not None else "cpu").eval()


_DEFAULT_CLASSIFIER: dict[str, MNISTClassifier] = {}


def _classifier(classifier: nn.Module | None) -> nn.Module:
    if classifier is not None:
        if not isinstance(classifier, nn.Module) or not hasattr(classifier, "features"):
            raise TypeError("classifier must be an nn.Module with a features(x) method, "
                            f"such as dnnl.metrics.load_classifier() (got {type(classifier).__name__})")
        return classifier
    if "default" not in _DEFAULT_CLASSIFIER:
        _DEFAULT_CLASSIFIER["default"] = load_classifier()
    return _DEFAULT_CLASSIFIER["default"]


# --------------------------------------------------------------------------- data and features

def _check_images(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, 1, 28, 28) in [-1, 1] "
                        f"(got {type(images).__name__})")
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"{name} must have shape (N, 1, 28, 28) (got {tuple(images.shape)}); "
                         "the classifier was trained on single-channel 28×28 MNIST digits")
    if images.shape[0] < 2:
        raise ValueError(f"{name} must hold at least 2 images to estimate a covariance (got {images.shape[0]})")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [-1, 1] (got dtype {images.dtype}); "
                        "use dnnl.data.to_model_range for uint8 images")
    check_range(images, name)  # the classifier was trained on digits in [-1, 1]
    return images


@torch.no_grad()
def _run(classifier: nn.Module, images: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    was_training = classifier.training
    classifier.eval()
    device = next(classifier.parameters()).device
    feats, probs = [], []
    try:
        for chunk in images.split(batch_size):
            h = classifier.features(chunk.to(device, torch.float32))
            feats.append(h.double().cpu())
            probs.append(torch.softmax(classifier.head(h).double(), dim=1).cpu())
    finally:
        classifier.train(was_training)
    return torch.cat(feats), torch.cat(probs)


def extract_features(images: torch.Tensor, classifier: nn.Module | None = None, *,
                     batch_size: int = 1000) -> torch.Tensor:
    """Penultimate-layer features (N, 128), float64 on the CPU, of images (N, 1, 28, 28) in [-1, 1]."""
    return _run(_classifier(classifier), _check_images(images), check_int(batch_size, "batch_size"))[0]


def predict_proba(images: torch.Tensor, classifier: nn.Module | None = None, *,
                  batch_size: int = 1000) -> torch.Tensor:
    """Class probabilities (N, 11), float64, of images (N, 1, 28, 28) in [-1, 1]; column 10 is "not a digit"."""
    return _run(_classifier(classifier), _check_images(images), check_int(batch_size, "batch_size"))[1]


# --------------------------------------------------------------------------- Fréchet distance

def _check_features(feats: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(feats, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, D) (got {type(feats).__name__})")
    if feats.dim() != 2 or feats.shape[0] < 2:
        raise ValueError(f"{name} must have shape (N, D) with N >= 2 (got {tuple(feats.shape)})")
    if not torch.isfinite(feats).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return feats.detach().to("cpu", torch.float64)


def feature_stats(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    feats = _check_features(feats, "feats")
    return feats.mean(0), torch.cov(feats.T, correction=1).reshape(feats.shape[1], feats.shape[1])


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigenvalues clamped at 0)."""
    w, v = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance_from_stats(mu_a: torch.Tensor, cov_a: torch.Tensor,
                                mu_b: torch.Tensor, cov_b: torch.Tensor) -> float:
    """‖μ_a − μ_b‖² + tr Σ_a + tr Σ_b − 2 tr (Σ_a Σ_b)^{1/2}, the Fréchet distance of two Gaussians.

    tr (Σ_a Σ_b)^{1/2} is the nuclear norm of Σ_a^{1/2} Σ_b^{1/2}, whose singular values are the square
    roots of the (real, non-negative) eigenvalues of Σ_a Σ_b; computed in float64, no scipy needed.
    """
    mu_a, mu_b, cov_a, cov_b = (torch.as_tensor(v).detach().to("cpu", torch.float64)
                                for v in (mu_a, mu_b, cov_a, cov_b))
    d = mu_a.shape[0]
    if mu_a.shape != (d,) or mu_b.shape != (d,) or cov_a.shape != (d, d) or cov_b.shape != (d, d):
        raise ValueError(f"means must have shape (D,) and covariances (D, D) with one D (got {tuple(mu_a.shape)}, "
                         f"{tuple(cov_a.shape)}, {tuple(mu_b.shape)}, {tuple(cov_b.shape)})")
    cross = torch.linalg.svdvals(_sqrt_psd(cov_a) @ _sqrt_psd(cov_b)).sum()
    fd = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return max(float(fd), 0.0)


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N_a, D) and (N_b, D), in float64."""
    feats_a = _check_features(feats_a, "feats_a")
    feats_b = _check_features(feats_b, "feats_b")
    if feats_a.shape[1] != feats_b.shape[1]:
        raise ValueError(f"feats_a and feats_b must have the same feature size D "
                         f"(got {feats_a.shape[1]} and {feats_b.shape[1]})")
    return frechet_distance_from_stats(*feature_stats(feats_a), *feature_stats(feats_b))


# --------------------------------------------------------------------------- reference and report

_REFERENCE_CACHE: dict[tuple, torch.Tensor] = {}


def reference_features(split: str = "test", root: str | os.PathLike | None = None,
                       classifier: nn.Module | None = None) -> torch.Tensor:
    """Features of a real reference set: ``"test"`` (10,000 images) or ``"heldout"`` (train[50000:]).

    Cached in memory for the default classifier (about 3 s on 2 CPU cores for 10,000 images).
    """
    if split not in ("test", "heldout"):
        raise ValueError(f"split must be 'test' or 'heldout' (got {split!r}); 'heldout' is train[50000:], "
                         "the part of the training set the classifier never saw")
    key = (split, str(_data.data_root(root).resolve()))
    if classifier is None and key in _REFERENCE_CACHE:
        return _REFERENCE_CACHE[key]
    images, _ = _data.mnist_tensors("test" if split == "test" else "train", root)
    if split == "heldout":
        images = images[CLASSIFIER_TRAIN_SIZE:]
    feats = extract_features(images, classifier)
    if classifier is None:
        _REFERENCE_CACHE[key] = feats
    return feats


def sample_quality(images: torch.Tensor, *, reference: torch.Tensor | None = None,
                   classifier: nn.Module | None = None, root: str | os.PathLike | None = None) -> dict:
    """FD to a real reference set, and how confidently the classifier reads the images.

    ``images``: (N, 1, 28, 28) in [-1, 1], the range the classifier was trained on (others are refused;
    clamp raw sampler output first). ``reference``: real images of that shape or precomputed
    features (M, D); by default the 10,000 MNIST test images. Returns ``fd``, ``confidence`` (share of
    images read as one digit with probability above 0.9), ``class_histogram`` (how many images have each
    digit 0-9 as their top class), ``not_a_digit`` (share whose top class is "not a digit"), ``n`` and
    ``n_reference``.
    """
    net = _classifier(classifier)
    feats, probs = _run(net, _check_images(images), 1000)
    if reference is None:
        ref = reference_features("test", root, classifier)
    elif isinstance(reference, torch.Tensor) and reference.dim() == 2:
        ref = reference
    else:
        ref = extract_features(_check_images(reference, "reference"), net)
    top = probs.max(dim=1)
    is_digit = top.indices != NOT_A_DIGIT
    counts = torch.bincount(top.indices, minlength=probs.shape[1])
    return {
        "fd": frechet_distance(feats, ref),
        "confidence": float(((top.values > CONFIDENCE_THRESHOLD) & is_digit).double().mean()),
        "class_histogram": counts[:10].tolist(),
        "not_a_digit": float((~is_digit).double().mean()),
        "n": int(feats.shape[0]),
        "n_reference": int(ref.shape[0]),
    }


def real_vs_real(n: int | None = None, *, root: str | os.PathLike | None = None,
                 classifier: nn.Module | None = None, seed: int = 0) -> dict:
    """Calibration: :func:`sample_quality` of held-out real digits (train[50000:]) against the test set.

    ``n`` held-out images (default all 10,000; a random subset chosen with ``seed`` otherwise), so the
    floor can be read at the same sample size as a generator's FD, which grows as n shrinks.
    """
    n = None if n is None else check_int(n, "n", low=None)  # its range needs the data, checked below
    seed = check_int(seed, "seed", low=0)
    images, _ = _data.mnist_tensors("train", root)
    heldout = images[CLASSIFIER_TRAIN_SIZE:]
    if n is not None:
        n = check_int(n, "n", low=2, high=heldout.shape[0])
        pick = torch.randperm(heldout.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
        heldout = heldout[pick]
    return sample_quality(heldout, classifier=classifier, root=root)
