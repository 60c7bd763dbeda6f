"""Chapter 1's checks: the data map to [−1, 1] and the closed-form forward jump q_sample."""
from __future__ import annotations

import math

import torch

from ._compare import _at, _Cases, _compare, _ddpm, _fmt, _gen, _matching, _score, _tlist, _Variant, _worst
from ._core import _T0_HINT, _call, _check, _dtype, _Fail, _Misuse, _tensor, _why


def _range_variants(x: torch.Tensor) -> list[_Variant]:
    """Known-wrong maps of ``x`` (float64), each with its cause."""
    xd = x.double()
    flat = xd.reshape(len(xd), -1) if xd.dim() > 2 else xd.reshape(1, -1)
    lo, hi = flat.min(1).values, flat.max(1).values
    shape = (-1,) + (1,) * (xd.dim() - 1) if xd.dim() > 2 else ()
    per_image = 2 * (xd - lo.reshape(shape)) / (hi - lo).clamp_min(1e-12).reshape(shape) - 1
    batch = 2 * (xd - xd.min()) / max(float(xd.max() - xd.min()), 1e-12) - 1
    minmax = [_Variant(batch, _why("min-max scaling", "the map is fixed (0 → −1, 255 or 1.0 → +1); "
                                   "stretching each batch to its own minimum and maximum changes every "
                                   "image that is not pure black and white somewhere.")),
              _Variant(per_image, _why("min-max scaling", "per image: the map must not depend on the image; "
                                       "0 → −1 and 255 (or 1.0) → +1 always."))]
    std = _why("standardising with the data's mean and std", "DDPM wants the fixed range [−1, 1].")
    if x.dtype == torch.uint8:
        return minmax + [
            _Variant(xd / 255, _why("the result is in [0, 1], not [−1, 1]",
                                    "the prior N(0, I) is centred on 0: use x / 127.5 − 1.")),
            _Variant(2 * xd - 1, _why("uint8 values not divided by 255",
                                      "uint8 values are 0..255: divide by 255 (or 127.5) before rescaling.")),
            _Variant(2 * xd / 255 / 255 - 1, _why("divided by 255 twice", "the values end up near −1.")),
            _Variant(xd / 127.5, _why("the result is in [0, 2], not [−1, 1]", "subtract 1 after dividing.")),
            _Variant(xd / 255 - 0.5, _why("the result is in [−0.5, 0.5], not [−1, 1]", "multiply by 2.")),
            _Variant((xd / 255 - 0.1307) / 0.3081, std),
        ]
    return minmax + [
        _Variant(xd, _why("the result is still in [0, 1]", "DDPM works with data in [−1, 1]: use 2·x − 1.")),
        _Variant(2 * xd / 255 - 1, _why("float images treated as 0..255", "these floats are already in [0, 1]; "
                                        "dividing by 255 (or 127.5) squeezes them to about −1.")),
        _Variant(xd / 255, _why("float images divided by 255", "they are already in [0, 1]: use 2·x − 1.")),
        _Variant(xd - 0.5, _why("the result is in [−0.5, 0.5], not [−1, 1]", "multiply by 2 (2·x − 1).")),
        _Variant((xd - 0.1307) / 0.3081, std),
    ]


@_check(1, "images (uint8 0..255 or float [0, 1]) -> float32 in [−1, 1]",
        "a fixed affine map: 0 → −1 and 255 (or 1.0) → +1, the same for every image; convert to float first "
        "(uint8 arithmetic wraps around at 256).",
        terse="a fixed affine map of the pixel range onto [−1, 1], in float32",
        hides=("dnnl.data:to_model_range",))
