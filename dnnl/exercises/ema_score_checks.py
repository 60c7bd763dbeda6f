"""Self-checks for a training step with an EMA (chapter 4) and the ideal score of a toy data set (chapter 5).

Same contract as :mod:`dnnl.exercises.checks`: a check runs the student's function on seeded inputs,
compares it with a float64 reference computed here, names the failing input, and names a cause only when
the result matches one known mistake on that input; otherwise it states what it observed. It never raises.
"""
from __future__ import annotations

import copy
import math

import torch

from .checks import _at, _call, _Cases, _check, _ddpm, _Fail, _fmt, _gen, _Misuse, _tensor, _tlist, _Variant, _why

__all__ = ["check_train_step_ema", "check_ideal_score"]


# --------------------------------------------------------------------------- exercise 4.7

class _TinyEps(torch.nn.Module):
    """ε_θ(x_t, t) = w·x_t + b·t/T + c with one w and c per channel; records the (x_t, t) of every call."""

    def __init__(self, T: int, channels: int):
        super().__init__()
        self.T = T
        self.w = torch.nn.Parameter(torch.linspace(0.3, 0.8, channels).reshape(channels, 1, 1))
        self.b = torch.nn.Parameter(torch.tensor(0.4))
        self.c = torch.nn.Parameter(torch.linspace(-0.2, 0.1, channels).reshape(channels, 1, 1))
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, xt, t):
        if not isinstance(xt, torch.Tensor) or xt.dim() != 4:
            raise _Misuse("the model must be called as model(x_t, t) with x_t a batch of images (B, C, H, W).")
        if not isinstance(t, torch.Tensor) or t.is_floating_point() or t.shape != (xt.shape[0],):
            raise _Misuse("the model must get t as an int64 tensor of shape (B,), one timestep per image.")
        if int(t.min()) < 0 or int(t.max()) > self.T - 1:
            raise _Misuse(f"the model got a timestep outside 0..T−1 = 0..{self.T - 1}; draw t with "
                          "torch.randint(0, T, (B,), generator=generator).")
        self.calls.append((xt.detach().double().clone(), t.detach().clone()))
        return self.w * xt + self.b * (t.to(xt.dtype) / self.T).reshape(-1, 1, 1, 1) + self.c


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().double().reshape(-1) for p in module.parameters()])


def _grad_at(params: torch.Tensor, schedule, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, channels: int):
    """L_simple and its gradient at the flat parameters ``params``, for the x_t and t the model was given."""
    T = schedule.T
    p = params.clone().requires_grad_(True)
    w, b, c = p[:channels].reshape(-1, 1, 1), p[channels], p[channels + 1:].reshape(-1, 1, 1)
    ab = _at(schedule.alpha_bars, t, 4)
    eps = (xt - ab.sqrt() * x0.double()) / (1 - ab).sqrt()
    out = w * xt + b * (t.double() / T).reshape(-1, 1, 1, 1) + c
    loss = ((out - eps) ** 2).mean()
    (grad,) = torch.autograd.grad(loss, p)
    return float(loss.detach()), grad


def _loss_value(out, on: str) -> float:
    if isinstance(out, torch.Tensor) and out.numel() == 1:
        return float(out.detach())
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        return float(out)
    kind = f"a tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else f"a {type(out).__name__}"
    raise _Fail(f"On {on}: your function returned {kind}; expected the loss, one number.",
                _why("a missing return of the loss", "return the step's L_simple (loss.detach() or loss.item())."))


@_check(4, "train_step_ema(model, ema, optimizer, schedule, x0, step, decay, generator) -> loss",
        "compute L_simple on x0, clear the old gradients, back-propagate it and step the optimizer; then, "
        "without gradient tracking, d_k = min(decay, (1 + step)/(10 + step)) and p_ema ← d_k·p_ema + (1 − d_k)·p "
        "in place for each pair of parameters.",
        terse="one step of Algorithm 1 followed by a warmed-up exponential moving average of the weights",
        hides=("dnnl.models.ddpm:train_step", "dnnl.models.ddpm.train:train_step",
               "dnnl.models.ddpm:ema_update", "dnnl.models.ddpm.train:ema_update",
               "dnnl.models.ddpm:ema_decay_at", "dnnl.models.ddpm.train:ema_decay_at"))
