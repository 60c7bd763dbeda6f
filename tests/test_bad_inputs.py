"""A corpus of bad calls into the schedule, diffusion, bound, loss, ideal-denoiser, U-Net, metrics and
device helpers: each must raise a TypeError or ValueError whose message names the argument (and, for a
value, the allowed range). One case per line: the call, the exception type, a regex for the message.
"""
import math
import re

import pytest
import torch

import dnnl
from dnnl import metrics
from dnnl.models.ddpm import (NoiseSchedule, UNet, discretized_gaussian_log_likelihood, ideal_eps, ideal_score,
                              ideal_x0, log_marginal, noise_prediction_loss, normal_kl, optimal_variances,
                              oracle_denoise, p_mean_variance, p_sample_step, predict_x0, prior_bpd,
                              q_mean_variance, q_posterior, q_sample, sinusoidal_embedding, vlb_terms)

S = NoiseSchedule.linear()
S4 = NoiseSchedule.linear(T=4)
X = torch.zeros(2, 1, 4, 4)
XT = torch.zeros(2, 3)
DATA = torch.ones(4, 3)
L = torch.zeros(2, 3, dtype=torch.float64)   # data for the decoder likelihood
NAN = float("nan")
INF = float("inf")


def zero_eps(xt, t):
    return torch.zeros_like(xt)


def small_unet(**kw):
    args = dict(channels=(8, 16), groups=4, heads=2)
    args.update(kw)
    return UNet(**args)


NET = small_unet()
IMG = torch.zeros(2, 1, 8, 8)
CLASSIFIER = metrics.MNISTClassifier()
DIGITS = torch.zeros(4, 1, 28, 28)

