"""The check API, and chapters 1-3: the checks pass the reference solutions and catch classic mistakes."""
from __future__ import annotations

import importlib
import math

import pytest
import torch

import dnnl.exercises as ex
from dnnl.data import to_model_range
from dnnl.models import ddpm


from _check_helpers import _run, assert_fails, assert_passes  # noqa: E402,F401


def _v(buf, t, x):
    """A float64 schedule buffer gathered at t and shaped to broadcast against x."""
    return buf[t].to(x.dtype).reshape(-1, *[1] * (x.dim() - 1))


# --------------------------------------------------------------------------- the package API

def test_all_checks_are_exported_and_listed_in_book_order():
    names = ex.list_checks()
    ours = ["check_to_model_range", "check_q_sample", "check_oracle_step", "check_normal_kl", "check_prior_bpd",
            "check_l_simple", "check_sampler", "check_mc_eps", "check_ddim_step", "check_respaced_betas",
            "check_from_v", "check_invert_step"]
    assert [n for n in names if n in ours] == ours
    for name in names:
        assert name in ex.__all__ and callable(getattr(ex, name)) and getattr(ex, name).__doc__
    chapters = [c["chapter"] for c in ex.check_info()]
    assert chapters == sorted(chapters)  # book order, whichever module registered a check


def test_every_check_has_a_terse_hint_and_names_what_it_hides():
    for info in ex.check_info():
        assert info["terse"] and info["terse"] != info["hint"], info["name"]
        for spec in info["hides"]:
            module, _, attr = spec.partition(":")
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            assert callable(obj), spec
    hides = {i["name"]: i["hides"] for i in ex.check_info()}
    for name in ["check_to_model_range", "check_q_sample", "check_oracle_step", "check_normal_kl",
                 "check_prior_bpd", "check_l_simple", "check_sampler", "check_mc_eps"]:
        assert hides[name], name


@pytest.mark.parametrize("name", ["check_to_model_range", "check_q_sample", "check_oracle_step", "check_normal_kl",
                                  "check_prior_bpd", "check_l_simple", "check_sampler", "check_mc_eps"])
def test_stub_raising_not_implemented_prints_hint_and_returns_false(name, capsys):
    def stub(*args):
        raise NotImplementedError("use schedule.alpha_bars")

    ok, out = _run(getattr(ex, name), stub, capsys)
    assert ok is False
    assert "not implemented yet" in out and "use schedule.alpha_bars" in out
    result = ex.evaluate(name, stub, hints="terse")
    assert result.status == "TODO" and "use schedule.alpha_bars" not in result.message


def test_stub_without_message_gets_the_checks_own_hint(capsys):
    def stub(schedule, x0, t, noise):
        raise NotImplementedError

    ok, out = _run(ex.check_q_sample, stub, capsys)
    assert not ok and "not implemented yet" in out and "√ᾱ_t" in out


def test_other_exceptions_are_reported_by_type_without_raising(capsys):
    def broken(schedule, x0, t, noise):
        return x0 / 0 + undefined_name  # noqa: F821

    out = assert_fails(ex.check_q_sample, broken, capsys, "NameError", "undefined_name")
    assert "t = [" in out  # says on which input


def test_a_non_function_is_refused_politely(capsys):
    ok, out = _run(ex.check_normal_kl, 3.0, capsys)
    assert not ok and "expected your function" in out


def test_evaluate_returns_the_verdict_and_prints_nothing(capsys):
    def chatty(m1, lv1, m2, lv2):
        print("debugging")
        return ddpm.normal_kl(m1, lv1, m2, lv2)

    result = ex.evaluate("check_normal_kl", chatty)
    assert capsys.readouterr().out == ""
    assert result.status == "PASS" and result.name == "check_normal_kl" and result.tested
    assert result.message.startswith("✅ check_normal_kl: passed.") and result.output.startswith("debugging")
    assert ex.check_normal_kl(chatty) is True
    assert capsys.readouterr().out.startswith("debugging")
    with pytest.raises(ValueError, match="hints"):
        ex.evaluate("check_normal_kl", chatty, hints="short")
    with pytest.raises(ValueError, match="check_nope"):
        ex.evaluate("check_nope", chatty)


@pytest.mark.parametrize("exc", [SystemExit(3), GeneratorExit(), BaseException("odd")])
def test_any_base_exception_from_the_student_is_a_verdict(exc):
    def leaves(*args):
        raise exc

    for name in ex.list_checks():
        result = ex.evaluate(name, leaves)
        assert result.status == "FAIL" and type(exc).__name__ in result.message, name