def check_train_step_ema(fn) -> list[str]:
    """Check ``fn(model, ema, optimizer, schedule, x0, step, decay, generator) -> loss`` (Chapter 4, Eq. @eq-ch4-ema).

    A recording model sees the x_t and t of the step; from them the check rebuilds L_simple and its
    gradient at the old weights. The model's new weights must be one optimizer step on that gradient alone
    (SGD, so θ − lr·∇L), and the EMA's must be d·θ_ema + (1 − d)·θ_new with d = min(decay, (1+step)/(10+step)).
    """
    ddpm = _ddpm()
    schedule = ddpm.NoiseSchedule.linear(T=20, beta_start=0.01, beta_end=0.3)
    C, lr = 2, 0.1
    x0 = torch.rand(16, C, 3, 3, generator=_gen(47)) * 2 - 1
    model = _TinyEps(schedule.T, C)
    ema = copy.deepcopy(model).requires_grad_(False)
    with torch.no_grad():
        for p in ema.parameters():
            p.add_(0.5)  # an EMA that has drifted from the model, as after some training
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    acc = torch.zeros_like(_flat(model))
    cases = [(0, 0.999), (7, 0.999), (20_000, 0.999), (20_001, 0.9)]
    for k, (step, decay) in enumerate(cases):
        on = f"call {k + 1} of {len(cases)} (step = {step}, decay = {decay}, SGD with lr = {lr}, same model)"
        theta, theta_ema = _flat(model), _flat(ema)
        model.calls.clear()
        out = _call(fn, model, ema, optimizer, schedule, x0.clone(), step, decay, _gen(400 + k), on=on)
        if len(model.calls) != 1:
            raise _Fail(f"On {on}: your function called the model {len(model.calls)} times; expected once.",
                        _why("more than one forward pass", "one step needs exactly one L_simple, one "
                                                           "model(x_t, t)."))
        xt, t = model.calls[0]
        loss, grad = _grad_at(theta, schedule, x0, xt, t, C)
        value = _loss_value(out, on)
        if abs(value - loss) > 1e-5 * abs(loss) + 1e-6:
            raise _Fail(f"On {on}: your function returned {_fmt(value)}, but L_simple for the x_t and t given "
                        f"to the model is {_fmt(loss)} (at the weights before the step).")
        new = theta - lr * grad
        _compare_flat(_flat(model), new, on=on, what="model weights after the step", variants=[
            _Variant(theta, _why("no optimizer step", "the weights did not change: call optimizer.step() after "
                                                      "loss.backward().")),
            _Variant(theta - lr * (grad + acc), _why("gradients accumulated across steps", "call "
                                                     "optimizer.zero_grad() before loss.backward().")) if k else None,
        ])
        d = min(decay, (1 + step) / (10 + step))
        d_next = min(decay, (2 + step) / (11 + step))
        variants = [
            _Variant(theta_ema, _why("the EMA not updated", "the ema passed in is unchanged: update its "
                                                            "parameters in place, under torch.no_grad().")),
            _Variant(new, _why("the EMA replaced by the model", "p_ema ← d·p_ema + (1 − d)·p keeps most of the "
                                                                "old average; you copied the model.")),
            _Variant((1 - d) * theta_ema + d * new, _why("the two EMA weights swapped", "the old average keeps "
                                                         "the weight d: d·p_ema + (1 − d)·p.")),
            _Variant(d * theta_ema + (1 - d) * theta, _why("the EMA of the weights before the step", "update the "
                                                           "EMA after optimizer.step(), with the new weights.")),
            _Variant(decay * theta_ema + (1 - decay) * new, _why("no warm-up of the decay", "use "
                                                                 "d = min(decay, (1 + step)/(10 + step)).")),
            _Variant(d_next * theta_ema + (1 - d_next) * new, _why("an off-by-one in the warm-up", "step is "
                                                                   "0-based: d = min(decay, (1 + step)/(10 + step)).")),
        ]
        w = (1 + step) / (10 + step)
        if w != d:
            variants.append(_Variant(w * theta_ema + (1 - w) * new, _why("the warm-up without its cap", "the "
                                     "decay is the smaller of decay and (1 + step)/(10 + step).")))
        _compare_flat(_flat(ema), d * theta_ema + (1 - d) * new, on=on, what="EMA weights", variants=variants)
        acc = acc + grad
    return [f"{len(cases)} consecutive steps on one model with SGD (lr = {lr}) at steps 0, 7, 20,000 and 20,001, "
            "decays 0.999 and 0.9",
            "the loss is L_simple at the old weights; the new weights are one step on that gradient alone; "
            "the EMA is d·θ_ema + (1 − d)·θ_new with the warmed-up d (within 1e-5)"]


