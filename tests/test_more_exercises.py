"""The five later code exercises of chapters 2-5 (dnnl/exercises/bound_checks.py, ema_score_checks.py).

The book's solutions pass and their stubs give TODO; forwarding to the package fails while grading; each
check reads the property it tests (the oracle's mean, the 256 levels summing to 1, the autograd score,
the weights a real SGD step and EMA give), names a cause only where its input isolates one, and never
raises, whatever the student's function returns or does. The wrong-solution corpus for these checks is in
tests/wrong_solutions/ and runs with tests/test_wrong_solutions.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "wrong_solutions"))

import _book  # noqa: E402

import dnnl.exercises as ex  # noqa: E402
from dnnl.exercises import evaluate, list_checks  # noqa: E402
from dnnl.models import ddpm  # noqa: E402

NEW = {"mu_theta": ("check_mu_theta", 2), "decoder_log_likelihood": ("check_decoder_log_likelihood", 3),
       "kl_weights": ("check_kl_weights", 4), "train_step_ema": ("check_train_step_ema", 4),
       "toy_ideal_score": ("check_ideal_score", 5)}


@pytest.fixture(scope="module")
def solutions():
    return _book.solutions()


def test_the_book_calls_each_new_check_on_its_exercise():
    calls = _book.exercise_checks()
    for fn, (check, _) in NEW.items():
        assert calls.get(fn) == check, f"the cell after Exercise {fn} must call {check}"


def test_the_new_checks_are_registered_in_book_order():
    info = {d["name"]: d for d in ex.check_info()}
    order = list_checks()
    for fn, (check, chapter) in NEW.items():
        assert info[check]["chapter"] == chapter
        before = [n for n in order[:order.index(check)] if info[n]["chapter"] > chapter]
        assert not before, f"{check} comes after later chapters' checks {before}"


def test_at_least_twelve_code_exercises_in_chapters_one_to_five():
    assert len(_book.cells()) >= 12


@pytest.mark.parametrize("fn", NEW)
@pytest.mark.parametrize("hide", [False, True])
def test_the_book_solution_passes_and_its_stub_is_todo(fn, hide, solutions):
    check = NEW[fn][0]
    result = evaluate(check, solutions[fn], hints="full", hide=hide)
    assert result.status == "PASS", result.message
    stub = _book.stubs()[fn]
    for level in ("full", "terse"):
        todo = evaluate(check, stub, hints=level, hide=hide)
        assert todo.status == "TODO" and "not implemented yet" in todo.message, todo.message


# --------------------------------------------------------------------------- handing in the library

def _forward_mu(schedule, xt, t, eps):
    return ddpm.p_mean_variance(schedule, eps, xt, t)[0]


def _forward_decoder(x, mean, log_scale):
    return ddpm.discretized_gaussian_log_likelihood(x, mean, log_scale)


def _forward_step(model, ema, optimizer, schedule, x0, step, decay, generator=None):
    loss = ddpm.train_step(model, schedule, x0, optimizer, generator=generator)
    ddpm.ema_update(ema, model, ddpm.ema_decay_at(step, decay))
    return float(loss)


def _forward_score(schedule, xt, t, data):
    return ddpm.ideal_score(schedule, xt, t, data)


@pytest.mark.parametrize("check, fn", [("check_mu_theta", _forward_mu),
                                       ("check_decoder_log_likelihood", _forward_decoder),
                                       ("check_train_step_ema", _forward_step),
                                       ("check_ideal_score", _forward_score)])
def test_forwarding_to_the_package_passes_alone_and_fails_while_graded(check, fn):
    assert evaluate(check, fn).status == "PASS"          # the package's own answer is right
    graded = evaluate(check, fn, hide=True)
    assert graded.status == "FAIL" and graded.cause == "handing in the package's implementation", graded.message
    assert "switched off while this exercise is graded" in graded.message


# --------------------------------------------------------------------------- never raises

def _exits(*args):
    raise SystemExit(3)


def _returns_none(*args):
    return None


def _returns_text(*args):
    return "no idea"


def _returns_pair(*args):
    return torch.zeros(2), torch.zeros(2)


@pytest.mark.parametrize("check", [c for c, _ in NEW.values()])
@pytest.mark.parametrize("fn", [_exits, _returns_none, _returns_text, _returns_pair, lambda: 0])
def test_a_check_never_raises_and_fails_on_nonsense(check, fn):
    result = evaluate(check, fn, hints="terse")
    assert result.status == "FAIL", result.message
    assert "could not run" not in result.message and "Traceback" not in result.message


# --------------------------------------------------------------------------- properties, not lists

def test_mu_theta_is_held_to_the_oracle_mean_with_the_true_noise(solutions):
    """A mean that is right only for predictions far from the true noise cannot pass: the first case
    feeds the true noise, where μ_θ must be the posterior mean μ̃_t(x_t, x_0)."""
    right = solutions["mu_theta"]

    def off_near_the_truth(schedule, xt, t, eps):
        return right(schedule, xt, t, eps) + 1e-3
    result = evaluate("check_mu_theta", off_near_the_truth)
    assert result.status == "FAIL" and "the true noise" in result.message
    assert result.cause is None, result.message        # no known mistake matches: state, do not guess


def test_decoder_probabilities_must_sum_to_one(solutions):
    right = solutions["decoder_log_likelihood"]

    def leaky(x, mean, log_scale):
        return right(x, mean, log_scale) - 0.01       # every level loses 1 % of its mass
    result = evaluate("check_decoder_log_likelihood", leaky)
    assert result.status == "FAIL", result.message
    assert "sums to" in result.message and result.cause is None, result.message


def test_kl_weights_demand_float64_and_the_kl_terms_only(solutions):
    right = solutions["kl_weights"]
    result = evaluate("check_kl_weights", lambda s, v="beta_tilde": torch.cat([right(s, v)[:1], right(s, v)]))
    assert result.status == "FAIL" and result.cause == "a weight for the decoder term", result.message
    result = evaluate("check_kl_weights", lambda s, v="beta_tilde": right(s, v).float())
    assert result.status == "FAIL" and result.cause == "the wrong dtype", result.message


def test_train_step_ema_checks_the_real_update_not_the_loss_alone(solutions):
    right = solutions["train_step_ema"]

    def double_step(model, ema, optimizer, schedule, x0, step, decay, generator=None):
        loss = right(model, ema, optimizer, schedule, x0, step, decay, generator)
        optimizer.step()                                  # a second step on the same gradient
        return loss
    result = evaluate("check_train_step_ema", double_step)
    assert result.status == "FAIL" and "model weights after the step" in result.message, result.message
    assert result.cause is None, result.message


def test_ideal_score_is_compared_with_autograd_of_log_q(solutions):
    """The reference is the gradient of log q(x_t) itself: a score off by a constant factor fails,
    and at small t (weights in log space) the book's solution stays finite."""
    right = solutions["toy_ideal_score"]
    result = evaluate("check_ideal_score", lambda s, x, t, d: 1.01 * right(s, x, t, d))
    assert result.status == "FAIL" and result.cause is None, result.message
    lin = ddpm.NoiseSchedule.linear(T=1000)
    data = torch.tensor([[0.5, 0.5], [-0.5, -0.5]], dtype=torch.float64)
    xt = torch.tensor([[1.6, 1.6], [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 0])
    score = right(lin, xt.detach(), t, data)
    assert torch.isfinite(score).all()
    lq = ddpm.log_marginal(lin, xt, t, data).sum()
    (grad,) = torch.autograd.grad(lq, xt)
    assert torch.allclose(score, grad, rtol=1e-9, atol=1e-9)
