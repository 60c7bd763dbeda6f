"""Chapter 6's exercise checks (dnnl/exercises/ddim_checks.py) pass the reference solutions and name the cause of each classic mistake."""
from __future__ import annotations

import sys

import pytest
import torch

import dnnl.exercises as ex


from _check_helpers import _run, assert_fails, assert_passes  # noqa: E402,F401


def _ab(schedule, t):
    return 1.0 if t < 0 else schedule.alpha_bars[t].item()


# --------------------------------------------------------------------------- 6.1 the η step

def make_step(*, eta_scale=None, z_power=1, prev_rule="right", recompute=True):
    """The reference DDIM step with one switch per classic mistake."""

    def step(schedule, eps, xt, t, t_prev, eta, z, clip=False):
        ab_t = schedule.alpha_bars[t].item()
        if prev_rule == "right":
            ab_prev = _ab(schedule, t_prev)
        elif prev_rule == "wrap":
            ab_prev = schedule.alpha_bars[t_prev].item()        # -1 wraps to the last step
        else:
            ab_prev = schedule.alpha_bars[t - 1].item()         # the full chain's neighbour
        e = eta if eta_scale is None else eta_scale(eta)
        sigma = e * max((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev), 0.0) ** 0.5
        x0 = (xt - (1 - ab_t) ** 0.5 * eps) / ab_t ** 0.5
        if clip:
            x0 = x0.clamp(-1, 1)
            if recompute:
                eps = (xt - ab_t ** 0.5 * x0) / (1 - ab_t) ** 0.5
        direction = max(1 - ab_prev - sigma ** 2, 0.0) ** 0.5
        return ab_prev ** 0.5 * x0 + direction * eps + sigma ** z_power * z

    return step


def test_ddim_step_passes_the_solution(capsys):
    assert_passes(ex.check_ddim_step, make_step(), capsys)


@pytest.mark.parametrize("wrong, needle", [
    (make_step(eta_scale=lambda eta: 1.0), "η off"),
    (make_step(eta_scale=lambda eta: 0.0), "σ = 0"),
    (make_step(eta_scale=lambda eta: eta ** 2), "η²"),
    (make_step(z_power=2), "σ², the variance"),
    (make_step(prev_rule="wrap"), "LAST step"),
    (make_step(prev_rule="neighbour"), "the wrong ᾱ_prev"),
    (make_step(recompute=False), "not recomputed after clipping"),
])
def test_ddim_step_names_the_mistake(wrong, needle, capsys):
    assert_fails(ex.check_ddim_step, wrong, capsys, needle)


def test_ddim_step_diagnoses_only_what_it_isolates(capsys):
    out = assert_fails(ex.check_ddim_step, make_step(recompute=False), capsys)
    assert "η off" not in out and "LAST step" not in out
    out = assert_fails(ex.check_ddim_step, make_step(eta_scale=lambda eta: 1.0), capsys)
    assert "clipping" not in out and "ᾱ_prev" not in out


# --------------------------------------------------------------------------- 6.2 β′

def make_betas(kind="right"):
    def respaced(schedule, timesteps):
        ab = schedule.alpha_bars[timesteps]
        first = schedule.alpha_bars[:1] if kind == "first" else ab.new_ones(1)
        prev = torch.cat([first, ab[:-1]])
        if kind == "original":
            return schedule.betas[timesteps]
        if kind == "sqrt":
            return 1 - (ab / prev).sqrt()
        if kind == "alpha":
            return ab / prev
        out = 1 - ab / prev
        return out.flip(0) if kind == "flip" else out

    return respaced


def test_respaced_betas_passes_the_solution(capsys):
    assert_passes(ex.check_respaced_betas, make_betas(), capsys)


