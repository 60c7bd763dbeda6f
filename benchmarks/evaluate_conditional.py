"""Classifier-free guidance, measured: the shipped conditional checkpoint at several guidance weights w.

    python benchmarks/evaluate_conditional.py --w 2 --per-digit 200 --out conditional_targets.json
    python benchmarks/evaluate_conditional.py --w 0 --per-digit 200 --with-unconditional --merge --out conditional_targets.json
    python benchmarks/evaluate_conditional.py --w 0 0.5 1 2 4 8 --per-digit 50 --out conditional_sweep.json
    python benchmarks/evaluate_conditional.py --smoke          # a few samples, writes nothing (tests)

For each w, ``--per-digit`` samples of each digit 0-9 are drawn with ``guided(model, y, w)`` (chapter 7:
ε̃ = (1 + w) ε_θ(x_t, t, y) − w ε_θ(x_t, t, ∅)) and a ``--steps``-step strided DDPM chain, from the same
seed for every w (so the weights are compared on the same starting noise). Scored with the shipped metric
classifier (``dnnl.metrics``):

- ``accuracy``: the share of samples whose top class is the requested digit;
- ``confidence``: the share read as some digit with probability above 0.9 (as for the unconditional model);
- ``fd_class_mean``: the FD of each digit's samples to the test digits of that class, averaged over digits
  (with ``per_digit`` samples in a 128-d feature space it is biased upwards; ``real_vs_real`` gives the
  value held-out real digits reach at the same n);
- ``fd_all``: the FD of all samples to all 10,000 test digits (and, for ``fd_all_n1000``, of the first 100
  samples of each digit, the sample size of the unconditional checkpoint's recorded FD);
- ``diversity``: the mean pairwise distance between samples of one digit, averaged over digits, in pixels
  (images in [−1, 1]) and in the classifier's features.

``--with-unconditional`` also scores the unconditional checkpoint (``ddpm_mnist_quick``) the same way in the
same run (1,000 samples, the sampler and seed of its recorded quality), so the w = 0 targets compare like with
like. ``--merge`` adds the runs to an existing result file. Writes benchmarks/results/<out> and a grid
(rows: digits 0-9, one column block per w) beside it, and the targets into the checkpoint's JSON record.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import RESULTS, machine, provenance, save_result, write_json  # noqa: E402  (benchmarks/_machine.py)
from dnnl import data, metrics  # noqa: E402
from dnnl.models.ddpm import guided, load_pretrained, sample  # noqa: E402
from dnnl.models.ddpm.pretrained import WEIGHTS_DIR, pretrained_info, pretrained_schedule  # noqa: E402
from dnnl.plot import save_grid  # noqa: E402

NAME, UNCOND = "ddpm_mnist_cond", "ddpm_mnist_quick"
DEFAULT_W = 2.0  # the chapter's default guidance weight
TARGET_ACCURACY, FD_RATIO = 0.97, 1.2


def draw(model, schedule, labels: torch.Tensor, w: float | None, steps: int, batch: int, seed: int) -> torch.Tensor:
    """Samples for ``labels`` at guidance weight ``w`` (None: an unconditional model), ``batch`` at a time."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for y in labels.split(batch):
        eps_fn = model if w is None else guided(model, y, w)
        out.append(sample(eps_fn, schedule, (len(y), 1, 28, 28), steps=steps, generator=gen, progress=False).images)
    return torch.cat(out).clamp(-1, 1)


def mean_pairwise(x: torch.Tensor) -> float:
    """The mean Euclidean distance over all pairs of rows of x (N, D), N >= 2."""
    d = torch.cdist(x.double(), x.double())
    n = x.shape[0]
    return float(d.sum() / (n * (n - 1)))


class Reference:
    """The real digits the samples are compared with: test features and labels, held-out ones for calibration."""

    def __init__(self, root):
        self.test = metrics.reference_features("test", root)
        self.test_labels = data.mnist_tensors("test", root)[1]
        images, labels = data.mnist_tensors("train", root)
        self.held_images = images[metrics.CLASSIFIER_TRAIN_SIZE:]
        self.held = metrics.reference_features("heldout", root)
        self.held_labels = labels[metrics.CLASSIFIER_TRAIN_SIZE:]

    def of_class(self, k: int) -> torch.Tensor:
        return self.test[self.test_labels == k]

    def real_vs_real(self, per_digit: int, seed: int) -> dict:
        """What held-out real digits, ``per_digit`` of each class, reach on the same measures."""
        gen = torch.Generator().manual_seed(seed)
        pick = torch.cat([torch.nonzero(self.held_labels == k).squeeze(1)[
            torch.randperm(int((self.held_labels == k).sum()), generator=gen)[:per_digit]] for k in range(10)])
        return score(self.held_images[pick], self.held_labels[pick], self, features=self.held[pick])


