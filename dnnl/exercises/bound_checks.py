"""Self-checks for three closed forms of chapters 2-4: the model's mean μ_θ, the decoder L_0, the weights λ_t.

Same contract as :mod:`dnnl.exercises.checks`: a check runs the student's function on seeded inputs,
compares it with a float64 reference computed here, names the failing input, and names a cause only when
the result matches one known mistake on that input; otherwise it states what it observed. It never raises.
"""
from __future__ import annotations

import math

import torch

from .checks import _at, _Cases, _check, _ddpm, _Fail, _fmt, _gen, _tensor, _tlist, _Variant, _why

__all__ = ["check_mu_theta", "check_decoder_log_likelihood", "check_kl_weights"]


def _want_dtype(got: torch.Tensor, want: torch.dtype, on: str, detail: str) -> None:
    if got.dtype != want:
        raise _Fail(f"On {on}: your result has dtype {got.dtype}; the exercise asks for {want}.",
                    _why("the wrong dtype", detail))


# --------------------------------------------------------------------------- exercise 2.5

def _mu_variants(schedule, xt, t, eps) -> list[_Variant]:
    d, T = xt.dim(), schedule.T
    x, e = xt.double(), eps.double()
    A = lambda name, tt=t: _at(getattr(schedule, name), tt.clamp(0, T - 1), d)  # noqa: E731
    a, ab, b = A("alphas"), A("alpha_bars"), A("betas")
    x0_hat = (x - (1 - ab).sqrt() * e) / ab.sqrt()
    clipped = x0_hat.clamp(-1, 1)
    out = [
        _Variant((x - (1 - a).sqrt() * e) / a.sqrt(),
                 _why("the erratum's weight of ε", "the weight of ε is √(1 − α_t); it must be "
                      "β_t/√(1 − ᾱ_t) (the erratum of this chapter).")),
        _Variant((x - b / (1 - ab).sqrt() * e) / ab.sqrt(),
                 _why("ᾱ vs α in the divisor", "divide by √α_t, not √ᾱ_t.")),
        _Variant((x - b / (1 - ab) * e) / a.sqrt(),
                 _why("a missing square root in the weight of ε", "the weight is β_t/√(1 − ᾱ_t), not β_t/(1 − ᾱ_t).")),
        _Variant((x - b / (1 - ab).sqrt() * e) / a, _why("a missing square root in the divisor", "divide by √α_t, not α_t.")),
        _Variant((x + b / (1 - ab).sqrt() * e) / a.sqrt(),
                 _why("a sign error", "μ_θ subtracts the weighted ε from x_t.")),
        _Variant(x0_hat, _why("x̂_0 in place of the mean", "this is the prediction x̂_0, not the mean of the "
                                                           "reverse step.")),
        _Variant(A("posterior_mean_coef1") * clipped + A("posterior_mean_coef2") * x,
                 _why("clipping where none is asked for", "x̂_0 was clipped to [−1, 1]; the exercise asks for "
                                                          "the mean without clipping.")),
    ]
    for shift, sign in ((-1, "−"), (1, "+")):
        ts = t + shift
        a2, ab2, b2 = A("alphas", ts), A("alpha_bars", ts), A("betas", ts)
        out.append(_Variant((x - b2 / (1 - ab2).sqrt() * e) / a2.sqrt(),
                            _why("an off-by-one in t", f"your coefficients are those of index t{sign}1; "
                                 "schedule.betas[t] already belongs to code index t.")))
    first = t[:1].expand_as(t)
    a1, ab1, b1 = A("alphas", first), A("alpha_bars", first), A("betas", first)
    out.append(_Variant((x - b1 / (1 - ab1).sqrt() * e) / a1.sqrt(),
                        _why("one timestep for the whole batch", "every image used the timestep of the first "
                             "one: gather the coefficients per image.")))
    return out


@_check(2, "mu_theta(schedule, xt, t, eps) -> the mean of p_θ(x_{t−1} | x_t) from a noise prediction",
           "μ_θ = (x_t − β_t/√(1 − ᾱ_t)·ε)/√α_t, with each coefficient gathered at t and shaped like x_t.",
           terse="the model's mean of the reverse step, written with the predicted noise",
           hides=("dnnl.models.ddpm:p_mean_variance", "dnnl.models.ddpm.diffusion:p_mean_variance",
            "dnnl.models.ddpm:p_sample_step", "dnnl.models.ddpm.diffusion:p_sample_step",
            "dnnl.models.ddpm:predict_x0", "dnnl.models.ddpm.diffusion:predict_x0",
            "dnnl.models.ddpm:q_posterior", "dnnl.models.ddpm.diffusion:q_posterior",
            "dnnl.models.ddpm:eps_to_x0", "dnnl.models.ddpm.prediction:eps_to_x0"))
