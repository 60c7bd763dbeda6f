"""Chapter 3's checks: the Gaussian KL and the prior term L_T in bits/dim."""
from __future__ import annotations

import math

import torch

from ._compare import _at, _Cases, _compare, _ddpm, _fmt, _gen, _matching, _score, _tlist, _Variant, _worst
from ._core import _T0_HINT, _call, _check, _dtype, _Fail, _Misuse, _tensor, _why


def _kl(m1, lv1, m2, lv2):
    return 0.5 * (-1.0 + lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2))


def _kl_var(m1, v1, m2, v2):
    return 0.5 * (-1.0 + torch.log(v2) - torch.log(v1) + v1 / v2 + (m1 - m2) ** 2 / v2)


def _kl_variants(m1, lv1, m2, lv2, exp) -> list[_Variant]:
    """Known-wrong KLs (float64, the shape of ``exp``), each with its cause."""
    def shaped(v):
        return v.expand_as(exp)

    out = [
        _Variant(shaped(_kl(m2, lv2, m1, lv1)), _why("the two distributions are swapped", "you computed "
                 "KL(N2 ‖ N1). KL is not symmetric; the first distribution is the one the expectation is taken under.")),
        _Variant(2 * exp, _why("the factor one half is missing")),
        _Variant(exp / math.log(2), _why("bits instead of nats", "normal_kl returns nats (natural log). Convert to "
                                         "bits only at the end, when you compute bits/dim.")),
        _Variant(exp + 0.5, _why("the constant term is missing", "the −1 inside the bracket.")),
        _Variant(shaped(_kl_var(m1, torch.exp(2 * lv1), m2, torch.exp(2 * lv2))),
                 _why("log-variance treated as a log standard deviation", "the variance is exp(logvar), not "
                      "exp(2·logvar).")),
        _Variant(shaped(0.5 * (-1 + lv1 - lv2 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2 * torch.exp(-lv2))),
                 _why("a sign error in the log term", "it is log σ2² − log σ1² = logvar2 − logvar1.")),
        _Variant(shaped(0.5 * (-1 + lv2 - lv1 + torch.exp(lv2 - lv1) + (m1 - m2) ** 2 * torch.exp(-lv2))),
                 _why("the variance ratio is upside down", "it is σ1²/σ2² = exp(logvar1 − logvar2).")),
        _Variant(shaped(0.5 * (-1 + lv2 - lv1 + torch.exp(lv1 - lv2) + (m1 - m2) ** 2)),
                 _why("the squared mean difference is not divided by the second variance",
                      "multiply it by exp(−logvar2).")),
        _Variant(exp.sum(), _why("a reduction over the elements", "you summed the KL over all elements; return "
                                 "it elementwise (the same shape as the inputs) and reduce later.")),
        _Variant(exp.mean(), _why("a reduction over the elements", "you averaged the KL over all elements; "
                                  "return it elementwise and reduce later.")),
    ]
    if bool((lv1 > 0).all() and (lv2 > 0).all()):
        out.append(_Variant(shaped(_kl_var(m1, lv1, m2, lv2)), _why("log-variance used as the variance",
                            "use exp(logvar) for σ², and logvar itself for log σ².")))
    return out


@_check(3, "normal_kl(mean1, logvar1, mean2, logvar2) -> elementwise KL in nats",
        "the chapter's closed form of the KL between two Gaussians has four terms inside a bracket with a factor "
        "one half: a log-variance difference, a variance ratio, a squared mean gap over the second variance, "
        "and a constant. The inputs are log-variances, so the variances are their exponentials.",
        terse="the closed-form KL between two Gaussians, elementwise, from log-variances, in nats",
        hides=("dnnl.models.ddpm:normal_kl", "dnnl.models.ddpm.elbo:_normal_kl"))
