"""Wrong answers to Exercise 4.7, train_step_ema(model, ema, optimizer, schedule, x0, step, decay,
generator), with the cause the check must name. L_simple is written out (corpus files import only torch)."""
import copy

import torch


def _loss(model, schedule, x0, generator):
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    ab = schedule.alpha_bars[t].to(x0.dtype).reshape(-1, 1, 1, 1)
    return (model(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t) - eps).pow(2).mean()


def _ema(ema, model, d):
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.mul_(d).add_(p, alpha=1 - d)


def _sgd(model, optimizer, schedule, x0, generator, zero=True, step=True):
    loss = _loss(model, schedule, x0, generator)
    if zero:
        optimizer.zero_grad()
    loss.backward()
    if step:
        optimizer.step()
    return loss.item()


def no_zero_grad(model, ema, optimizer, schedule, x0, step, decay, generator=None):
    loss = _sgd(model, optimizer, schedule, x0, generator, zero=False)
    _ema(ema, model, min(decay, (1 + step) / (10 + step)))
    return loss


def no_warm_up(model, ema, optimizer, schedule, x0, step, decay, generator=None):
    loss = _sgd(model, optimizer, schedule, x0, generator)
    _ema(ema, model, decay)
    return loss


def ema_first(model, ema, optimizer, schedule, x0, step, decay, generator=None):
    _ema(ema, model, min(decay, (1 + step) / (10 + step)))
    return _sgd(model, optimizer, schedule, x0, generator)


def swapped_weights(model, ema, optimizer, schedule, x0, step, decay, generator=None):
    loss = _sgd(model, optimizer, schedule, x0, generator)
    _ema(ema, model, 1 - min(decay, (1 + step) / (10 + step)))
    return loss


def warm_up_one_late(model, ema, optimizer, schedule, x0, step, decay, generator=None):
    loss = _sgd(model, optimizer, schedule, x0, generator)
    _ema(ema, model, min(decay, (2 + step) / (11 + step)))
    return loss


def warm_up_no_cap(model, ema, optimizer, schedule, x0, step, decay, generator=None):
    loss = _sgd(model, optimizer, schedule, x0, generator)
    _ema(ema, model, (1 + step) / (10 + step))
    return loss


def rebinds_ema(model, ema, optimizer, schedule, x0, step, decay, generator=None):
    loss = _sgd(model, optimizer, schedule, x0, generator)
    d = min(decay, (1 + step) / (10 + step))
    new = copy.deepcopy(ema)
    _ema(new, model, d)
    ema = new  # a new local name: the caller's ema never changes
    return loss


def no_optimizer_step(model, ema, optimizer, schedule, x0, step, decay, generator=None):
    loss = _sgd(model, optimizer, schedule, x0, generator, step=False)
    _ema(ema, model, min(decay, (1 + step) / (10 + step)))
    return loss


WRONG = [
    (no_zero_grad, "gradients accumulated"),
    (no_warm_up, "no warm-up"),
    (ema_first, "before the step"),
    (swapped_weights, "swapped"),
    (warm_up_one_late, "off-by-one"),
    (warm_up_no_cap, "without its cap"),
    (rebinds_ema, "not updated"),
    (no_optimizer_step, "no optimizer step"),
]
