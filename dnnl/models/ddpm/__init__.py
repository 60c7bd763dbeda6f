"""DDPM, one concept per module in book order:
schedule → diffusion → elbo → losses → unet → train → scheduler → sample → pretrained → ideal.

Code timesteps are 0-based: index ``t`` in 0..T−1 is the paper's step t+1.
"""
from .schedule import NoiseSchedule
from .diffusion import (oracle_denoise, p_mean_variance, p_sample_step, predict_x0, q_mean_variance,
                        q_posterior, q_sample)
from .elbo import discretized_gaussian_log_likelihood, normal_kl, optimal_variances, prior_bpd, vlb_terms
from .losses import noise_prediction_loss
from .unet import UNet, sinusoidal_embedding
from .train import TrainConfig, TrainResult, train
from .scheduler import DDPMScheduler, SchedulerOutput
from .sample import make_grid_image, sample, save_gif, save_grid
from .pretrained import load_pretrained, pretrained_info
from .ideal import ideal_eps, ideal_score, ideal_x0, log_marginal
from . import utils

__all__ = [
    "NoiseSchedule",
    "q_mean_variance", "q_sample", "q_posterior", "oracle_denoise", "predict_x0", "p_mean_variance",
    "p_sample_step",
    "normal_kl", "discretized_gaussian_log_likelihood", "prior_bpd", "vlb_terms", "optimal_variances",
    "noise_prediction_loss",
    "UNet", "sinusoidal_embedding", "TrainConfig", "TrainResult", "train",
    "DDPMScheduler", "SchedulerOutput",
    "sample", "save_grid", "save_gif", "make_grid_image", "load_pretrained", "pretrained_info",
    "ideal_eps", "ideal_score", "ideal_x0", "log_marginal",
    "utils",
]

# `python -m dnnl.models.ddpm.train` runs a module this package has already imported; that is intended.
import warnings as _warnings

_warnings.filterwarnings("ignore", message=r"'dnnl\.models\.ddpm\.train' found in sys\.modules",
                         category=RuntimeWarning)