def check_normal_kl(fn) -> list[str]:
    """Check ``fn(mean1, logvar1, mean2, logvar2) -> KL(N1 ‖ N2)`` elementwise, in nats (Eq. @eq-gaussian-kl).

    Arguments are tensors (they broadcast); log-variances are natural logs of variances.
    """
    ddpm = _ddpm()
    g = _gen(3)
    r = lambda *s, lo=-1.0, hi=1.0: torch.rand(*s, generator=g, dtype=torch.float64) * (hi - lo) + lo  # noqa: E731
    z = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    cases = [
        ("KL(N(0, 1) ‖ N(1, 1)) (the answer is 0.5)", (z(0.0), z(0.0), z(1.0), z(0.0))),
        ("KL(N(0, 2) ‖ N(0, 1)) (the answer is ½(1 − ln 2) ≈ 0.1534)", (z(0.0), z(math.log(2)), z(0.0), z(0.0))),
        ("random tensors of shape (5, 7), log-variances in [−3, 1]",
         (r(5, 7, lo=-2, hi=2), r(5, 7, lo=-3, hi=1), r(5, 7, lo=-2, hi=2), r(5, 7, lo=-3, hi=1))),
        ("random tensors of shape (4, 6), log-variances in [0.2, 1.5]",
         (r(4, 6, lo=-1, hi=1), r(4, 6, lo=0.2, hi=1.5), r(4, 6, lo=-1, hi=1), r(4, 6, lo=0.2, hi=1.5))),
        ("two identical distributions (the answer is 0)", (r(3, 3), r(3, 3)) * 2),
        ("mean1, logvar1 of shape (3, 4) against the scalar N(0, 1) (broadcasting)",
         (r(3, 4, lo=-2, hi=2), r(3, 4, lo=-2, hi=1), z(0.0), z(0.0))),
    ]
    cases_ = _Cases()
    for on, args in cases:
        m1, lv1, m2, lv2 = args
        out = cases_.call(fn, *(a.clone() for a in args), on=on)
        exp = ddpm.normal_kl(m1, lv1, m2, lv2).double()
        exp = exp.expand(torch.broadcast_shapes(m1.shape, lv1.shape, m2.shape, lv2.shape))
        with torch.no_grad():
            variants = _kl_variants(m1, lv1, m2, lv2, exp)
        cases_.compare(out, exp, on=on, variants=variants, atol=1e-6, rtol=1e-5, what="KL",
                       nan_why=_why("a log of a log-variance", "logvar can be 0 or negative: log σ² is logvar "
                                    "itself, and the variance is σ² = exp(logvar)."))
    cases_.finish()
    return ["the two textbook values 0.5 and ½(1 − ln 2), random tensors, identical distributions "
            "and broadcasting against N(0, 1)",
            "matches dnnl.models.ddpm.normal_kl elementwise within 1e-5"]


def _bpd_variants(schedule, x, exp) -> list[_Variant]:
    """Known-wrong prior terms (float64, bits/dim per image), each with its cause."""
    T, D, xd = schedule.T, x[0].numel(), x.double()

    def kl_bpd(ab, sqrt_mean=True, std_as_var=False):
        mu = (ab.sqrt() if sqrt_mean else ab) * xd
        var = (1 - ab).sqrt() if std_as_var else (1 - ab)
        kl = _kl_var(mu, var.expand_as(mu), torch.zeros(()), torch.ones(()))
        return kl.reshape(len(x), -1).mean(1) / math.log(2)

    abars = torch.as_tensor(schedule.alpha_bars).double()
    ab_last, ab_prev = abars[T - 1], abars[T - 2]
    a_last = torch.as_tensor(schedule.alphas).double()[T - 1]
    dims = _why("a sum over the dimensions instead of a mean", f"bits per dim averages over the {D} dims.")
    batch = _why("a reduction over the batch", "return one value per image, shape (B,).")
    return [
        _Variant(exp * math.log(2), _why("nats instead of bits", "bits/dim divides the KL by ln 2.")),
        _Variant(exp * D, dims),
        _Variant(exp * D * math.log(2), dims),
        _Variant(kl_bpd(ab_prev), _why("an off-by-one in t", "you used ᾱ at index T−2. The last code index is "
                                       "T−1 (paper step T): schedule.alpha_bars[T - 1] or alpha_bars[-1].")),
        _Variant(kl_bpd(a_last), _why("ᾱ vs α", "q(x_T | x0) uses ᾱ_T, the product of all α's "
                                      "(schedule.alpha_bars[-1]), not the last α_T.")),
        _Variant(kl_bpd(ab_last, sqrt_mean=False), _why("a missing square root in the mean",
                                                        "the mean of q(x_T | x0) is √ᾱ_T·x0.")),
        _Variant(kl_bpd(ab_last, std_as_var=True), _why("standard deviation used for the variance",
                                                        "the variance of q(x_T | x0) is 1 − ᾱ_T, not its square root.")),
        _Variant(exp.mean(), batch),
        _Variant(exp.mean() * math.log(2), batch),
    ]