def check_to_model_range(fn) -> list[str]:
    """Check ``fn(images) -> float32 tensor in [−1, 1]`` (Chapter 1).

    ``images`` is a uint8 tensor with values 0..255 or a float tensor in [0, 1]; 0 must map to −1 and
    255 (or 1.0) to +1 whatever the image holds, like ``dnnl.data.to_model_range``.
    """
    from dnnl.data import to_model_range
    g = _gen(0)
    u8 = torch.randint(0, 256, (4, 1, 8, 8), generator=g, dtype=torch.uint8)
    u8[0, 0, 0, 0], u8[0, 0, 0, 1] = 0, 255
    dim = torch.randint(30, 201, (3, 1, 6, 6), generator=g, dtype=torch.uint8)
    f01 = torch.rand(3, 1, 6, 6, generator=g) * 0.8 + 0.1
    f01[0, 0, 0, 0] = 0.0
    single = torch.randint(0, 256, (28, 28), generator=g, dtype=torch.uint8)
    edges = torch.stack([torch.zeros(5, 5, dtype=torch.uint8), torch.full((5, 5), 255, dtype=torch.uint8)])
    cases = [
        ("a batch of uint8 images (values 0..255, shape (4, 1, 8, 8))", u8),
        ("a batch of dim uint8 images (values 30..200 only, shape (3, 1, 6, 6))", dim),
        ("a batch of float images in [0, 1] (as from ToTensor, shape (3, 1, 6, 6))", f01),
        ("one uint8 image of shape (28, 28)", single),
        ("an all-black and an all-white uint8 image", edges),
    ]
    cases_ = _Cases()
    for on, x in cases:
        out = cases_.call(fn, x.clone(), on=on)
        if cases_.fails and out is None:
            continue
        out = _tensor(out)
        if not out.is_floating_point():
            raise _Fail(f"On {on}: the result has dtype {out.dtype}; expected a float tensor in [−1, 1].",
                        _why("integer arithmetic", "convert first with x.float(): in uint8 arithmetic 2 * x "
                             "wraps around at 256 and there are no negative numbers."))
        exp = to_model_range(x).double()
        n_before = len(cases_.fails)
        cases_.compare(out, exp, on=on, variants=_range_variants(x), atol=1e-5, rtol=1e-5, what="result")
        if len(cases_.fails) > n_before and out.numel():
            cases_.fails[-1].what += (f"\nYour values span [{_fmt(float(out.min()))}, {_fmt(float(out.max()))}]; "
                                      "expected [−1, 1] with 0 → −1 and 255 (or 1.0) → +1, the same map for every "
                                      "image.")
        elif len(cases_.fails) == n_before:
            _dtype(out, torch.float32, on=on)
    cases_.finish()
    return ["uint8 batches (one with values 30..200 only), a float batch in [0, 1], a single 28×28 image, "
            "all-black and all-white images",
            "values match dnnl.data.to_model_range within 1e-5 (0 → −1, 255 or 1.0 → +1 for every image); "
            "the result is float32; the input is left unchanged"]


def _q_sample_variants(schedule, x0, t, noise, T) -> list[_Variant]:
    d = x0.dim()
    x0d, nd = x0.double(), noise.double()
    ab, a = _at(schedule.alpha_bars, t, d), _at(schedule.alphas, t, d)
    ab_prev = _at(schedule.alpha_bars_prev, t, d)
    ab_next = _at(schedule.alpha_bars, (t + 1).clamp(max=T - 1), d)
    ab_same = _at(schedule.alpha_bars, t[:1].expand_as(t), d)
    off = ("you used ᾱ at index t{sign}1. Code timesteps are 0-based (index t is paper step t+1), and "
           "schedule.alpha_bars[t] is already ᾱ for that step.")
    right = ab.sqrt() * x0d + (1 - ab).sqrt() * nd
    return [
        _Variant(a.sqrt() * x0d + (1 - a).sqrt() * nd,
                 _why("ᾱ vs α", "you used α_t = 1 − β_t (a single step) where the closed form needs "
                      "ᾱ_t = α_1·α_2·…·α_t (schedule.alpha_bars).")),
        _Variant(ab * x0d + (1 - ab) * nd,
                 _why("a missing square root on both weights", "the mean is √ᾱ_t·x0 and the standard "
                      "deviation is √(1 − ᾱ_t); you used ᾱ_t and 1 − ᾱ_t.")),
        _Variant(ab * x0d + (1 - ab).sqrt() * nd,
                 _why("a missing square root on the signal weight", "the mean is √ᾱ_t·x0, not ᾱ_t·x0.")),
        _Variant(ab.sqrt() * x0d + (1 - ab) * nd,
                 _why("variance used for the standard deviation", "the noise weight is √(1 − ᾱ_t), "
                      "not the variance 1 − ᾱ_t.")),
        _Variant(ab_prev.sqrt() * x0d + (1 - ab_prev).sqrt() * nd, _why("an off-by-one in t", off.format(sign="−"))),
        _Variant(ab_next.sqrt() * x0d + (1 - ab_next).sqrt() * nd, _why("an off-by-one in t", off.format(sign="+"))),
        _Variant((1 - ab).sqrt() * x0d + ab.sqrt() * nd,
                 _why("the two weights are swapped", "x0 gets √ᾱ_t and the noise gets √(1 − ᾱ_t).")),
        _Variant(ab.sqrt() * x0d - (1 - ab).sqrt() * nd,
                 _why("a sign error on the noise term", "x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε (plus).")),
        _Variant(ab.sqrt() * x0d, _why("the noise term is missing", "add √(1 − ᾱ_t)·ε.")),
        _Variant(ab.sqrt() * (x0d + 1) / 2 + (1 - ab).sqrt() * nd,
                 _why("the data was rescaled", "your function rescaled x0 to [0, 1]. q_sample takes x0 as "
                      "given; the data is already in [−1, 1].")),
        _Variant(ab.sqrt() * (2 * x0d - 1) + (1 - ab).sqrt() * nd,
                 _why("the data was rescaled", "your function rescaled x0 with 2·x0 − 1, but x0 is already in "
                      "[−1, 1].")),
        _Variant(ab_same.sqrt() * x0d + (1 - ab_same).sqrt() * nd,
                 _why("one timestep for the whole batch", "every image used the timestep of the first one. "
                      "t holds one timestep per image: gather the coefficient per image, e.g. "
                      "schedule.gather('alpha_bars', t, x0).")),
        _Variant(torch.where(t.reshape(-1, *[1] * (d - 1)) == 0, x0d, right),
                 _why("no noise at code index 0", "at t = 0 you returned x0 unchanged. Code "
                      "index 0 is paper step 1, which still adds a little noise: ᾱ_0 = 1 − β_1 < 1.")),
        _Variant(right.clamp(-1, 1), _why("clipping", "x_t is not clamped to [−1, 1]: the noisy images leave "
                                          "the data range, and q(x_t | x0) is a Gaussian.")),
    ]