CASES = {
    # ---------------------------------------------------------------- NoiseSchedule constructors
    "linear beta_start str": (lambda: NoiseSchedule.linear(100, "0.001", .02), TypeError,
                              r"beta_start must be a real number in \(0, 1\) \(got str '0.001'\)"),
    "linear beta_end str": (lambda: NoiseSchedule.linear(100, 1e-4, "0.02"), TypeError, r"beta_end must be a real"),
    "linear beta_start None": (lambda: NoiseSchedule.linear(100, None, .02), TypeError, r"beta_start must be a real"),
    "linear beta_start bool": (lambda: NoiseSchedule.linear(100, True, .02), TypeError, r"beta_start must be a real"),
    "linear beta_start complex": (lambda: NoiseSchedule.linear(100, 1e-4 + 1j, .02), TypeError,
                                 r"beta_start must be a real number"),
    "linear beta_start 0": (lambda: NoiseSchedule.linear(100, 0.0, .02), ValueError, r"beta_start .* in \(0, 1\)"),
    "linear beta_start < 0": (lambda: NoiseSchedule.linear(100, -1e-4, .02), ValueError, r"beta_start .*\(0, 1\)"),
    "linear beta_end 1": (lambda: NoiseSchedule.linear(100, 1e-4, 1.0), ValueError, r"beta_end .* in \(0, 1\)"),
    "linear beta_start nan": (lambda: NoiseSchedule.linear(100, NAN, .02), ValueError, r"beta_start must be a finite"),
    "linear beta_end inf": (lambda: NoiseSchedule.linear(100, 1e-4, INF), ValueError, r"beta_end must be a finite"),
    "linear start > end": (lambda: NoiseSchedule.linear(100, .5, .1), ValueError, r"beta_start must be <= beta_end"),
    "linear T str": (lambda: NoiseSchedule.linear("100"), TypeError, r"T must be an int >= 2 \(got str"),
    "linear T float": (lambda: NoiseSchedule.linear(10.0), TypeError, r"T must be an int >= 2"),
    "linear T 1": (lambda: NoiseSchedule.linear(1), ValueError, r"T must be an int >= 2 \(got 1\)"),
    "linear T 0": (lambda: NoiseSchedule.linear(0), ValueError, r"T must be an int >= 2"),
    "linear T negative": (lambda: NoiseSchedule.linear(-5), ValueError, r"T must be an int >= 2"),
    "cosine T str": (lambda: NoiseSchedule.cosine(T="a"), TypeError, r"T must be an int"),
    "cosine T bool": (lambda: NoiseSchedule.cosine(T=True), TypeError, r"T must be an int"),
    "cosine s negative": (lambda: NoiseSchedule.cosine(s=-0.1), ValueError, r"s must be a finite number >= 0"),
    "cosine s str": (lambda: NoiseSchedule.cosine(s="x"), TypeError, r"s must be a real number"),
    "cosine s nan": (lambda: NoiseSchedule.cosine(s=NAN), ValueError, r"s must be a finite number"),
    "cosine max_beta 0": (lambda: NoiseSchedule.cosine(max_beta=0), ValueError, r"max_beta .* in \(0, 1\)"),
    "cosine max_beta 1.5": (lambda: NoiseSchedule.cosine(max_beta=1.5), ValueError, r"max_beta .* in \(0, 1\)"),
    "cosine max_beta None": (lambda: NoiseSchedule.cosine(max_beta=None), TypeError, r"max_beta must be a real"),
    "betas complex list": (lambda: NoiseSchedule([0.1 + 0.1j, 0.2]), TypeError, r"betas must be .*real floats"),
    "betas complex tensor": (lambda: NoiseSchedule(torch.tensor([0.1, 0.2], dtype=torch.complex64)), TypeError,
                             r"betas must be real floats .*complex64"),
    "betas str": (lambda: NoiseSchedule("abc"), TypeError, r"betas must be a 1-D sequence"),
    "betas None": (lambda: NoiseSchedule(None), TypeError, r"betas must be a 1-D sequence"),
    "betas bool tensor": (lambda: NoiseSchedule(torch.tensor([True, False])), TypeError, r"betas must be real"),
    "betas 2-D": (lambda: NoiseSchedule([[0.1, 0.2]]), ValueError, r"betas must be 1-D"),
    "betas one step": (lambda: NoiseSchedule([0.5]), ValueError, r"betas must hold at least 2 steps"),
    "betas above 1": (lambda: NoiseSchedule([0.1, 1.5]), ValueError, r"beta must lie in the open interval \(0, 1\)"),
    "betas nan": (lambda: NoiseSchedule([0.1, NAN]), ValueError, r"betas must be finite"),
    "respaced floats": (lambda: NoiseSchedule.respaced(S, [1.5, 3.7]), TypeError, r"timesteps must be integers"),
    "respaced float tensor": (lambda: NoiseSchedule.respaced(S, torch.tensor([0.0, 10.0])), TypeError,
                              r"timesteps must be integers"),
    "respaced too large": (lambda: NoiseSchedule.respaced(S, [0, 1000]), ValueError,
                           r"timesteps must be in \[0, 999\] .*got 1000"),
    "respaced negative": (lambda: NoiseSchedule.respaced(S, [-1, 3]), ValueError, r"timesteps must be in \[0, 999\]"),
    "respaced empty": (lambda: NoiseSchedule.respaced(S, []), ValueError, r"timesteps must hold at least one"),
    "respaced str": (lambda: NoiseSchedule.respaced(S, "abc"), TypeError, r"timesteps must be a sequence"),
    "respaced bools": (lambda: NoiseSchedule.respaced(S, [True, False]), TypeError, r"timesteps must be integers"),
    "respaced schedule": (lambda: NoiseSchedule.respaced("S", [1, 2]), TypeError, r"schedule must be a NoiseSchedule"),
    "to a dtype": (lambda: S.to(torch.float32), TypeError, r"device must be a device .*stays float64"),
    # ---------------------------------------------------------------- NoiseSchedule.gather
    "gather unknown name": (lambda: S.gather("bogus", 3, X), ValueError, r"buffer must be one of betas, .*'bogus'"),
    "gather non-buffer attribute": (lambda: S.gather("T", 3, X), ValueError, r"buffer must be one of"),
    "gather short tensor": (lambda: S.gather(torch.ones(5), 3, X), ValueError,
                            r"buffer must be a name or a tensor of shape \(T,\) = \(1000,\)"),
    "gather int buffer": (lambda: S.gather(3, 3, X), TypeError, r"buffer must be a torch.Tensor"),
    "gather t = T": (lambda: S.gather("betas", 1000, X), ValueError, r"t must be in \[0, 999\] .*got 1000"),
    "gather t < 0": (lambda: S.gather("betas", -1, X), ValueError, r"t must be in \[0, 999\] .*got -1"),
    "gather t tensor too large": (lambda: S.gather("betas", torch.tensor([0, 1000]), X), ValueError,
                                  r"t must be in \[0, 999\] .*got 1000"),
    "gather t float": (lambda: S.gather("betas", 2.5, X), TypeError, r"t must be a Python int"),
    "gather like list": (lambda: S.gather("betas", 3, [1.0]), TypeError, r"like must be a torch.Tensor"),
    "gather batch mismatch": (lambda: S.gather("betas", torch.tensor([1, 2, 3]), X), ValueError,
                              r"t has 3 timesteps but the batch has 2"),
    "gather batch of t, scalar like": (lambda: S.gather("betas", torch.tensor([1, 2]), torch.tensor(0.0)),
                                       ValueError, r"needs batched data"),
    # ---------------------------------------------------------------- diffusion
    "q_sample huge t": (lambda: q_sample(S, X, 10**30), ValueError, r"t must be in \[0, 999\] .*got 1000000"),
    "q_sample huge negative t": (lambda: q_sample(S, X, -10**30), ValueError, r"t must be in \[0, 999\]"),
    "q_sample t str": (lambda: q_sample(S, X, "3"), TypeError, r"t must be a Python int or an int64 tensor"),
    "q_sample t None": (lambda: q_sample(S, X, None), TypeError, r"t must be a Python int"),
    "q_sample t float tensor": (lambda: q_sample(S, X, torch.tensor([1.0, 2.0])), TypeError, r"t must hold integer"),
    "q_sample t bool tensor": (lambda: q_sample(S, X, torch.tensor([True, False])), TypeError,
                               r"t must hold integer"),
    "q_sample t 2-D": (lambda: q_sample(S, X, torch.ones(2, 2, dtype=torch.long)), ValueError,
                       r"t must be a scalar or have shape \(B,\)"),
    "q_sample noise shape": (lambda: q_sample(S, X, 3, torch.zeros(2, 1, 4, 1)), ValueError,
                             r"noise must have the same shape as x0"),
    "q_sample noise list": (lambda: q_sample(S, X, 3, [0.0]), TypeError, r"noise must be a torch.Tensor"),
    "q_sample generator int": (lambda: q_sample(S, X, 3, generator=42), TypeError,
                               r"generator must be a torch.Generator or None"),
    "q_sample x0 long": (lambda: q_sample(S, X.long(), 3), TypeError, r"x0 must be a floating-point tensor"),
    "q_sample x0 complex": (lambda: q_sample(S, X.to(torch.complex64), 3), TypeError,
                            r"x0 must be a real floating-point tensor"),
    "q_sample x0 str": (lambda: q_sample(S, "x", 3), TypeError, r"x0 must be a torch.Tensor"),
    "q_sample schedule None": (lambda: q_sample(None, X, 3), TypeError, r"schedule must be a NoiseSchedule"),
    "q_sample batch of t, scalar x0": (lambda: q_sample(S, torch.tensor(0.5), torch.tensor([1, 2])), ValueError,
                                       r"needs batched data, but x0 is a scalar"),
    "q_mean_variance batch mismatch": (lambda: q_mean_variance(S, X, torch.tensor([5, 6, 7])), ValueError,
                                       r"t has 3 timesteps but the batch has 2"),
    "q_posterior xt shape": (lambda: q_posterior(S, X, X[:1], 3), ValueError, r"xt must have the same shape as x0"),
    "q_posterior t = T": (lambda: q_posterior(S, X, X, 1000), ValueError, r"t must be in \[0, 999\]"),
    "q_posterior xt int": (lambda: q_posterior(S, X, X.long(), 3), TypeError, r"xt must be a floating-point"),
    "oracle_denoise generator str": (lambda: oracle_denoise(S, X, X, 3, generator="g"), TypeError,
                                     r"generator must be a torch.Generator"),
    "predict_x0 eps shape": (lambda: predict_x0(S, X, 3, X[:, :, :2]), ValueError,
                             r"eps must have the same shape as xt"),
    "predict_x0 eps None": (lambda: predict_x0(S, X, 3, None), TypeError, r"eps must be a torch.Tensor"),
    "p_mean_variance t 2-D": (lambda: p_mean_variance(S, X, X, torch.tensor([[1, 2]])), ValueError,
                              r"t must be a scalar or have shape \(B,\)"),
    "p_sample_step t = T": (lambda: p_sample_step(S, X, X, 1000), ValueError, r"t must be in \[0, 999\]"),
    "p_sample_step generator": (lambda: p_sample_step(S, X, X, 3, generator=0), TypeError,
                                r"generator must be a torch.Generator"),
    # ---------------------------------------------------------------- the bound
    "normal_kl (2,3) vs (4,)": (lambda: normal_kl(torch.zeros(2, 3), torch.zeros(4), 0.0, 0.0), ValueError,
                                r"mean1, logvar1 must have one shape.*mean1 \(2, 3\), logvar1 \(4,\)"),
    "normal_kl (3,) vs (3,1)": (lambda: normal_kl(torch.zeros(3), torch.zeros(3, 1), 0.0, 0.0), ValueError,
                                r"must have one shape"),
    "normal_kl (4,) vs (4,1,4,4)": (lambda: normal_kl(torch.zeros(4), 0.0, torch.zeros(4, 1, 4, 4), 0.0),
                                    ValueError, r"mean1, mean2 must have one shape"),
    "normal_kl (3,1) vs (1,3)": (lambda: normal_kl(torch.zeros(3, 1), torch.zeros(1, 3), 0.0, 0.0), ValueError,
                                 r"must have one shape"),
    "normal_kl logvar1 str": (lambda: normal_kl(torch.zeros(2), "a", 0.0, 0.0), TypeError,
                              r"logvar1 must be a real number"),
    "normal_kl logvar1 None": (lambda: normal_kl(torch.zeros(2), None, 0.0, 0.0), TypeError, r"logvar1 must be"),
    "normal_kl mean2 bool": (lambda: normal_kl(torch.zeros(2), 0.0, True, 0.0), TypeError, r"mean2 must be a real"),
    "normal_kl logvar2 nan": (lambda: normal_kl(torch.zeros(2), 0.0, 0.0, NAN), ValueError,
                              r"logvar2 must be a finite number"),
    "normal_kl mean1 long": (lambda: normal_kl(torch.zeros(2, dtype=torch.long), 0.0, 0.0, 0.0), TypeError,
                             r"mean1 must be a floating-point tensor"),
    "normal_kl only numbers": (lambda: normal_kl(0.0, 0.0, 1.0, 0.0), TypeError, r"at least one torch.Tensor"),
    "decoder log_scale str": (lambda: discretized_gaussian_log_likelihood(L, L, "a"), TypeError,
                              r"log_scale must be a real number"),
    "decoder log_scale None": (lambda: discretized_gaussian_log_likelihood(L, L, None), TypeError,
                               r"log_scale must be a real number"),
    "decoder log_scale inf": (lambda: discretized_gaussian_log_likelihood(L, L, INF), ValueError,
                              r"log_scale must be a finite number"),
    "decoder log_scale (3,)": (lambda: discretized_gaussian_log_likelihood(L, L, torch.zeros(3, dtype=L.dtype)),
                               ValueError, r"x, log_scale must have one shape"),
    "decoder log_scale long": (lambda: discretized_gaussian_log_likelihood(L, L, torch.zeros(2, 3).long()),
                               TypeError, r"log_scale must be a floating-point tensor"),
    "decoder mean shape": (lambda: discretized_gaussian_log_likelihood(L, L[:1], 0.0), ValueError,
                           r"mean must have the same shape as x"),
    "decoder x outside": (lambda: discretized_gaussian_log_likelihood(L + 3, L, 0.0), ValueError,
                          r"x must lie in \[-1, 1\]"),
    "decoder x nan": (lambda: discretized_gaussian_log_likelihood(L + NAN, L, 0.0), ValueError,
                      r"x must lie in \[-1, 1\]"),
    "decoder x list": (lambda: discretized_gaussian_log_likelihood([0.0], L, 0.0), TypeError,
                       r"x must be a torch.Tensor"),
    "prior_bpd outside": (lambda: prior_bpd(S, X * 2 + 3), ValueError, r"x0 must lie in \[-1, 1\] .*got values in"),
    "prior_bpd empty": (lambda: prior_bpd(S, torch.zeros(0, 1, 4, 4)), ValueError,
                        r"x0 must hold at least one example"),
    "prior_bpd scalar": (lambda: prior_bpd(S, torch.tensor(0.5)), ValueError, r"x0 must have at least 1 dimension"),
    "prior_bpd long": (lambda: prior_bpd(S, X.long()), TypeError, r"x0 must be a floating-point tensor"),
    "prior_bpd schedule": (lambda: prior_bpd("linear", X), TypeError, r"schedule must be a NoiseSchedule"),
    "vlb_terms empty": (lambda: vlb_terms(S4, zero_eps, torch.zeros(0, 4)), ValueError,
                        r"x0 must hold at least one example"),
    "vlb_terms outside": (lambda: vlb_terms(S4, zero_eps, X + 2), ValueError, r"x0 must lie in \[-1, 1\]"),
    "vlb_terms eps_fn str": (lambda: vlb_terms(S4, "f", X), TypeError, r"eps_fn must be callable"),
    "vlb_terms generator": (lambda: vlb_terms(S4, zero_eps, X, generator=1), TypeError,
                            r"generator must be a torch.Generator"),
    "vlb_terms eps_fn broadcast shape": (lambda: vlb_terms(S4, lambda xt, t: xt[:, :, :1, :1], X), ValueError,
                                         r"eps_fn\(xt, t\) must have the same shape as xt"),
    "vlb_terms eps_fn list": (lambda: vlb_terms(S4, lambda xt, t: [0.0], X), TypeError,
                              r"eps_fn\(xt, t\) must be a torch.Tensor"),
    "vlb_terms variances list": (lambda: vlb_terms(S4, zero_eps, X, variances=[1.0] * 4), TypeError,
                                 r"variances must be a tensor of shape \(T,\) = \(4,\)"),
    "vlb_terms variances complex": (lambda: vlb_terms(S4, zero_eps, X, variances=torch.ones(4, dtype=torch.cfloat)),
                                    TypeError, r"variances must be a tensor .*complex"),
    "vlb_terms variances shape": (lambda: vlb_terms(S4, zero_eps, X, variances=torch.ones(3)), ValueError,
                                  r"variances must have shape \(T,\) = \(4,\)"),
    "vlb_terms variances zero": (lambda: vlb_terms(S4, zero_eps, X, variances=torch.zeros(4)), ValueError,
                                 r"variances must be finite and > 0"),
    "optimal_variances empty": (lambda: optimal_variances(S4, zero_eps, torch.zeros(0, 3)), ValueError,
                                r"x0 must hold at least one example"),
    "optimal_variances outside": (lambda: optimal_variances(S4, zero_eps, torch.full((2, 3), 5.0)), ValueError,
                                  r"x0 must lie in \[-1, 1\]"),
    # ---------------------------------------------------------------- L_simple
    "loss output (B,1,1,1)": (lambda: noise_prediction_loss(lambda xt, t: xt[:, :, :1, :1], S, X), ValueError,
                              r"model\(xt, t\) must have the same shape as x0: x0 has \(2, 1, 4, 4\)"),
    "loss output scalar": (lambda: noise_prediction_loss(lambda xt, t: xt.mean(), S, X), ValueError,
                           r"model\(xt, t\) must have the same shape as x0"),
    "loss output list": (lambda: noise_prediction_loss(lambda xt, t: [0.0], S, X), TypeError,
                         r"model\(xt, t\) must be a torch.Tensor"),
    "loss empty batch": (lambda: noise_prediction_loss(zero_eps, S, torch.zeros(0, 1, 4, 4)), ValueError,
                         r"x0 must hold at least one example"),
    "loss outside": (lambda: noise_prediction_loss(zero_eps, S, X + 5), ValueError, r"x0 must lie in \[-1, 1\]"),
    "loss nan data": (lambda: noise_prediction_loss(zero_eps, S, X + NAN), ValueError, r"x0 must lie in \[-1, 1\]"),
    "loss generator": (lambda: noise_prediction_loss(zero_eps, S, X, generator="g"), TypeError,
                       r"generator must be a torch.Generator"),
    "loss x0 long": (lambda: noise_prediction_loss(zero_eps, S, X.long()), TypeError,
                     r"x0 must be a floating-point tensor"),
    "loss model None": (lambda: noise_prediction_loss(None, S, X), TypeError, r"model must be callable"),
    "loss schedule": (lambda: noise_prediction_loss(zero_eps, "S", X), TypeError, r"schedule must be a NoiseSchedule"),
    "loss scalar x0": (lambda: noise_prediction_loss(zero_eps, S, torch.tensor(0.2)), ValueError,
                       r"x0 must have at least 1 dimension"),
    # ---------------------------------------------------------------- the ideal denoiser
    "ideal_eps empty xt": (lambda: ideal_eps(S, torch.zeros(0, 3), 5, DATA), ValueError,
                           r"xt must hold at least one example"),
    "ideal_eps empty data": (lambda: ideal_eps(S, XT, 5, torch.zeros(0, 3)), ValueError,
                             r"data must hold at least one example"),
    "ideal_eps chunk_size 0": (lambda: ideal_eps(S, XT, 5, DATA, chunk_size=0), ValueError,
                               r"chunk_size must be an int >= 1 \(got 0\)"),
    "ideal_eps chunk_size float": (lambda: ideal_eps(S, XT, 5, DATA, chunk_size=2.5), TypeError,
                                   r"chunk_size must be an int >= 1"),
    "ideal_eps t = T": (lambda: ideal_eps(S, XT, 1000, DATA), ValueError, r"t must be in \[0, 999\]"),
    "ideal_eps data rows": (lambda: ideal_eps(S, XT, 5, torch.zeros(4, 2)), ValueError,
                            r"data rows must have the shape of one x_t"),
    "ideal_x0 data long": (lambda: ideal_x0(S, XT, 5, DATA.long()), TypeError,
                           r"data must be a floating-point tensor"),
    "ideal_score t str": (lambda: ideal_score(S, XT, "5", DATA), TypeError, r"t must be a Python int"),
    "log_marginal batch": (lambda: log_marginal(S, XT, torch.tensor([1, 2, 3]), DATA), ValueError,
                           r"t has 3 timesteps but the batch has 2"),
    "ideal_eps xt list": (lambda: ideal_eps(S, [0.0], 5, DATA), TypeError, r"xt must be a torch.Tensor"),
    "ideal_eps schedule": (lambda: ideal_eps(None, XT, 5, DATA), TypeError, r"schedule must be a NoiseSchedule"),
    # ---------------------------------------------------------------- the U-Net
    "unet in_channels 0": (lambda: small_unet(in_channels=0), ValueError, r"in_channels must be an int >= 1 \(got 0\)"),
    "unet in_channels float": (lambda: small_unet(in_channels=1.0), TypeError, r"in_channels must be an int >= 1"),
    "unet out_channels -1": (lambda: small_unet(out_channels=-1), ValueError, r"out_channels must be an int >= 1"),
    "unet num_res_blocks 1.5": (lambda: small_unet(num_res_blocks=1.5), TypeError,
                                r"num_res_blocks must be an int >= 1 \(got float 1.5\)"),
    "unet num_res_blocks 0": (lambda: small_unet(num_res_blocks=0), ValueError, r"num_res_blocks must be an int >= 1"),
    "unet channels bare int": (lambda: small_unet(channels=16), TypeError,
                               r"channels must be a tuple of positive ints.*\(got int 16\)"),
    "unet channels str": (lambda: small_unet(channels="16"), TypeError, r"channels must be a tuple"),
    "unet channels empty": (lambda: small_unet(channels=()), ValueError, r"channels must be a non-empty tuple"),
    "unet channels zero": (lambda: small_unet(channels=(16, 0)), ValueError, r"channels\[1\] must be an int >= 1"),
    "unet channels float": (lambda: small_unet(channels=(16, 32.0)), TypeError, r"channels\[1\] must be an int"),
    "unet groups 0": (lambda: small_unet(groups=0), ValueError, r"groups must be an int >= 1 \(got 0\)"),
    "unet groups not dividing": (lambda: small_unet(groups=3), ValueError, r"divisible by groups=3"),
    "unet groups float": (lambda: small_unet(groups=4.0), TypeError, r"groups must be an int"),
    "unet heads 0": (lambda: small_unet(heads=0), ValueError, r"heads must be an int >= 1"),
    "unet heads not dividing": (lambda: small_unet(heads=3), ValueError, r"divisible by heads \(3\)"),
    "unet attention str": (lambda: small_unet(attention="no"), TypeError, r"attention must be True or False"),
    "unet dropout 1.5": (lambda: small_unet(dropout=1.5), ValueError, r"dropout must be a finite number in \[0, 1\)"),
    "unet dropout str": (lambda: small_unet(dropout="0.1"), TypeError, r"dropout must be a real number"),
    "unet time_dim 0": (lambda: small_unet(time_dim=0), ValueError, r"time_dim must be an int >= 1"),
    "unet image_size str": (lambda: small_unet(image_size="28"), TypeError, r"image_size must be an int"),
    "unet image_size odd": (lambda: small_unet(image_size=27), ValueError, r"27x27 does not fit"),
    "unet x long": (lambda: NET(IMG.long(), 3), TypeError, r"x must be a floating-point tensor .*torch.int64"),
    "unet x bool": (lambda: NET(IMG.bool(), 3), TypeError, r"x must be a floating-point tensor .*torch.bool"),
    "unet x complex": (lambda: NET(IMG.to(torch.complex64), 3), TypeError, r"x must be a floating-point tensor"),
    "unet x list": (lambda: NET([0.0], 3), ValueError, r"x must be a tensor of shape \(B, C, H, W\)"),
    "unet x 3-D": (lambda: NET(IMG[0], 3), ValueError, r"x must be a tensor of shape \(B, C, H, W\)"),
    "unet x channels": (lambda: NET(torch.zeros(2, 3, 8, 8), 3), ValueError, r"in_channels=1"),
    "unet x side": (lambda: NET(torch.zeros(2, 1, 7, 8), 3), ValueError, r"7x8 does not fit .*divisible by 2\*\*1"),
    "unet t float": (lambda: NET(IMG, 2.5), TypeError, r"t must be an int or an int64 tensor"),
    "unet t str": (lambda: NET(IMG, "3"), TypeError, r"t must be an int or an int64 tensor"),
    "unet t float tensor": (lambda: NET(IMG, torch.tensor([0.5, 1.0])), TypeError, r"t must hold integer timesteps"),
    "unet t negative": (lambda: NET(IMG, -1), ValueError, r"t must be >= 0"),
    "unet t negative tensor": (lambda: NET(IMG, torch.tensor([-1, 2])), ValueError, r"t must be >= 0"),
    "unet t huge": (lambda: NET(IMG, 10**30), ValueError, r"t must be >= 0 and fit in int64"),
    "unet t batch": (lambda: NET(IMG, torch.tensor([1, 2, 3])), ValueError, r"t must be a scalar or have shape \(B,\)"),
    # ---------------------------------------------------------------- the time embedding
    "embedding t str": (lambda: sinusoidal_embedding("a", 8), TypeError, r"t must be a real tensor or a number"),
    "embedding t None": (lambda: sinusoidal_embedding(None, 8), TypeError, r"t must be a real tensor or a number"),
    "embedding t bool tensor": (lambda: sinusoidal_embedding(torch.tensor([True]), 8), TypeError, r"t must be a real"),
    "embedding t complex": (lambda: sinusoidal_embedding(torch.tensor([1j]), 8), TypeError, r"t must be a real"),
    "embedding t 2-D": (lambda: sinusoidal_embedding(torch.zeros(2, 2), 8), ValueError,
                        r"t must be a scalar or have shape \(B,\)"),
    "embedding dim odd": (lambda: sinusoidal_embedding(3, 7), ValueError, r"dim must be an even int >= 2"),
    "embedding dim float": (lambda: sinusoidal_embedding(3, 8.0), TypeError, r"dim must be an int >= 2"),
    "embedding dim 0": (lambda: sinusoidal_embedding(3, 0), ValueError, r"dim must be an int >= 2"),
    "embedding max_period 0": (lambda: sinusoidal_embedding(3, 8, max_period=0), ValueError,
                               r"max_period must be a finite number > 0 \(got 0.0\)"),
    "embedding max_period negative": (lambda: sinusoidal_embedding(3, 8, max_period=-5), ValueError,
                                      r"max_period must be a finite number > 0"),
    "embedding max_period str": (lambda: sinusoidal_embedding(3, 8, max_period="a"), TypeError,
                                 r"max_period must be a real number > 0"),
    "embedding max_period inf": (lambda: sinusoidal_embedding(3, 8, max_period=INF), ValueError,
                                 r"max_period must be a finite number"),
    # ---------------------------------------------------------------- seeds and devices
    "set_seed float": (lambda: dnnl.set_seed(1.5), TypeError, r"seed must be an int in \[0, 4294967295\]"),
    "set_seed str": (lambda: dnnl.set_seed("1"), TypeError, r"seed must be an int"),
    "set_seed negative": (lambda: dnnl.set_seed(-1), ValueError, r"seed must be an int in \[0, 4294967295\]"),
    "set_seed 2**32": (lambda: dnnl.set_seed(2**32), ValueError, r"seed must be an int in \[0, 4294967295\]"),
    "resolve_device banana": (lambda: dnnl.resolve_device("banana"), ValueError,
                              r"device='banana' is not a torch device name; device must be one of: .*cpu"),
    "resolve_device index": (lambda: dnnl.resolve_device("cuda:99"), ValueError,
                             r"device='cuda:99', but .*device must be one of: .*cpu"),
    "resolve_device int": (lambda: dnnl.resolve_device(3), TypeError, r"device must be a device name .*available"),
    "resolve_device named": (lambda: dnnl.resolve_device("nope", name="sample(device=)"), ValueError,
                             r"sample\(device=\)='nope' is not a torch device name"),
    # ---------------------------------------------------------------- sample quality
    "sample_quality outside": (lambda: metrics.sample_quality(DIGITS + 3, classifier=CLASSIFIER), ValueError,
                               r"images must lie in \[-1, 1\]"),
    "sample_quality nan": (lambda: metrics.sample_quality(DIGITS + NAN, classifier=CLASSIFIER), ValueError,
                           r"images must lie in \[-1, 1\]"),
    "sample_quality reference outside": (lambda: metrics.sample_quality(DIGITS, reference=DIGITS * 2 + 2,
                                                                        classifier=CLASSIFIER), ValueError,
                                         r"reference must lie in \[-1, 1\]"),
    "extract_features one image": (lambda: metrics.extract_features(DIGITS[:1], CLASSIFIER), ValueError,
                                   r"images must hold at least 2 images"),
    "predict_proba 32x32": (lambda: metrics.predict_proba(torch.zeros(4, 1, 32, 32), CLASSIFIER), ValueError,
                            r"images must have shape \(N, 1, 28, 28\)"),
    "extract_features batch_size 0": (lambda: metrics.extract_features(DIGITS, CLASSIFIER, batch_size=0), ValueError,
                                      r"batch_size must be an int >= 1"),
    "predict_proba batch_size float": (lambda: metrics.predict_proba(DIGITS, CLASSIFIER, batch_size=2.5), TypeError,
                                       r"batch_size must be an int >= 1"),
    "frechet_distance 1-D": (lambda: metrics.frechet_distance(torch.zeros(3), torch.zeros(3, 2)), ValueError,
                             r"feats_a must have shape \(N, D\)"),
    "real_vs_real n float": (lambda: metrics.real_vs_real(1.5), TypeError, r"n must be an int \(got float 1.5\)"),
    "real_vs_real seed": (lambda: metrics.real_vs_real(5, seed="0"), TypeError, r"seed must be an int >= 0"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_a_clear_error(name):
    call, error, pattern = CASES[name]
    with pytest.raises(error, match=pattern):
        call()


def test_the_corpus_is_large_and_every_message_says_what_is_allowed():
    assert len(CASES) >= 100
    for name, (call, error, _) in CASES.items():
        assert error in (TypeError, ValueError), name
        with pytest.raises(error) as info:
            call()
        assert re.search(r"\b(must|needs|does not fit)\b", str(info.value)), (name, str(info.value))


def test_data_range_is_checked_where_the_math_needs_images_and_not_where_it_is_general():
    far = torch.full((3, 2), 4.0)
    assert torch.isfinite(ideal_eps(S, far, 10, far * 2)).all()   # any data set: general by design
    assert math.isfinite(float(normal_kl(far, 0.0, 0.0, 0.0).sum()))
    with pytest.raises(ValueError, match=r"x0 must lie in \[-1, 1\]"):
        prior_bpd(S, far)