def _compare_flat(got: torch.Tensor, exp: torch.Tensor, *, on: str, what: str, variants) -> None:
    tested = _Cases()
    tested.compare(got, exp, on=on, variants=[v for v in variants if v is not None], atol=1e-5, rtol=1e-5,
                   what=what)
    if tested.fails:
        fail = tested.fails[0]
        raise _Fail(fail.what.replace("wrong values.", f"wrong {what}."), fail.whys[:1])


# --------------------------------------------------------------------------- exercise 5.6

def _posterior_mean(ab, xt, data, *, sq=True, two=2.0, dim=1, hard=False, uniform=False):
    """E[x_0 | x_t] over a finite data set (B, D), in float64, with switches for the classic mistakes."""
    m = ab.sqrt() if sq else ab
    d2 = ((xt[:, None, :] - m[:, None, :] * data[None]) ** 2).sum(-1)  # (B, N)
    logw = -d2 / (two * (1 - ab))
    if uniform:
        return data.mean(0).expand_as(xt)
    if hard:
        return data[logw.argmax(1)]
    return torch.softmax(logw, dim=dim) @ data


def _score(ab, xt, data, **kw):
    m = ab.sqrt() if kw.get("sq", True) else ab
    return -(xt - m * _posterior_mean(ab, xt, data, **kw)) / (1 - ab)


def _autograd_score(ab, xt, data):
    """∇ log q(x_t) of the mixture (1/N) Σ_n N(√ᾱ_t x_0^n, (1 − ᾱ_t) I), by autograd (Eq. @eq-marginal)."""
    x = xt.clone().requires_grad_(True)
    d2 = ((x[:, None, :] - ab.sqrt()[:, None, :] * data[None]) ** 2).sum(-1)
    (grad,) = torch.autograd.grad(torch.logsumexp(-d2 / (2 * (1 - ab)), dim=1).sum(), x)
    return grad


@_check(5, "ideal_score(schedule, xt, t, data) -> ∇ log q(x_t) for a finite data set",
        "log-weights −‖x_t − √ᾱ_t·x_0^n‖²/(2(1 − ᾱ_t)); w = softmax over n; x̂_0 = Σ w_n x_0^n; "
        "score = −(x_t − √ᾱ_t·x̂_0)/(1 − ᾱ_t).",
        terse="the score of a mixture of Gaussians centred on the scaled data points, with log-space weights",
        hides=("dnnl.models.ddpm:ideal_score", "dnnl.models.ddpm:ideal_eps", "dnnl.models.ddpm:ideal_x0",
               "dnnl.models.ddpm:log_marginal", "dnnl.models.ddpm.ideal:_ideal_eps",
               "dnnl.models.ddpm.ideal:_posterior_stats"))