def test_keyboard_interrupt_goes_through():
    def stop(*args):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ex.evaluate("check_q_sample", stop)


def test_hint_level_comes_from_the_environment(monkeypatch):
    def stub(*args):
        raise NotImplementedError

    info = {i["name"]: i for i in ex.check_info()}["check_q_sample"]
    monkeypatch.setenv("DNNL_HINTS", "terse")
    assert info["terse"] in ex.evaluate("check_q_sample", stub).message
    monkeypatch.setenv("DNNL_HINTS", "full")
    assert info["hint"] in ex.evaluate("check_q_sample", stub).message
    monkeypatch.delenv("DNNL_HINTS")
    assert info["hint"] in ex.evaluate("check_q_sample", stub).message


def test_hiding_switches_off_the_package_and_its_aliases_only_during_the_call():
    alias = ddpm.q_sample

    def forwards(schedule, x0, t, noise):
        return alias(schedule, x0, t, noise)

    assert ex.evaluate("check_q_sample", forwards).status == "PASS"  # self-study: allowed
    result = ex.evaluate("check_q_sample", forwards, hide=True)
    assert result.status == "FAIL" and "switched off" in result.message
    assert "package" in result.cause
    s = ddpm.NoiseSchedule.linear(T=10)
    x = torch.zeros(2, 1, 2, 2)
    assert torch.equal(ddpm.q_sample(s, x, 3, x), x)  # restored afterwards


def test_an_in_place_edit_of_any_input_fails(capsys):
    def edits_schedule(schedule, x0, t, noise):
        schedule.alpha_bars.mul_(1.0 + 1e-3)
        return ddpm.q_sample(schedule, x0, t, noise)

    assert_fails(ex.check_q_sample, edits_schedule, capsys, "in place", "alpha_bars")


def test_check_leaves_the_global_random_stream_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    ex.check_normal_kl(ddpm.normal_kl)
    assert torch.equal(torch.rand(3), expected)


# --------------------------------------------------------------------------- chapter 1

def test_to_model_range_passes_reference(capsys):
    assert_passes(ex.check_to_model_range, to_model_range, capsys)

    def by_hand(x):
        return x.float() / 127.5 - 1 if x.dtype == torch.uint8 else 2 * x - 1

    assert_passes(ex.check_to_model_range, by_hand, capsys)


@pytest.mark.parametrize("wrong, needle", [
    (lambda x: x.float() / 255 if x.dtype == torch.uint8 else x.clone(), "[0, 1]"),
    (lambda x: 2 * (x.float() / 255) - 1, "treated as 0..255"),
    (lambda x: x * 2 - 1, "dtype torch.uint8"),
    (lambda x: x.float() / 127.5 if x.dtype == torch.uint8 else 2 * x, "[0, 2]"),
    (lambda x: ((x.float() / 255 if x.dtype == torch.uint8 else x) - 0.1307) / 0.3081, "mean and std"),
])
def test_to_model_range_catches_range_mistakes(wrong, needle, capsys):
    assert_fails(ex.check_to_model_range, wrong, capsys, needle, "[−1, 1]")


def test_to_model_range_catches_in_place_change(capsys):
    def in_place(x):
        return x.float().div(127.5).sub(1) if x.dtype == torch.uint8 else x.mul_(2).sub_(1)

    assert_fails(ex.check_to_model_range, in_place, capsys, "in place")


def test_q_sample_passes_reference_and_from_scratch(capsys):
    assert_passes(ex.check_q_sample, lambda s, x0, t, n: ddpm.q_sample(s, x0, t, n), capsys)

    def from_scratch(schedule, x0, t, noise):
        ab = schedule.alpha_bars[t].float().view(-1, 1, 1, 1)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    assert_passes(ex.check_q_sample, from_scratch, capsys)


def _qs(coef_fn):
    def fn(schedule, x0, t, noise):
        a, b = coef_fn(schedule, t, x0)
        return a * x0 + b * noise
    return fn