def check_mu_theta(fn) -> list[str]:
    """Check ``fn(schedule, xt, t, eps) -> mu`` (Chapter 2, Eq. @eq-mu-theta).

    ``t`` is an int64 tensor (B,); the result has x_t's shape and dtype. With the true noise the mean must
    equal the oracle's posterior mean μ̃_t(x_t, x_0); with a noisy prediction it must equal @eq-mu-theta.
    """
    ddpm = _ddpm()
    g = _gen(25)
    lin, cos = ddpm.NoiseSchedule.linear(T=1000), ddpm.NoiseSchedule.cosine(T=50)
    cases = [(lin, torch.tensor([0, 1, 250, 500, 998, 999]), True, torch.float64, "linear, T = 1000"),
             (lin, torch.tensor([3, 40, 400, 700, 900, 999]), False, torch.float64, "linear, T = 1000"),
             (cos, torch.tensor([0, 9, 20, 33, 45, 49]), False, torch.float64, "cosine, T = 50"),
             (lin, torch.tensor([10, 10, 600, 600, 950, 5]), False, torch.float32, "linear, T = 1000")]
    tested = _Cases()
    for schedule, t, true_noise, dtype, name in cases:
        x0 = torch.rand(len(t), 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 1
        eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        xt = ddpm.q_sample(schedule, x0, t, eps)
        pred = eps if true_noise else eps + 0.5 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
        xt_in, pred_in = xt.to(dtype), pred.to(dtype)
        kind = "the true noise" if true_noise else "a noisy prediction of the noise"
        on = f"t = {_tlist(t)} ({name}), {kind}, {str(dtype).replace('torch.', '')} inputs"
        args = [xt_in.clone(), t.clone(), pred_in.clone()]
        got = tested.call(fn, schedule, *args, on=on)
        if got is None and tested.fails:
            continue
        got_t = _tensor(got, "your function")
        if got_t.shape == xt.shape:
            _want_dtype(got_t, dtype, on, "the result has the dtype of x_t: cast the float64 coefficients "
                                          "once, to x_t's dtype.")
        x, e = xt_in.double(), pred_in.double()
        ab = _at(schedule.alpha_bars, t, 4)
        if true_noise:  # the property: with the true noise, μ_θ is the oracle's posterior mean
            exp = _at(schedule.posterior_mean_coef1, t, 4) * x0 + _at(schedule.posterior_mean_coef2, t, 4) * xt
        else:
            exp = (x - _at(schedule.betas, t, 4) / (1 - ab).sqrt() * e) / _at(schedule.alphas, t, 4).sqrt()
        tol = 1e-5 if dtype == torch.float64 else 1e-4
        tested.compare(got_t, exp, on=on, variants=_mu_variants(schedule, x, t, e), atol=tol, rtol=tol,
                       what="mean")
    tested.finish()
    return ["mixed timesteps per batch on a linear T = 1000 and a cosine T = 50 schedule, including t = 0 and "
            "t = T − 1, with the true noise and with noisy predictions, float64 and float32",
            "with the true noise your mean is the oracle's posterior mean μ̃_t(x_t, x_0), with a noisy "
            "prediction it is (x_t − β_t/√(1 − ᾱ_t)·ε)/√α_t (within 1e-5); the dtype of x_t is kept"]


# --------------------------------------------------------------------------- exercise 3.6

_H = 1.0 / 255.0


def _ndtr_tanh(z):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (z + 0.044715 * z ** 3)))