def score(images: torch.Tensor, labels: torch.Tensor, ref: Reference, features=None) -> dict:
    """Accuracy, confidence, per-class and overall FD and diversity of samples of the requested ``labels``."""
    clf = metrics.load_classifier()
    feats = metrics.extract_features(images, clf) if features is None else features
    probs = metrics.predict_proba(images, clf)
    top = probs.max(dim=1)
    per_digit = int((labels == 0).sum())
    fd_class = [metrics.frechet_distance(feats[labels == k], ref.of_class(k)) for k in range(10)]
    first = torch.cat([torch.nonzero(labels == k).squeeze(1)[:100] for k in range(10)])
    return {
        "accuracy": float((top.indices == labels).double().mean()),
        "accuracy_by_digit": [round(float((top.indices[labels == k] == k).double().mean()), 4) for k in range(10)],
        "confidence": float(((top.values > metrics.CONFIDENCE_THRESHOLD) & (top.indices != metrics.NOT_A_DIGIT))
                            .double().mean()),
        "fd_class_mean": sum(fd_class) / 10,
        "fd_by_class": [round(v, 3) for v in fd_class],
        "fd_all": metrics.frechet_distance(feats, ref.test),
        "fd_all_n1000": metrics.frechet_distance(feats[first], ref.test) if per_digit >= 100 else None,
        "diversity_pixels": sum(mean_pairwise(images[labels == k].flatten(1)) for k in range(10)) / 10,
        "diversity_features": sum(mean_pairwise(feats[labels == k]) for k in range(10)) / 10,
        "n": int(labels.numel()),
    }