@_check(1, "q_sample(schedule, x0, t, noise) -> x_t (closed form q(x_t | x_0))",
        "the closed form of q(x_t | x0): signal weight √ᾱ_t, noise weight √(1 − ᾱ_t), "
        "both read at the code index t, one per image, shaped to broadcast against x0.",
        terse="the closed-form jump from x0 to x_t, with ᾱ read at the code index t for each image",
        hides=("dnnl.models.ddpm:q_sample", "dnnl.models.ddpm.diffusion:_q_sample",
               "dnnl.models.ddpm.diffusion:q_mean_variance", "dnnl.models.ddpm.scheduler:DDPMScheduler.add_noise"))
def check_q_sample(fn) -> list[str]:
    """Check ``fn(schedule, x0, t, noise) -> x_t`` (Chapter 1, Eq. @eq-q-sample).

    ``x0`` is a float32 batch in [−1, 1], ``t`` an int64 tensor (B,) of 0-based timesteps or an int,
    ``noise`` the ε to use; the result is float32, like ``x0``.
    """
    ddpm = _ddpm()
    g = _gen(1)
    lin = ddpm.NoiseSchedule.linear(T=1000)
    cos = ddpm.NoiseSchedule.cosine(T=50)
    x0 = torch.rand(6, 1, 5, 5, generator=g) * 2 - 1
    noise = torch.randn(6, 1, 5, 5, generator=g)
    cases = [
        (lin, torch.tensor([150, 300, 450, 600, 750, 900]), "the linear schedule (T=1000)"),
        (lin, torch.tensor([0, 1, 999, 998, 0, 999]), "the linear schedule (T=1000) at the edges t = 0 and T−1"),
        (cos, torch.tensor([0, 7, 19, 28, 41, 49]), "a cosine schedule with T=50"),
        (lin, 500, "the linear schedule (T=1000) with t given as a Python int"),
    ]
    cases_ = _Cases()
    for schedule, t_arg, name in cases:
        if isinstance(t_arg, int):
            t = torch.full((len(x0),), t_arg)
            on, args = f"{name}, t = {t_arg}", (schedule, x0.clone(), t_arg, noise.clone())
        else:
            t = t_arg
            on, args = f"{name}, t = {_tlist(t)}", (schedule, x0.clone(), t.clone(), noise.clone())
        out = cases_.call(fn, *args, on=on)
        if cases_.fails and out is None:
            continue
        out = _tensor(out)
        exp = ddpm.q_sample(schedule, x0.double(), t, noise.double())
        variants = _q_sample_variants(schedule, x0, t, noise, schedule.T)
        if schedule is cos:
            ab = _at(lin.alpha_bars, t, 4)
            variants.append(_Variant(ab.sqrt() * x0.double() + (1 - ab).sqrt() * noise.double(),
                                     _why("the schedule argument was ignored", "your function used a linear "
                                          "T=1000 schedule, not the `schedule` argument it was given.")))
        finite = not out.is_floating_point() or bool(torch.isfinite(out).all())
        if finite and out.shape == exp.shape and _score(out, exp, 1e-4, 1e-4) > 1:
            again = _tensor(_call(fn, *args, on=on))
            if again.shape == out.shape and not torch.equal(again, out):
                raise _Fail(f"On {on}: two calls with the same inputs gave different results.\n"
                            f"{_worst(out, exp)}.",
                            _why("random draws inside the function",
                                 "your function draws its own noise; use the `noise` argument it is given."))
        n_before = len(cases_.fails)
        cases_.compare(out, exp, on=on, variants=variants, atol=1e-4, rtol=1e-4, what="x_t")
        if len(cases_.fails) == n_before:
            _dtype(out, x0.dtype, on=on, what="x_t")
    cases_.finish()
    return ["24 images on a linear (T=1000) and a cosine (T=50) schedule, t mixed per image, "
            "including the edges t = 0 and t = T−1, and t given as a Python int",
            "matches dnnl.models.ddpm.q_sample with the same noise within 1e-4; float32 in, float32 out"]