def _decoder(x, mean, log_scale, *, h=_H, edges=True, swap=False, inv=None, cdf=torch.special.ndtr,
             log_edges=True):
    """Eq. @eq-decoder in float64 with switches for the classic mistakes (elementwise nats)."""
    inv_std = torch.exp(-log_scale) if inv is None else inv
    c = x - mean
    upper, lower = inv_std * (c + h), inv_std * (c - h)
    mass = (cdf(upper) - cdf(lower)).clamp(min=1e-12)
    if log_edges:
        lo_edge, hi_edge = torch.special.log_ndtr(upper), torch.special.log_ndtr(-lower)
    else:
        lo_edge, hi_edge = torch.log(cdf(upper)), torch.log(1 - cdf(lower))
    if swap:
        lo_edge, hi_edge = hi_edge, lo_edge
    if not edges:
        return torch.log(mass)
    return torch.where(x < -0.999, lo_edge, torch.where(x > 0.999, hi_edge, torch.log(mass)))


def _decoder_variants(x, mean, ls) -> list[_Variant]:
    ref = _decoder(x, mean, ls)
    return [
        _Variant(_decoder(x, mean, ls, h=2 * _H),
                 _why("the bin width", "each level's bin is 2/255 wide: it reaches 1/255 on either side of the "
                                       "level, not 2/255.")),
        _Variant(_decoder(x, mean, ls, edges=False),
                 _why("no open edge bins", "the edge levels −1 and +1 own the half-lines (−∞, −1 + 1/255] and "
                                           "[1 − 1/255, ∞), not bins of width 2/255.")),
        _Variant(_decoder(x, mean, ls, swap=True),
                 _why("the edge bins swapped", "the level −1 owns (−∞, −1 + 1/255], so its mass is Φ of the "
                                               "upper end; the level +1 owns the upper half-line.")),
        _Variant(_decoder(x, mean, ls, inv=torch.exp(-ls / 2)),
                 _why("log standard deviation vs log variance", "log_scale is log σ, the log of the standard deviation, not of the "
                                         "variance.")),
        _Variant(_decoder(x, mean, ls, inv=torch.ones_like(ls)),
                 _why("the bin ends not scaled by σ", "standardise the bin ends: Φ((x − μ ± 1/255)/σ).")),
        *[_Variant(_decoder(x, mean, ls, cdf=_ndtr_tanh, log_edges=exact_edges),
                   _why("an approximate Φ", "this is the tanh approximation of Φ; use the exact "
                                            "torch.special.ndtr and torch.special.log_ndtr."))
          for exact_edges in (False, True)],
        _Variant(ref / math.log(2), _why("bits instead of nats", "the exercise asks for nats (natural log).")),
        _Variant(-ref, _why("a sign error", "return the log-likelihood log p (≤ 0), not its negative.")),
        _Variant(ref.exp(), _why("probabilities instead of log-probabilities",
                                 "these are the bins' masses; return their logarithms.")),
    ]


def _decoder_nan_why(got: torch.Tensor, x: torch.Tensor, exp: torch.Tensor):
    """The cause of non-finite values, named only when they all sit at edge levels or all at interior ones."""
    if got.shape != x.shape or not got.is_floating_point() or bool(torch.isfinite(got).all()):
        return None
    bad = ~torch.isfinite(got)
    edge = (x < -0.999) | (x > 0.999)
    if bool(edge[bad].all()):
        return _why("an underflow of Φ far in the tail",
                    f"at these edge levels Φ is below float64's smallest number (log Φ is down to "
                    f"{_fmt(float(exp[bad].min()))}), so log(Φ) gives −inf: use torch.special.log_ndtr.")
    if not bool(edge[bad].any()):
        return _why("the log of a zero mass far from the mean",
                    "the mass of an interior level far from the mean rounds to 0; clamp it at 1e-12 before "
                    "the log.")
    return None


@_check(3, "decoder_log_likelihood(x, mean, log_scale) -> elementwise log p of 8-bit pixels (nats)",
           "upper = (x − mean + 1/255)/σ, lower = (x − mean − 1/255)/σ with σ = exp(log_scale); interior "
           "levels: log(max(Φ(upper) − Φ(lower), 1e-12)); x = −1: log Φ(upper); x = +1: log(1 − Φ(lower)), via log_ndtr.",
           terse="the discretised Gaussian decoder: each 8-bit level's probability mass, with open edge bins",
           hides=("dnnl.models.ddpm:discretized_gaussian_log_likelihood",
            "dnnl.models.ddpm.elbo:discretized_gaussian_log_likelihood",
            "dnnl.models.ddpm.elbo:_discretized_gaussian_log_likelihood"))