@pytest.mark.parametrize("kind, needle", [
    ("original", "original β_t"), ("sqrt", "a √ where none belongs"), ("alpha", "this is α′"),
    ("first", "the wrong ᾱ_prev"), ("flip", "reversed"),
])
def test_respaced_betas_names_the_mistake(kind, needle, capsys):
    assert_fails(ex.check_respaced_betas, make_betas(kind), capsys, needle)


# --------------------------------------------------------------------------- 6.3 from v

def make_from_v(kind="right"):
    def from_v(schedule, xt, t, v):
        ab = schedule.alpha_bars[t].reshape(-1, 1, 1, 1)
        a, s = ab.sqrt(), (1 - ab).sqrt()
        if kind == "swap":
            a, s = s, a
        if kind == "nosqrt":
            a, s = ab, 1 - ab
        eps, x0 = s * xt + a * v, a * xt - s * v
        if kind == "sign":
            x0 = a * xt + s * v
        if kind == "order":
            return x0, eps
        if kind == "one":
            return eps
        return eps, x0

    return from_v


def test_from_v_passes_the_solution(capsys):
    assert_passes(ex.check_from_v, make_from_v(), capsys)


@pytest.mark.parametrize("kind, needle", [
    ("swap", "swapped"), ("nosqrt", "a missing square root"), ("sign", "a sign error"), ("order", "wrong order"),
    ("one", "the pair (eps, x0)"),
])
def test_from_v_names_the_mistake(kind, needle, capsys):
    assert_fails(ex.check_from_v, make_from_v(kind), capsys, needle)


# --------------------------------------------------------------------------- 6.4 inversion

def make_invert(kind="right"):
    def invert(schedule, eps, x, t, t_next):
        ab_t = schedule.alpha_bars[t].item() if kind == "wrap" else _ab(schedule, t)
        ab_n = schedule.alpha_bars[t_next].item()
        if kind == "swap":
            ab_t, ab_n = ab_n, ab_t
        x0 = x if kind == "as_x0" else (x - (1 - ab_t) ** 0.5 * eps) / ab_t ** 0.5
        if kind == "nosqrt":
            return ab_n * x0 + (1 - ab_n) * eps
        return ab_n ** 0.5 * x0 + (1 - ab_n) ** 0.5 * eps

    return invert


def test_invert_step_passes_the_solution_and_reports_the_property(capsys):
    out = assert_passes(ex.check_invert_step, make_invert(), capsys)
    assert "DDIM step back" in out


@pytest.mark.parametrize("kind, needle", [
    ("wrap", "LAST step"), ("swap", "swapped"), ("nosqrt", "a missing square root"), ("as_x0", "x is x_t"),
])
def test_invert_step_names_the_mistake(kind, needle, capsys):
    assert_fails(ex.check_invert_step, make_invert(kind), capsys, needle)


# --------------------------------------------------------------------------- never raise

@pytest.mark.parametrize("check", [ex.check_ddim_step, ex.check_respaced_betas, ex.check_from_v,
                                   ex.check_invert_step])
def test_checks_never_raise_on_student_exits_and_report_stubs(check, capsys):
    def exits(*args):
        sys.exit(3)

    def stub(*args):
        raise NotImplementedError("use schedule.alpha_bars")

    def broken(*args):
        raise ValueError("boom")

    assert_fails(check, exits, capsys, "SystemExit")
    ok, out = _run(check, stub, capsys)
    assert not ok and "not implemented yet" in out and "use schedule.alpha_bars" in out
    assert_fails(check, broken, capsys, "ValueError")
    assert_fails(check, lambda *args: None, capsys, "None")


def test_keyboard_interrupt_is_not_swallowed():
    def interrupted(*args):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ex.check_invert_step(interrupted)


def test_chapter_6_checks_are_registered_after_chapter_5():
    info = ex.check_info()
    names = [c["name"] for c in info if c["chapter"] == 6]
    assert names == ["check_ddim_step", "check_respaced_betas", "check_from_v", "check_invert_step"]
    assert all(name in ex.__all__ for name in names)