def rounded(d: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def unconditional(args, ref: Reference) -> dict:
    """The unconditional checkpoint scored as its record was: 1,000 samples, same sampler and seed."""
    model, n = load_pretrained(UNCOND), 2 if args.smoke else 1000
    gen = torch.Generator().manual_seed(args.seed)
    images = sample(model, pretrained_schedule(UNCOND), (n, 1, 28, 28), steps=args.steps, generator=gen,
                    batch_size=args.batch_size, progress=False).images
    q = metrics.sample_quality(images, reference=ref.test)
    return {"fd_all": round(q["fd"], 4), "confidence": round(q["confidence"], 4), "n": n,
            "recorded": {k: pretrained_info(UNCOND)["quality"][k] for k in ("fd", "confidence", "n_samples")}}


def targets(result: dict) -> dict | None:
    runs, base = result["runs"], result.get("unconditional")
    default, zero = runs.get(f"w={DEFAULT_W:g}"), runs.get("w=0")
    if default is None or zero is None or base is None:
        return None
    fd0 = zero["fd_all_n1000"] if zero["fd_all_n1000"] is not None else zero["fd_all"]
    return {"default_w": DEFAULT_W, "per_digit": default["n"] // 10, "per_digit_w0": zero["n"] // 10,
            "accuracy_at_default_w": default["accuracy"], "accuracy_target": TARGET_ACCURACY,
            "accuracy_met": default["accuracy"] >= TARGET_ACCURACY,
            "confidence_w0": zero["confidence"], "confidence_unconditional": base["confidence"],
            "confidence_met": zero["confidence"] >= base["confidence"],
            "fd_all_w0_n1000": fd0, "fd_all_unconditional_n1000": base["fd_all"],
            "fd_ratio": round(fd0 / base["fd_all"], 3), "fd_ratio_target": FD_RATIO,
            "fd_met": fd0 <= FD_RATIO * base["fd_all"]}


KEYS = ("accuracy", "confidence", "fd_class_mean", "fd_all", "diversity_pixels", "diversity_features")


def update_record(result: dict, args, out: Path) -> None:
    """The targets (``quality``) and a sweep of three or more w (``guidance_sweep``) into the checkpoint's record."""
    record = WEIGHTS_DIR / f"{NAME}.json"
    info = json.loads(record.read_text())
    if result["targets"] is not None:
        info["quality"] = {**result["targets"], "script": "benchmarks/evaluate_conditional.py",
                           "sampler": result["sampler"], "date": result["date"]}
    if len(result["runs"]) >= 3:
        runs = {k: {key: r[key] for key in KEYS} for k, r in result["runs"].items()}
        real = {key: v for key, v in result["real_vs_real"][f"per_digit={args.per_digit}"].items() if key in KEYS}
        info["guidance_sweep"] = {"per_digit": args.per_digit, "steps": args.steps, "runs": runs, "real_vs_real": real,
                                  "source": f"benchmarks/results/{out.name}", "date": result["date"]}
    write_json(record, info)
    record.chmod(0o644)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--w", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0, 8.0])
    parser.add_argument("--per-digit", type=int, default=50)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=250, help="samples per sampling call (guidance doubles it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="MNIST folder (default: $DNNL_DATA, then the cache)")
    parser.add_argument("--path", default=None, help="a conditional checkpoint .pt elsewhere (its .json beside it)")
    parser.add_argument("--with-unconditional", action="store_true")
    parser.add_argument("--merge", action="store_true", help="add to the runs already in --out")
    parser.add_argument("--out", default="conditional_sweep.json", help="file name in benchmarks/results/, or a path")
    parser.add_argument("--smoke", action="store_true", help="2 per digit, 2 steps, w 0 and 2; writes nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        args.per_digit, args.steps, args.w, args.with_unconditional = 2, 2, [0.0, DEFAULT_W], True
    print(machine(), flush=True)
    out = RESULTS / args.out if Path(args.out).name == args.out else Path(args.out)
    old = json.loads(out.read_text()) if args.merge and out.exists() else {}

    model = load_pretrained(NAME, path=args.path)
    schedule = pretrained_schedule(NAME, path=args.path)
    ref = Reference(args.root)
    labels = torch.arange(10).repeat_interleave(args.per_digit)
    runs, grids, start = dict(old.get("runs", {})), [], time.perf_counter()
    for w in args.w:
        t0 = time.perf_counter()
        images = draw(model, schedule, labels, w, args.steps, args.batch_size, args.seed)
        runs[f"w={w:g}"] = dict(rounded(score(images, labels, ref)), w=w, seconds=round(time.perf_counter() - t0, 1))
        grids.append(images.reshape(10, args.per_digit, 1, 28, 28)[:, :min(8, args.per_digit)])
        print(f"w={w:g}: {json.dumps(runs[f'w={w:g}'])}", flush=True)
    prov = provenance()
    result = {
        "checkpoint": NAME if args.path is None else Path(args.path).stem,
        "runs": dict(sorted(runs.items(), key=lambda kv: kv[1]["w"])),
        "real_vs_real": {f"per_digit={args.per_digit}": rounded(ref.real_vs_real(args.per_digit, args.seed))},
        "sampler": f"ddpm, {args.steps} strided steps of T={schedule.T}, x0 clipped to [-1, 1]; guided(model, y, w)",
        "seed": args.seed,
        "convention": "w: eps = (1 + w) eps(x, t, y) - w eps(x, t, no label); w = 0 is the conditional model",
        "metric": "dnnl/weights/mnist_classifier.pt: top class (accuracy), max-prob > 0.9 (confidence), "
                  "128-d penultimate features (FD, diversity_features)",
        "machine": prov["machine"], "torch": prov["torch"], "date": prov["date"],
        "seconds": round(time.perf_counter() - start, 1),
        "command": "python benchmarks/evaluate_conditional.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    result["real_vs_real"] = {**old.get("real_vs_real", {}), **result["real_vs_real"]}
    result["commands"] = old.get("commands", []) + [result.pop("command")]
    if args.with_unconditional:
        result["unconditional"] = unconditional(args, ref)
    elif "unconditional" in old:
        result["unconditional"] = old["unconditional"]
    result["targets"] = targets(result)
    if not args.smoke:
        save_grid(torch.cat(grids, dim=1).flatten(0, 1), out.with_suffix(".png"), nrow=sum(g.shape[1] for g in grids))
        if args.path is None:
            update_record(result, args, out)
    return save_result(out, result, write=not args.smoke)


if __name__ == "__main__":
    main()
