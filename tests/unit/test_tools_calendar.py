"""Calendar: the paper's sentence from an injectable clock, and the date-mention heuristic."""

from __future__ import annotations

import datetime

import pytest

from toolformer_app.tools.calendar import Calendar, today_sentence


def fixed(day: datetime.date) -> Calendar:
    return Calendar(clock=lambda: day)


def test_returns_the_papers_sentence_for_the_fixed_date():
    assert fixed(datetime.date(2023, 1, 30)).run("").output == "Today is Monday, January 30, 2023."


def test_ignores_its_input():
    cal = fixed(datetime.date(2024, 2, 29))
    assert cal.run("anything at all").output == cal.run("").output == "Today is Thursday, February 29, 2024."
    assert cal() == "Today is Thursday, February 29, 2024."


def test_accepts_a_datetime_clock():
    cal = Calendar(clock=lambda: datetime.datetime(2023, 12, 25, 23, 59))
    assert cal.run("").output == "Today is Monday, December 25, 2023."


def test_defaults_to_the_real_date():
    assert Calendar().run("").output == today_sentence(datetime.date.today())


def test_a_broken_clock_gives_a_reason_not_an_exception():
    def broken() -> datetime.date:
        raise OSError("no clock")

    result = Calendar(clock=broken).run("")
    assert result.output is None and "no clock" in result.reason


def test_example_results_name_the_right_weekday():
    from toolformer_app.calls import find_calls

    for _, output in Calendar().examples:
        for call in find_calls(output):
            day = datetime.datetime.strptime(call.result, "Today is %A, %B %d, %Y.").date()
            assert today_sentence(day) == call.result


@pytest.mark.parametrize(
    "text",
    [
        "The meeting is on 2023-01-30 at noon.",
        "We met in May at the lake.",
        "The shop is closed on Sundays.",
        "The bridge opened in 1932.",
        "She left three days ago.",
        "The sale runs until the end of the week.",
        "What will the weather be like tomorrow?",
        "It was finished on 12/04/2021.",
    ],
)
def test_selects_texts_that_mention_dates_or_time(text):
    cal = Calendar()
    assert cal.selects(text)
    assert cal.selection_reason(text).startswith("mentions")


@pytest.mark.parametrize("text", ["", "It may rain.", "The cat sat on the mat.", "Water boils at 100 degrees."])
def test_does_not_select_texts_without_dates(text):
    assert Calendar().selection_reason(text) is None
    assert not Calendar().selects(text)