@_check(3, "prior_bpd(schedule, x0) -> (B,) bits/dim of KL(q(x_T | x_0) ‖ N(0, I))",
        "q(x_T | x0) is the Gaussian of Chapter 1 at the last code index T − 1; take its KL against N(0, I) per "
        "pixel (in float64: it is a small difference of numbers near 1), average over all dimensions but the "
        "batch, and convert nats to bits.",
        terse="the KL of the last forward marginal against the standard normal, per image, in bits per dimension, "
              "computed in float64",
        hides=("dnnl.models.ddpm:prior_bpd", "dnnl.models.ddpm.elbo:_prior_bpd", "dnnl.models.ddpm:vlb_terms"))
def check_prior_bpd(fn) -> list[str]:
    """Check ``fn(schedule, x0) -> (B,)`` bits/dim of the prior term L_T (Eqs. @eq-prior-term, @eq-bpd).

    Compared with ``dnnl.models.ddpm.prior_bpd`` on a standard, a short and a cosine schedule.
    """
    ddpm = _ddpm()
    g = _gen(4)
    x0 = torch.rand(4, 1, 6, 6, generator=g) * 2 - 1
    pm1 = torch.where(torch.rand(3, 1, 6, 6, generator=g) < 0.5, -1.0, 1.0)
    cases = [
        (ddpm.NoiseSchedule.linear(T=10), x0, "a short linear schedule (T=10), where L_T is large"),
        (ddpm.NoiseSchedule.linear(T=1000), x0, "the standard linear schedule (T=1000)"),
        (ddpm.NoiseSchedule.linear(T=1000), pm1, "pixels at ±1 on the standard linear schedule "
                                                  "(the answer is 2.9113e-5 bits/dim)"),
        (ddpm.NoiseSchedule.cosine(T=50), x0[:1], "a single image on a cosine schedule (T=50)"),
    ]
    cases_ = _Cases()
    for schedule, x, on in cases:
        out = cases_.call(fn, schedule, x.clone(), on=on)
        exp = ddpm.prior_bpd(schedule, x.double()).double()
        variants = _bpd_variants(schedule, x, exp)
        n_before = len(cases_.fails)
        cases_.compare(out, exp, on=on, variants=variants, atol=1e-10, rtol=1e-4, what="bits/dim")
        if len(cases_.fails) > n_before:
            fail, got = cases_.fails[-1], _tensor(out)
            if not fail.whys and got.shape == exp.shape and bool(torch.isfinite(got).all()) and \
                    float((got.double() - exp).abs().max()) <= 5e-6:
                fail.whys.append(_why("float32 rounding: compute in float64", "the KL per pixel is a small "
                                      "difference of numbers close to 1, which float32 cannot resolve. Cast x0 "
                                      "and the schedule values to float64, and the result back at the end."))
        else:
            _dtype(_tensor(out), x.dtype, on=on, what="bits/dim")
    cases_.finish()
    return ["linear schedules with T=10 and T=1000, a cosine schedule with T=50, pixels at ±1 and a single image",
            "matches dnnl.models.ddpm.prior_bpd per image within 1e-4 (relative)"]

