"""The dates suite's items (paper, section 4.2.5: DateSet; here equivalents generated from question types).

Questions about the current date, answered against the fixed clock ``CLOCK`` (the Calendar tool is given the
same clock). Prompt: "q The answer is".
"""

from __future__ import annotations

import datetime
import random

from toolformer_app.decoding import PAPER_QUESTION_SUFFIX  # " The answer is", written once
from toolformer_app.evaluation import scoring
from toolformer_app.evaluation.items import CLOCK, Item

_HOLIDAYS = (("Christmas", 12, 25), ("New Year's Day", 1, 1), ("Halloween", 10, 31), ("Valentine's Day", 2, 14),
             ("the Fourth of July", 7, 4), ("Christmas Eve", 12, 24), ("New Year's Eve", 12, 31))


def _weekday(day: datetime.date) -> str:
    return f"{day:%A}"


def _date_questions(rng: random.Random, today: datetime.date) -> tuple[str, str, str]:
    """(question, answer, type) of one random question type, answered against ``today``."""
    kind = rng.choice(["today_weekday", "weekday_in", "weekday_ago", "until_holiday", "days_ago_date",
                       "days_until_date", "year_ago", "year_in", "month_in", "month_ago", "date_in", "date_ago",
                       "age", "this_year", "left_in_year", "today_month"])
    n = rng.randint(2, 120)
    if kind == "today_weekday":
        q = rng.choice(["What day of the week is it today?", "Which day of the week is today?",
                        "What day of the week is it?"])
        return q, _weekday(today), kind
    if kind == "weekday_in":
        return f"What day of the week will it be in {n} days?", _weekday(today + datetime.timedelta(n)), kind
    if kind == "weekday_ago":
        return f"What day of the week was it {n} days ago?", _weekday(today - datetime.timedelta(n)), kind
    if kind == "until_holiday":
        name, month, day = rng.choice(_HOLIDAYS)
        return f"How many days are left until {name}?", str(scoring.days_until(today, month, day)), kind
    if kind in ("days_ago_date", "days_until_date"):
        delta = rng.randint(3, 900)
        if kind == "days_ago_date":
            day = today - datetime.timedelta(delta)
            return f"How many days ago was {scoring.format_date(day)}?", str(delta), kind
        day = today + datetime.timedelta(delta)
        return f"How many days are left until {scoring.format_date(day)}?", str(delta), kind
    if kind in ("year_ago", "year_in"):
        k = rng.randint(2, 60)
        if kind == "year_ago":
            return f"What year was it {k} years ago?", str(today.year - k), kind
        return f"What year will it be in {k} years?", str(today.year + k), kind
    if kind in ("month_in", "month_ago"):
        k = rng.randint(2, 30)
        sign = 1 if kind == "month_in" else -1
        month = scoring.MONTHS[scoring.add_months(today, sign * k)[1] - 1].capitalize()
        q = f"What month will it be in {k} months?" if sign > 0 else f"What month was it {k} months ago?"
        return q, month, kind
    if kind in ("date_in", "date_ago"):
        if kind == "date_in":
            return (f"What will the date be {n} days from today?", scoring.format_date(today + datetime.timedelta(n)),
                    kind)
        return f"What was the date {n} days ago?", scoring.format_date(today - datetime.timedelta(n)), kind
    if kind == "age":
        birth = today - datetime.timedelta(rng.randint(3 * 365, 90 * 365))
        return (f"How old is a person who was born on {scoring.format_date(birth)}?",
                str(scoring.age_on(birth, today)), kind)
    if kind == "this_year":
        return rng.choice(["What year is it?", "What year is it now?", "Which year is it currently?"]), \
            str(today.year), kind
    if kind == "left_in_year":
        return "How many days are left in this year?", str((datetime.date(today.year, 12, 31) - today).days), kind
    return rng.choice(["What month is it?", "Which month is it now?"]), f"{today:%B}", kind


def make_dates(rng: random.Random, n: int, today: datetime.date = CLOCK) -> list[Item]:
    items: list[Item] = []
    seen: set[str] = set()
    repeats = 0
    while len(items) < n:
        question, answer, kind = _date_questions(rng, today)
        if question in seen:  # the few fixed questions ("What year is it?") appear once each
            repeats += 1
            if repeats > 100 * n:
                raise RuntimeError("not enough distinct date questions")
            continue
        seen.add(question)
        items.append(Item("", "dates", f"{question}{PAPER_QUESTION_SUFFIX}", (answer,),
                          {"type": kind, "clock": today.isoformat()}))
    return items