def check_decoder_log_likelihood(fn) -> list[str]:
    """Check ``fn(x, mean, log_scale) -> log p`` elementwise in nats (Chapter 3, Eq. @eq-decoder).

    ``x`` holds 8-bit levels k/127.5 − 1 in [−1, 1], ``mean`` has its shape, ``log_scale`` (log σ) is a
    tensor that broadcasts against them. An interior level's mass is clamped at 1e-12 before the log; the
    edge levels use the exact log Φ (``torch.special.log_ndtr``). The probabilities of the 256 levels must sum to 1; the values
    must equal a float64 reference within 1e-7 (relative 1e-6), also far in the tails of the edge bins.
    """
    ddpm = _ddpm()
    g = _gen(36)
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    lin = ddpm.NoiseSchedule.linear(T=1000)
    sigma1_log = 0.5 * lin.posterior_log_variance_clipped[0].double()
    pix = levels[torch.randint(0, 256, (2, 1, 5, 5), generator=g)]
    pix[0, 0, 0, :2] = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    ls_px = math.log(0.005) + torch.rand(pix.shape, generator=g, dtype=torch.float64) * math.log(10)
    jitter = torch.randn(pix.shape, generator=g, dtype=torch.float64).clamp(-3, 3) * ls_px.exp()
    far_x = torch.tensor([-1.0, 1.0, -1.0, 1.0], dtype=torch.float64)
    far_m = torch.tensor([0.9, -0.9, 0.5, -0.5], dtype=torch.float64)
    cases = [
        ("all 256 levels, mean 0.3, σ = 0.05", levels, torch.full_like(levels, 0.3),
         torch.tensor(math.log(0.05), dtype=torch.float64), True),
        ("all 256 levels, mean −0.95, σ = 0.5 (a wide Gaussian next to the edge)", levels,
         torch.full_like(levels, -0.95), torch.tensor(math.log(0.5), dtype=torch.float64), True),
        ("the oracle's width σ_1 = √β̃_2 with the mean on the pixel (2 images of 5×5 levels)",
         pix, pix.clone(), sigma1_log.clone(), False),
        ("means off the pixels by up to 3σ, one σ in [0.005, 0.05] per pixel", pix, pix + jitter, ls_px, False),
        ("edge levels ±1 with the mean far away (0.9 or 0.5 from the other edge), σ = 0.01", far_x, far_m,
         torch.tensor(math.log(0.01), dtype=torch.float64), False),
    ]
    tested = _Cases()
    for on, x, mean, ls, full in cases:
        args = [x.clone(), mean.clone(), ls.clone()]
        got = tested.call(fn, *args, on=on)
        if got is None and tested.fails:
            continue
        got_t = _tensor(got, "your function")
        exp = _decoder(x, mean, ls)
        nan_why = _decoder_nan_why(got_t, x, exp)
        n_before = len(tested.fails)
        variants = [_Variant(exp.clamp(min=math.log(1e-12)),
                             _why("a clamped probability far in the tail",
                                  "the edge probabilities were clamped before the log; far in the tail log Φ "
                                  "itself is needed: torch.special.log_ndtr.")),
                    *_decoder_variants(x, mean, ls)]
        tested.compare(got_t, exp, on=on, variants=variants, atol=1e-7, rtol=1e-6, what="log-likelihood",
                       nan_why=nan_why)
        total = float(got_t.double().exp().sum()) if got_t.shape == exp.shape else math.nan
        if full and len(tested.fails) > n_before and math.isfinite(total) and abs(total - 1) > 1e-6:
            tested.fails[-1].what += f"\nexp(your values) over the 256 levels sums to {_fmt(total)}; expected 1."
    tested.finish()
    return ["the oracle's width σ_1 = √β̃_2, means off the pixels with per-pixel σ, all 256 levels for a narrow "
            "and a wide Gaussian, and edge pixels far in the tail",
            "every value equals the decoder's log-probability computed in float64 within 1e-6 "
            "(relative); the 256 levels' probabilities sum to 1"]


# --------------------------------------------------------------------------- exercise 4.6

def _lam(schedule, variance: str):
    b, a, ab = (getattr(schedule, n).double() for n in ("betas", "alphas", "alpha_bars"))
    sigma2 = schedule.posterior_variance.double() if variance == "beta_tilde" else b
    return (b ** 2 / (2 * sigma2 * a * (1 - ab)))[1:]