@pytest.mark.parametrize("wrong, needles", [
    (_qs(lambda s, t, x: (_v(s.alphas, t, x).sqrt(), (1 - _v(s.alphas, t, x)).sqrt())), ["ᾱ vs α"]),
    (_qs(lambda s, t, x: (_v(s.alpha_bars, t, x), 1 - _v(s.alpha_bars, t, x))), ["missing square root"]),
    (_qs(lambda s, t, x: (_v(s.alpha_bars, t, x).sqrt(), 1 - _v(s.alpha_bars, t, x))),
     ["variance used for the standard deviation", "noise"]),
    (_qs(lambda s, t, x: (_v(s.alpha_bars_prev, t, x).sqrt(), (1 - _v(s.alpha_bars_prev, t, x)).sqrt())),
     ["off-by-one", "t−1"]),
    (_qs(lambda s, t, x: (_v(s.alpha_bars, t + 1, x).sqrt(), (1 - _v(s.alpha_bars, t + 1, x)).sqrt())),
     ["off-by-one", "t+1"]),
    (lambda s, x0, t, n: ddpm.q_sample(s, (x0 + 1) / 2, t, n), ["rescaled", "[0, 1]"]),
    (lambda s, x0, t, n: ddpm.q_sample(s, x0, t, torch.randn_like(x0)), ["own noise", "noise"]),
    (lambda s, x0, t, n: torch.where((t == 0).view(-1, 1, 1, 1), x0, ddpm.q_sample(s, x0, t, n)), ["t = 0"]),
    (lambda s, x0, t, n: ddpm.q_sample(ddpm.NoiseSchedule.linear(1000), x0, t, n), ["schedule"]),
])
def test_q_sample_catches_classic_mistakes(wrong, needles, capsys):
    assert_fails(ex.check_q_sample, wrong, capsys, "expected", "got", *needles)


def test_q_sample_explains_shape_errors(capsys):
    def no_reshape(schedule, x0, t, noise):
        ab = schedule.alpha_bars[t].float()
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    assert_fails(ex.check_q_sample, no_reshape, capsys, "RuntimeError", "(B, 1, 1, ...)")


# --------------------------------------------------------------------------- chapter 2

def _oracle(schedule, x0, xt, t, generator, *, var="posterior_variance", noise=True, sqrt=True, shift=0,
            mask=True, deterministic=False):
    if isinstance(t, int):
        t = torch.full((x0.shape[0],), t)
    ts = (t + shift).clamp(0, schedule.T - 1)
    mean = _v(schedule.posterior_mean_coef1, ts, x0) * x0 + _v(schedule.posterior_mean_coef2, ts, x0) * xt
    v = _v(schedule.posterior_log_variance_clipped.exp() if var == "clipped" else getattr(schedule, var), ts, x0)
    z = torch.randn(xt.shape, generator=generator, dtype=xt.dtype)
    if deterministic:
        z = torch.ones_like(z)
    if not noise:
        z = torch.zeros_like(z)
    step = (v.sqrt() if sqrt else v) * z
    if mask:
        step = step * (t > 0).to(xt.dtype).view(-1, 1, 1, 1)
    return mean + step


def test_oracle_step_passes_reference_and_from_scratch(capsys):
    assert_passes(ex.check_oracle_step,
                  lambda s, x0, xt, t, g: ddpm.oracle_denoise(s, x0, xt, t, generator=g), capsys)
    assert_passes(ex.check_oracle_step, _oracle, capsys)


@pytest.mark.parametrize("kwargs, needles", [
    (dict(deterministic=True), ["noise z is missing", "fixed shift"]),
    (dict(noise=False), ["no noise"]),
    (dict(mask=False, var="clipped"), ["noise added at code index 0", "t = 0 (paper step 1)"]),
    (dict(var="betas"), ["β_t used for the posterior variance"]),
    (dict(sqrt=False), ["variance used for the standard deviation"]),
    (dict(shift=-1), ["off-by-one"]),
    (dict(shift=1), ["off-by-one"]),
])
def test_oracle_step_catches_classic_mistakes(kwargs, needles, capsys):
    def wrong(schedule, x0, xt, t, generator):
        return _oracle(schedule, x0, xt, t, generator, **kwargs)

    assert_fails(ex.check_oracle_step, wrong, capsys, *needles)


def test_oracle_step_catches_alpha_for_alpha_bar(capsys):
    def wrong(schedule, x0, xt, t, generator):
        a = _v(schedule.alphas, t, x0)
        a_prev = _v(schedule.alphas, (t - 1).clamp(min=0), x0)
        a_prev = torch.where((t == 0).view(-1, 1, 1, 1), torch.ones_like(a_prev), a_prev)
        b = _v(schedule.betas, t, x0)
        mean = a_prev.sqrt() * b / (1 - a) * x0 + a.sqrt() * (1 - a_prev) / (1 - a) * xt
        var = _v(schedule.posterior_variance, t, x0)
        return mean + var.sqrt() * torch.randn(xt.shape, generator=generator)

    assert_fails(ex.check_oracle_step, wrong, capsys, "ᾱ vs α")


