"""dnnl.claims: a number printed in the prose is checked against the value the cell computes."""
import math
import re

import pytest

from dnnl.claims import check_claim, parse_shown, shown_tolerance


def test_a_right_value_passes_and_is_returned():
    assert check_claim(0.91302, "0.913") == pytest.approx(0.91302)
    assert check_claim(0.9125, "0.913")          # rounds to the digits shown (half a unit of 0.001)
    assert check_claim(120.4, "120")


@pytest.mark.parametrize("value, text", [(0.87, "0.913"), (0.9136, "0.913"), (121, "120"), (-0.5, "0.5")])
def test_a_wrong_value_fails_and_names_both_numbers(value, text):
    with pytest.raises(AssertionError, match=rf"the text says {re.escape(text)} but the cell computes"):
        check_claim(value, text)


def test_tolerance_comes_from_the_digits_shown():
    assert shown_tolerance("0.913") == pytest.approx(5e-4)
    assert shown_tolerance("120") == pytest.approx(0.5)
    assert shown_tolerance("10.7") == pytest.approx(0.05)
    assert shown_tolerance("2e-3") == pytest.approx(5e-4)
    check_claim(10.74, "10.7")
    with pytest.raises(AssertionError):
        check_claim(10.76, "10.7")


def test_thousands_commas_and_an_explicit_tolerance():
    assert parse_shown("461,985") == 461985 and parse_shown("1,600") == 1600
    check_claim(461_985, "461,985")
    with pytest.raises(AssertionError):
        check_claim(461_987, "461,985")
    check_claim(90_060, "90,000", tol=100)
    with pytest.raises(AssertionError, match="allowed difference 100"):
        check_claim(90_200, "90,000", tol=100)
    assert parse_shown("−0.5") == -0.5   # a Unicode minus, as typeset
    check_claim(-0.5, "−0.5")


@pytest.mark.parametrize("text", ["about 0.9", "0.9.1", "", "1,60", 0.913])
def test_text_that_is_not_a_printed_number_is_rejected(text):
    with pytest.raises(ValueError, match="text must be a number as printed"):
        check_claim(0.9, text)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_values_fail(value):
    with pytest.raises(AssertionError):
        check_claim(value, "0.913", tol=1e9)
