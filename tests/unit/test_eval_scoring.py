"""Scoring rules (Appendix C), date maths against the fixed clock, and Wilson confidence intervals."""

from __future__ import annotations

import datetime
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolformer_app.evaluation import scoring
from toolformer_app.evaluation.suites import CLOCK


# -- number extraction ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        (" 42.", Fraction(42)),
        (" $12.50 in total, not 13", Fraction(25, 2)),
        (" 1,234.5 meters", Fraction(2469, 2)),
        (" -3 degrees", Fraction(-3)),
        (" .5 of it", Fraction(1, 2)),
        ("COVID-19 cases: 7", Fraction(19)),  # the hyphen of a word is not a minus sign
        (" about 2023-01-30", Fraction(2023)),
        (" 3rd place", Fraction(3)),
        (" none at all", None),
        ("", None),
    ],
)
def test_first_number(text, expected):
    assert scoring.first_number(text) == expected


@pytest.mark.parametrize(
    "value, text",
    [(Fraction(7, 3), "2.33"), (Fraction(2), "2"), ("2.005", "2.01"), ("-2.005", "-2.01"), ("2.50", "2.5"),
     ("0.004", "0"), ("1,000", "1000"), (Fraction(138, 5), "27.6")],
)
def test_round2_half_away_from_zero(value, text):
    assert scoring.round2(value) == text


def test_numbers_compared_after_rounding():
    assert scoring.is_correct("number", ["2.33"], " 2.333333 apples")
    assert scoring.is_correct("number", ["2.33"], " 2.33")
    assert not scoring.is_correct("number", ["2.33"], " 2.3")
    assert scoring.is_correct("number", ["1200"], " 1,200 dollars")
    assert scoring.is_correct("number", ["5"], " 5.00")
    # the *first* number counts, not any later one
    assert not scoring.is_correct("number", ["5"], " 3, no wait, 5")
    assert not scoring.is_correct("number", ["5"], " five")


@given(st.fractions(min_value=-10**6, max_value=10**6))
def test_round2_matches_decimal_rounding(value):
    from decimal import ROUND_HALF_UP, Decimal

    exact = Decimal(value.numerator) / Decimal(value.denominator)
    expected = exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert Fraction(scoring.round2(value)) == Fraction(expected)


# -- first five words -------------------------------------------------------------------------------
def test_first_five_words_rule():
    rule = scoring.in_first_words
    assert rule("Nairobi", " Nairobi.")
    assert rule("Nairobi", " the city of NAIROBI, which")
    assert rule("Nairobi", " one two three four Nairobi six")  # 5th word
    assert not rule("Nairobi", " one two three four five Nairobi")  # 6th word
    assert rule("Bogotá", " bogota")  # accents and case
    assert rule("Buenos Aires", " the city of Buenos Aires")  # words 4-5, together
    assert not rule("Buenos Aires", " Aires and Buenos")  # order matters
    assert not rule("Nairobi", " Nairobian food")  # whole words only
    assert rule("F. Scott Fitzgerald", " F. Scott Fitzgerald.")
    assert not rule("Paris", "")
    assert scoring.is_correct("words", ["Marcel Duchamp", "Duchamp"], " the artist Duchamp in 1917")


def test_first_words_normalisation():
    assert scoring.normalize_words("Bogotá, D.C.!") == ["bogota", "d", "c"]
    assert scoring.first_words("  A  b c d e f g ") == ["a", "b", "c", "d", "e"]


# -- weekday, month and date rules ------------------------------------------------------------------
def test_first_name_rules():
    assert scoring.is_correct("weekday", ["Tuesday"], " Tuesday, not Monday")
    assert not scoring.is_correct("weekday", ["Tuesday"], " Monday or Tuesday")
    assert scoring.is_correct("month", ["March"], " it will be march.")
    assert not scoring.is_correct("month", ["May"], " maybe June")  # "maybe" is not "May"


def test_date_rule():
    assert scoring.is_correct("date", ["February 14, 2023"], " February 14, 2023.")
    assert scoring.is_correct("date", ["February 14, 2023"], " the 14th of February 2023")
    assert scoring.is_correct("date", ["February 14, 2023"], " Feb 14th")  # no year given: month and day
    assert scoring.is_correct("date", ["February 14, 2023"], " 2023-02-14")
    assert not scoring.is_correct("date", ["February 14, 2023"], " February 14, 2022")
    assert not scoring.is_correct("date", ["February 14, 2023"], " January 30, 2023 and February 14, 2023")
    assert scoring.first_date("February 30, 2023 or March 1") == (None, 3, 1)  # invalid dates are skipped
    assert scoring.parse_date("February 14, 2023") == datetime.date(2023, 2, 14)
    assert scoring.parse_date("in February 14, 2023") is None


