"""A seeded corpus of dated documents: Calendar input for `generate`, with the paper's creation dates.

The paper keeps Calendar calls on CCNet pages whose URL holds a date, and the Calendar returns
*that* date: the day the text was written, not the day the pipeline runs. The wiki extracts have no
date, so this corpus stands in for that subset: notices, diary and log entries, schedules,
newsletters and reminders, each written on a known day and using words that depend on it
(the weekday, "today", the month, "this year", "in three days").

The date is metadata, never in the text itself (as with a URL): a text that printed its own date
would let the model copy it, and a Calendar call could not help. `generate --dated` passes each
text's date to the Calendar (``Tool.for_document``), so the call ``[Calendar()]`` returns
"Today is <that day>." during generation.

The templates are deliberately unlike the dates evaluation suite (`evaluation/suites.py`):
statements, never questions, no "How many days" or "What day of the week".
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable
from dataclasses import dataclass

SEED = 1902
FIRST_DAY = datetime.date(2012, 1, 1)
LAST_DAY = datetime.date(2025, 12, 31)
_PLACES = ("Aldermoor", "Brackley", "Corran", "Dunmere", "Eastwick", "Fenholt", "Garrow", "Hollin", "Kestwick",
           "Larkfield", "Norbury", "Oakhurst", "Pellworth", "Redhill", "Stanmoor", "Thornbury")
_CLUBS = ("walking club", "chess society", "allotment association", "film society", "rowing club",
          "choir", "photography group", "book circle", "cycling club", "bee-keepers' guild")
_WORDS = ("two", "three", "four", "five", "six")


@dataclass(frozen=True)
class DatedText:
    """One document: its id, its text, and the day it was written (what the Calendar returns for it)."""

    id: str
    text: str
    date: datetime.date


def _wd(day: datetime.date) -> str:
    return f"{day:%A}"


def _md(day: datetime.date) -> str:
    return f"{day:%B} {day.day}"


def _after(day: datetime.date, n: int) -> datetime.date:
    return day + datetime.timedelta(days=n)


# Each template writes one document on ``day``; every date word in it follows from ``day``.
def _notice(rng: random.Random, day: datetime.date) -> str:
    place = rng.choice(_PLACES)
    return (f"Notice to readers: the {place} library is closed today, {_wd(day)}, while the heating is repaired. "
            f"It reopens tomorrow, {_wd(_after(day, 1))}, at nine o'clock.")


def _diary(rng: random.Random, day: datetime.date) -> str:
    n = rng.randint(2, 6)
    return (f"Dear diary, another grey {_wd(day)} at the office. The holiday starts in {_WORDS[n - 2]} days, "
            f"so on {_wd(_after(day, n))} we finally drive to the coast.")


def _log(rng: random.Random, day: datetime.date) -> str:
    n = rng.choice([3, 5, 7, 10, 14])
    unit = rng.choice(("pump", "boiler", "lift", "generator", "ventilation fan"))
    due = _after(day, n)
    return (f"Maintenance log, {_wd(day)}: the {unit} was inspected this morning and runs normally. "
            f"The next inspection is due in {n} days, on {_wd(due)}, {_md(due)}.")


def _schedule(rng: random.Random, day: datetime.date) -> str:
    club = rng.choice(_CLUBS)
    n = rng.randint(2, 6)
    return (f"This week the {club} meets today, {_wd(day)}, in the small hall, and again in {_WORDS[n - 2]} days, "
            f"on {_wd(_after(day, n))}.")


def _newsletter(rng: random.Random, day: datetime.date) -> str:
    club, place = rng.choice(_CLUBS), rng.choice(_PLACES)
    return (f"Welcome to the {day:%B} {day.year} newsletter of the {place} {club}. "
            f"This month we look back on a busy year so far and plan the rest of {day.year}.")


def _reminder(rng: random.Random, day: datetime.date) -> str:
    what = rng.choice(("Entries for the photo contest", "Nominations for the committee", "Orders for the spring fair",
                       "Applications for the summer course", "Votes for the club logo"))
    nxt = _after(day, 1)
    return f"Reminder: {what.lower()} close at midnight tomorrow, {_wd(nxt)}, {_md(nxt)}. Late forms cannot be accepted."


def _announcement(rng: random.Random, day: datetime.date) -> str:
    place = rng.choice(_PLACES)
    n = rng.choice([7, 14])
    start = _after(day, n)
    return (f"We are pleased to announce that the {place} street market opens for the {day.year} season "
            f"in {n} days, on {_wd(start)}, {_md(start)}, and runs every {_wd(start)} until the autumn.")


def _weather(rng: random.Random, day: datetime.date) -> str:
    place = rng.choice(_PLACES)
    return (f"It is {_wd(day)} morning in {place} and the frost has not lifted yet. "
            f"Forecasters say the rest of {day:%B} will stay cold, with snow possible by {_wd(_after(day, 2))}.")


def _opening(rng: random.Random, day: datetime.date) -> str:
    shop = rng.choice(("bakery", "bookshop", "bicycle repair shop", "cafe", "hardware store"))
    return (f"Our new {shop} opened its doors today, {_wd(day)}, {_md(day)}. For the rest of the week, until "
            f"{_wd(_after(day, 6))}, every customer gets a free coffee.")


def _minutes(rng: random.Random, day: datetime.date) -> str:
    club = rng.choice(_CLUBS)
    return (f"Minutes of the {club} committee, held on {_wd(day)} evening. The treasurer reported on the accounts "
            f"for {day.year}, and the next meeting was set for {_wd(_after(day, 7))}, one week from today.")


TEMPLATES: tuple[Callable[[random.Random, datetime.date], str], ...] = (
    _notice, _diary, _log, _schedule, _newsletter, _reminder, _announcement, _weather, _opening, _minutes,
)


def dated_texts(n: int, seed: int = SEED) -> list[DatedText]:
    """``n`` distinct dated documents, balanced over the templates; the same seed gives the same ones."""
    rng = random.Random(seed)
    span = (LAST_DAY - FIRST_DAY).days
    out: list[DatedText] = []
    seen: set[str] = set()
    while len(out) < n:
        day = _after(FIRST_DAY, rng.randint(0, span))
        text = TEMPLATES[len(out) % len(TEMPLATES)](rng, day)
        if text in seen:
            continue
        seen.add(text)
        out.append(DatedText(f"dated:{len(out)}", text, day))
    return out