def check_ideal_score(fn) -> list[str]:
    """Check ``fn(schedule, xt, t, data) -> score`` (Chapter 5, Eqs. @eq-marginal and @eq-score-identity).

    ``xt`` is (B, D), ``t`` an int64 tensor (B,), ``data`` (N, D); the result (B, D) has x_t's dtype and
    must equal the gradient of log q(x_t), taken here by autograd, also where 1 − ᾱ_t is tiny.
    """
    ddpm = _ddpm()
    g = _gen(56)
    lin, cos = ddpm.NoiseSchedule.linear(T=1000), ddpm.NoiseSchedule.cosine(T=50)
    data2 = torch.rand(6, 2, generator=g, dtype=torch.float64) * 1.6 - 0.8
    data3 = torch.rand(5, 3, generator=g, dtype=torch.float64) * 2 - 1
    mid = torch.stack([torch.tensor([1.6, 1.6]), torch.tensor([-1.6, 1.6]), torch.tensor([0.0, -1.6]),
                       (data2[0] + data2[1]) / 2, data2[2] * 0.99, torch.zeros(2)]).double()
    cases = [(lin, torch.tensor([100, 300, 500, 700, 900, 999]), data2, None, torch.float64,
              "6 points in 2-D, linear T = 1000"),
             (lin, torch.tensor([0, 0, 1, 0, 3, 10]), data2, mid, torch.float64,
              "6 points in 2-D, linear T = 1000, small t with x_t away from the points"),
             (cos, torch.tensor([2, 10, 25, 40, 49]), data3, None, torch.float32, "5 points in 3-D, cosine T = 50")]
    tested = _Cases()
    for schedule, t, data, xt_given, dtype, name in cases:
        ab = _at(schedule.alpha_bars, t, 2)
        if xt_given is None:
            x0 = data[torch.randint(0, len(data), (len(t),), generator=g)]
            xt = ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn(x0.shape, generator=g, dtype=torch.float64)
        else:
            xt = ab.sqrt() * xt_given
        xt_in, data_in = xt.to(dtype), data.to(dtype)
        on = f"t = {_tlist(t)} ({name}, {str(dtype).replace('torch.', '')})"
        got = tested.call(fn, schedule, xt_in.clone(), t.clone(), data_in.clone(), on=on)
        got_t = _tensor(got, "your function")
        if got_t.shape == xt.shape and got_t.dtype != dtype:
            raise _Fail(f"On {on}: your score has dtype {got_t.dtype}; the exercise asks for x_t's dtype, {dtype}.",
                        _why("the wrong dtype", "compute in float64 and cast the result once, to x_t's dtype."))
        x, d = xt_in.double(), data_in.double()
        exp = _autograd_score(ab, x, d)
        T = schedule.T
        A = lambda name, shift=0: _at(getattr(schedule, name), (t + shift).clamp(0, T - 1), 2)  # noqa: E731
        eps = -exp * (1 - ab).sqrt()
        variants = [
            _Variant(-exp, _why("a sign error", "the score points towards the data: −(x_t − √ᾱ_t·x̂_0)/(1 − ᾱ_t).")),
            _Variant(eps, _why("the ideal noise in place of the score", "this is E[ε | x_t]; the score is "
                                                                        "−E[ε | x_t]/√(1 − ᾱ_t).")),
            _Variant(-eps, _why("the negative ideal noise in place of the score", "this is −E[ε | x_t]; the score divides it "
                                                                 "by √(1 − ᾱ_t).")),
            _Variant(_score(ab, x, d, uniform=True), _why("unweighted data points", "every x_0^n counts equally; "
                     "weight each by q(x_t | x_0^n), normalised over n.")),
            _Variant(_score(ab, x, d, hard=True), _why("only the nearest point", "that is the limit of tiny "
                     "1 − ᾱ_t; in general every point carries a softmax weight.")),
            _Variant(_score(ab, x, d, two=1.0), _why("the factor 2 in the log-weights", "the log-weight is "
                     "−‖x_t − √ᾱ_t·x_0‖²/(2(1 − ᾱ_t)).")),
            _Variant(_score(ab, x, d, sq=False), _why("a missing square root on the signal coefficient", "the components are centred on "
                                                      "√ᾱ_t·x_0, not ᾱ_t·x_0.")),
            _Variant(_score(ab, x, d, dim=0), _why("the softmax over the wrong axis", "normalise the weights "
                     "over the data points, for each x_t, not over the batch.")),
            _Variant(_score(A("alphas"), x, d), _why("ᾱ vs α", "q(x_t | x_0) uses ᾱ_t (schedule.alpha_bars), not "
                                                               "the single-step α_t.")),
        ]
        for shift, sign in ((-1, "−"), (1, "+")):
            variants.append(_Variant(_score(A("alpha_bars", shift), x, d), _why("an off-by-one in t",
                            f"you used ᾱ at index t{sign}1; schedule.alpha_bars[t] already belongs to code index t.")))
        nan_why = None
        if xt_given is not None:
            nan_why = _why("weights that underflow", "where 1 − ᾱ_t is tiny, exp(log-weight) is 0 for every "
                           "point, and normalising gives 0/0: normalise in log space (torch.softmax of the "
                           "log-weights).")
        tol = 1e-6 if dtype == torch.float64 else 1e-4
        tested.compare(got_t, exp, on=on, variants=variants, atol=tol, rtol=tol, what="score", nan_why=nan_why)
    tested.finish()
    return ["2-D and 3-D toy sets on a linear T = 1000 and a cosine T = 50 schedule, from t = 0 to t = T − 1, "
            "with x_t away from the points where 1 − ᾱ_t is tiny, float64 and float32",
            "every score equals ∇ log q(x_t) taken by autograd (within 1e-6, 1e-4 in float32)"]