def test_answer_type():
    assert scoring.answer_type("math", "3") == "number"
    assert scoring.answer_type("facts", "1984") == "words"  # LAMA rule whatever the answer looks like
    assert scoring.answer_type("dates", "329") == "number"
    assert scoring.answer_type("dates", "Monday") == "weekday"
    assert scoring.answer_type("dates", "January") == "month"
    assert scoring.answer_type("dates", "March 1, 2023") == "date"
    assert scoring.answer_type("dates", "next week") == "words"


def test_decided_never_changes_a_score():
    """Once decided, any continuation leaves the score as it was."""
    cases = [("number", ["120"], " 12"), ("number", ["120"], " 120 apples"), ("number", ["1000"], " 1,000 in"),
             ("words", ["Nairobi"], " one two three four Nairobi "), ("weekday", ["Monday"], " Monday."),
             ("date", ["March 1, 2023"], " March 1, 2023 was")]
    for atype, answers, text in cases:
        if scoring.decided(atype, text):
            before = scoring.is_correct(atype, answers, text)
            for tail in ("0", ",000", " Nairobi", "day", ", 2024", "5"):
                assert scoring.is_correct(atype, answers, text + tail) == before, (text, tail)
    assert not scoring.decided("number", " 1,0")
    assert not scoring.decided("number", " 12")
    assert scoring.decided("number", " 12 apples")
    assert not scoring.decided("words", " a b c d e")
    assert scoring.decided("words", " a b c d e ")
    assert not scoring.decided("weekday", " Mon")


# -- date maths against the fixed clock -------------------------------------------------------------
def test_clock_is_the_papers_monday():
    assert CLOCK == datetime.date(2023, 1, 30) and CLOCK.strftime("%A") == "Monday"


def test_date_maths():
    assert scoring.days_until(CLOCK, 12, 25) == 329  # Christmas 2023
    assert scoring.days_until(CLOCK, 1, 1) == 336  # New Year's Day 2024 (2023 is not a leap year)
    assert scoring.days_until(CLOCK, 2, 14) == 15
    assert scoring.days_until(CLOCK, 1, 30) == 0
    assert scoring.days_until(datetime.date(2023, 12, 26), 12, 25) == 365
    assert scoring.add_months(CLOCK, 11) == (2023, 12)
    assert scoring.add_months(CLOCK, 12) == (2024, 1)
    assert scoring.add_months(CLOCK, -1) == (2022, 12)
    assert scoring.add_months(CLOCK, -25) == (2020, 12)
    assert scoring.age_on(datetime.date(1990, 1, 30), CLOCK) == 33  # birthday today
    assert scoring.age_on(datetime.date(1990, 1, 31), CLOCK) == 32  # tomorrow
    assert scoring.format_date(CLOCK + datetime.timedelta(days=30)) == "March 1, 2023"


def test_dates_suite_answers_against_the_clock():
    """Every answer of the shipped dates suite, recomputed here independently of the generator."""
    import re

    from toolformer_app.evaluation.suites import load_suite

    checked = 0
    for item in load_suite("dates"):
        q, a = item.prompt, item.answer
        if m := re.match(r"What day of the week will it be in (\d+) days\?", q):
            assert a == (CLOCK + datetime.timedelta(int(m[1]))).strftime("%A")
        elif m := re.match(r"What day of the week was it (\d+) days ago\?", q):
            assert a == (CLOCK - datetime.timedelta(int(m[1]))).strftime("%A")
        elif m := re.match(r"How many days ago was (.+)\?", q):
            assert int(a) == (CLOCK - datetime.datetime.strptime(m[1], "%B %d, %Y").date()).days
        elif m := re.match(r"How many days are left until ([A-Z][a-z]+ \d+, \d{4})\?", q):
            assert int(a) == (datetime.datetime.strptime(m[1], "%B %d, %Y").date() - CLOCK).days
        elif q.startswith("How many days are left until Christmas?"):
            assert a == "329"
        elif m := re.match(r"What year was it (\d+) years ago\?", q):
            assert int(a) == 2023 - int(m[1])
        elif m := re.match(r"What will the date be (\d+) days from today\?", q):
            got = (CLOCK + datetime.timedelta(int(m[1])))
            assert a == f"{got:%B} {got.day}, {got.year}"
        elif "week" in q and "today" in q or q.startswith("What day of the week is it"):
            assert a == "Monday"
        else:
            continue
        checked += 1
    assert checked >= 80


# -- Wilson intervals -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "k, n, low, high",
    [(0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (5, 10, 0.2366, 0.7634), (1, 50, 0.0035, 0.1050),
     (81, 263, 0.2553, 0.3662)],  # the roots of (p - k/n)^2 = z^2 p (1 - p) / n, solved separately
)
def test_wilson_interval(k, n, low, high):
    lo, hi = scoring.wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_wilson_edges():
    assert scoring.wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        scoring.wilson_interval(3, 2)


@given(st.integers(0, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_estimate(kn):
    k, n = kn
    lo, hi = scoring.wilson_interval(k, n)
    assert 0.0 <= lo <= hi <= 1.0
    if n:
        assert lo <= k / n <= hi
