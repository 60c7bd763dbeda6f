"""DDPM, one concept per module in book order:
schedule → diffusion → elbo → losses → unet → train → sample → scheduler → pretrained → ideal
→ ddim → prediction → ddim_scheduler (the η family, the targets ε/x_0/v, a diffusers-style DDIM scheduler)
→ guidance (chapter 7: label dropout and classifier-free guidance).

Code timesteps are 0-based: index ``t`` in 0..T−1 is the paper's step t+1.
"""
from .schedule import NoiseSchedule
from .diffusion import (DECODER_FLOOR, learned_log_variance, oracle_denoise, p_mean_variance, p_sample_step,
                        predict_x0, q_mean_variance, q_posterior, q_sample, split_prediction)
from .elbo import discretized_gaussian_log_likelihood, normal_kl, optimal_variances, prior_bpd, vlb_terms
from .losses import hybrid_loss, min_snr_weights, noise_prediction_loss
from .unet import UNet, sinusoidal_embedding
from .train import TrainConfig, TrainResult, TrainingInterrupted, ema_decay_at, ema_update, lr_factor, train, train_step
from .checkpoint import load_checkpoint, save_checkpoint
from .schedule import timesteps_for
from .sample import SampleOutput, ddim_step, sample
from .scheduler import DDPMScheduler, SchedulerOutput
from .pretrained import available_pretrained, init_weights, load_pretrained, pretrained_info, pretrained_schedule
from .ideal import ideal_eps, ideal_score, ideal_x0, log_marginal
from .ddim import (ddim_inversion_step, ddim_sigma, ddim_step_eta, q_sigma_posterior, rescale_zero_terminal_snr,
                   respaced_betas, visits_step_T)
from .prediction import eps_to_x0, prediction_loss_weight, v_from, v_to_eps, v_to_x0, x0_to_eps
from .ddim_scheduler import DDIMScheduler, DDIMSchedulerOutput
from .guidance import GuidedEps, cfg_eps, drop_labels, guided

__all__ = [
    "NoiseSchedule",
    "q_mean_variance", "q_sample", "q_posterior", "oracle_denoise", "predict_x0", "p_mean_variance",
    "p_sample_step", "learned_log_variance", "split_prediction", "DECODER_FLOOR",
    "normal_kl", "discretized_gaussian_log_likelihood", "prior_bpd", "vlb_terms", "optimal_variances",
    "noise_prediction_loss",
    "min_snr_weights", "hybrid_loss",
    "UNet", "sinusoidal_embedding", "TrainConfig", "TrainResult", "train",
    "train_step", "lr_factor", "ema_decay_at", "ema_update", "TrainingInterrupted",
    "save_checkpoint", "load_checkpoint",
    "timesteps_for", "sample", "SampleOutput", "ddim_step", "DDPMScheduler", "SchedulerOutput",
    "load_pretrained", "pretrained_info", "pretrained_schedule", "available_pretrained", "init_weights",
    "ideal_eps", "ideal_score", "ideal_x0", "log_marginal",
    "ddim_sigma", "q_sigma_posterior", "ddim_step_eta", "ddim_inversion_step", "visits_step_T",
    "respaced_betas", "rescale_zero_terminal_snr",
    "eps_to_x0", "x0_to_eps", "v_from", "v_to_eps", "v_to_x0", "prediction_loss_weight",
    "DDIMScheduler", "DDIMSchedulerOutput",
    "drop_labels", "cfg_eps", "guided", "GuidedEps",
]