def test_oracle_step_requires_the_generator(capsys):
    def global_rng(schedule, x0, xt, t, generator):
        return ddpm.oracle_denoise(schedule, x0, xt, t)

    assert_fails(ex.check_oracle_step, global_rng, capsys, "generator")


def test_oracle_step_explains_scalar_if_on_batched_t(capsys):
    def scalar_if(schedule, x0, xt, t, generator):
        mean, var, _ = ddpm.q_posterior(schedule, x0, xt, t)
        if t == 0:
            return mean
        return mean + var.sqrt() * torch.randn(xt.shape, generator=generator)

    assert_fails(ex.check_oracle_step, scalar_if, capsys, "mask")


# --------------------------------------------------------------------------- chapter 3

def test_normal_kl_passes_reference(capsys):
    assert_passes(ex.check_normal_kl, ddpm.normal_kl, capsys)

    def by_hand(m1, lv1, m2, lv2):
        v1, v2 = lv1.exp(), lv2.exp()
        return 0.5 * (torch.log(v2 / v1) + v1 / v2 + (m1 - m2) ** 2 / v2 - 1)

    assert_passes(ex.check_normal_kl, by_hand, capsys)


def _kl(m1, v1, m2, v2):
    return 0.5 * (torch.log(v2) - torch.log(v1) + v1 / v2 + (m1 - m2) ** 2 / v2 - 1)


@pytest.mark.parametrize("wrong, needle", [
    (lambda m1, lv1, m2, lv2: ddpm.normal_kl(m2, lv2, m1, lv1), "swapped"),
    (lambda m1, lv1, m2, lv2: _kl(m1, lv1, m2, lv2), "log-variance"),
    (lambda m1, lv1, m2, lv2: 2 * ddpm.normal_kl(m1, lv1, m2, lv2), "one half"),
    (lambda m1, lv1, m2, lv2: _kl(m1, (2 * lv1).exp(), m2, (2 * lv2).exp()), "log standard deviation"),
    (lambda m1, lv1, m2, lv2: ddpm.normal_kl(m1, lv1, m2, lv2).sum(), "summed"),
    (lambda m1, lv1, m2, lv2: ddpm.normal_kl(m1, lv1, m2, lv2) / math.log(2), "bits"),
])
def test_normal_kl_catches_classic_mistakes(wrong, needle, capsys):
    assert_fails(ex.check_normal_kl, wrong, capsys, needle)


def test_prior_bpd_passes_reference(capsys):
    assert_passes(ex.check_prior_bpd, ddpm.prior_bpd, capsys)

    def by_hand(schedule, x0):
        ab = schedule.alpha_bars[-1]
        kl = ddpm.normal_kl(ab.sqrt() * x0.double(), torch.log(1 - ab), torch.zeros(()), torch.zeros(()))
        return (kl.flatten(1).mean(1) / math.log(2)).to(x0.dtype)

    assert_passes(ex.check_prior_bpd, by_hand, capsys)


def _prior(schedule, x0, *, index=-1, buf="alpha_bars", bits=True, reduce="mean"):
    ab = getattr(schedule, buf)[index]
    kl = ddpm.normal_kl(ab.sqrt() * x0.double(), torch.log(1 - ab), torch.zeros(()), torch.zeros(()))
    kl = kl.flatten(1).mean(1) if reduce == "mean" else kl.flatten(1).sum(1)
    return (kl / math.log(2) if bits else kl).to(x0.dtype)


@pytest.mark.parametrize("kwargs, needle", [
    (dict(bits=False), "nats"),
    (dict(reduce="sum"), "sum over the dimensions"),
    (dict(index=-2), "T−2"),
    (dict(buf="alphas"), "ᾱ vs α"),
])
def test_prior_bpd_catches_classic_mistakes(kwargs, needle, capsys):
    assert_fails(ex.check_prior_bpd, lambda s, x0: _prior(s, x0, **kwargs), capsys, needle)


def test_prior_bpd_explains_index_T(capsys):
    assert_fails(ex.check_prior_bpd, lambda s, x0: _prior(s, x0, index=s.T), capsys, "IndexError", "T−1")