@_check(4, "kl_weights(schedule, variance) -> λ_t for code indices 1..T−1 from the SNR",
           "λ_t = ½(SNR(t−1)/SNR(t) − 1) with the float64 SNR of schedule.snr(), for σ² = β̃; for σ² = β "
           "multiply by β̃_t/β_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t).",
           terse="the KL weight as half the relative drop of the signal-to-noise ratio over one step")
def check_kl_weights(fn) -> list[str]:
    """Check ``fn(schedule, variance) -> lam`` (Chapter 4, Eq. @eq-ch4-weight-snr).

    ``variance`` is ``"beta_tilde"`` (σ_t² = β̃_t) or ``"beta"`` (σ_t² = β_t); the result is a float64
    tensor of shape (T − 1,), one λ_t per KL term (code indices 1..T−1), and must equal the weight of
    @eq-kl-eps, β_t²/(2σ_t²α_t(1 − ᾱ_t)), within 1e-8 (relative).
    """
    ddpm = _ddpm()
    cases = [(ddpm.NoiseSchedule.linear(T=1000), "beta_tilde", "linear, T = 1000"),
             (ddpm.NoiseSchedule.linear(T=1000), "beta", "linear, T = 1000"),
             (ddpm.NoiseSchedule.cosine(T=100), "beta_tilde", "cosine, T = 100"),
             (ddpm.NoiseSchedule.linear(T=10, beta_start=0.01, beta_end=0.3), "beta", "linear, T = 10")]
    tested = _Cases()
    for schedule, variance, name in cases:
        on = f"variance = {variance!r} ({name})"
        got = tested.call(fn, schedule, variance, on=on)
        if got is None and tested.fails:
            continue
        got_t = _tensor(got, "your function")
        T = schedule.T
        if tuple(got_t.shape) == (T,):
            raise _Fail(f"On {on}: your result has shape ({T},), one value per code index 0..T−1; expected "
                        f"({T - 1},).", _why("a weight for the decoder term", "code index 0 is the decoder "
                                             "term L_0, not a KL term: return code indices 1..T−1."))
        if got_t.shape == (T - 1,):
            _want_dtype(got_t, torch.float64, on, "the weights are small relative differences of the SNR: "
                                                  "compute them from the float64 schedule and keep float64.")
        exp = _lam(schedule, variance)
        snr = schedule.snr().double()
        ratio = snr[:-1] / snr[1:]
        bt_over_b = (schedule.posterior_variance.double() / schedule.betas.double())[1:]
        a = schedule.alphas.double()
        snr_a = a / (1 - a)
        variants = [
            _Variant(ratio - 1, _why("the factor ½", "λ_t = ½(SNR(t−1)/SNR(t) − 1).")),
            _Variant(0.5 * (snr[1:] / snr[:-1] - 1),
                     _why("the SNR ratio upside down", "the earlier (larger) SNR goes on top: "
                                                       "½(SNR(t−1)/SNR(t) − 1).")),
            _Variant(0.5 * (snr_a[:-1] / snr_a[1:] - 1),
                     _why("ᾱ vs α in the SNR", "SNR(t) = ᾱ_t/(1 − ᾱ_t) (schedule.snr()), not α_t/(1 − α_t).")),
            _Variant(0.5 * (ratio.sqrt() - 1),
                     _why("a square root where none belongs", "SNR(t) = ᾱ_t/(1 − ᾱ_t), not its square root.")),
        ]
        if variance == "beta":
            variants += [
                _Variant(_lam(schedule, "beta_tilde"),
                         _why("the variance choice ignored", "these are the weights for σ² = β̃_t; for "
                                                             "σ² = β_t multiply them by β̃_t/β_t.")),
                _Variant(_lam(schedule, "beta_tilde") / bt_over_b,
                         _why("the variance factor upside down", "you multiplied by β_t/β̃_t; for σ² = β_t "
                              "the weights are the β̃ ones times β̃_t/β_t, which is below 1.")),
            ]
        tested.compare(got_t, exp, on=on, variants=variants, atol=1e-12, rtol=1e-8, what="λ_t")
    tested.finish()
    return ["σ² = β̃_t and σ² = β_t on linear T = 1000 and T = 10 schedules and a cosine T = 100 schedule",
            "every λ_t equals the weight β_t²/(2σ_t²α_t(1 − ᾱ_t)) of chapter 3 within 1e-8 (relative), in float64"]
