"""Calendar: takes no input and returns today's date as a sentence (paper, section 3).

The clock is injectable so tests can fix "today". During data generation "today" is the
document's creation date (``for_document``), as in the paper, never the day the pipeline runs.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from toolformer_app.calls import linearize
from toolformer_app.tools.base import Thresholds, Tool, ToolResult


def today_sentence(day: datetime.date) -> str:
    """"Today is Monday, January 30, 2023." (the paper's wording)."""
    return f"Today is {day:%A}, {day:%B} {day.day}, {day.year}."


def document_date(meta: dict | None) -> datetime.date | None:
    """The creation date in a document's metadata ("date": a date or an ISO string), or None."""
    value = (meta or {}).get("date")
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def _ex(before: str, day: datetime.date, after: str) -> tuple[str, str]:
    return before + after, before + linearize("Calendar", "", today_sentence(day)) + after


EXAMPLES: tuple[tuple[str, str], ...] = (
    _ex("The festival opens on Friday, and today is", datetime.date(2023, 5, 10),
        " Wednesday, so there are two days left to prepare."),
    _ex("The library was founded in 1923, which makes it", datetime.date(2024, 3, 2), " 101 years old this year."),
    _ex("Registration closes at the end of", datetime.date(2023, 8, 15),
        " August, so there are about two weeks left to sign up."),
    _ex("My grandmother turned ninety last year, in", datetime.date(2024, 6, 3), " 2023."),
)

INSTRUCTION = (
    "Your task is to add calls to a Calendar API to a piece of text. The calls should help you get "
    "information required to complete the text. You can call the API by writing \"[Calendar()]\". "
    "Here are some examples of API calls:"
)

# A.1 adaptation: the paper keeps texts whose URL holds a date (their creation date). Our texts
# have no URLs, so we keep texts that talk about dates or time spans, where knowing today's
# date can help predict the continuation.
_MONTHS = "january|february|march|april|june|july|august|september|october|november|december"
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_TIME_WORDS = (
    r"today|tonight|yesterday|tomorrow|ago|until|"
    r"days?|weeks?|weekend|months?|years?|decades?|centur(?:y|ies)|anniversary|birthday|annual|calendar|date"
)
_DATE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a numeric date", re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}\b|\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b")),
    ("a month name", re.compile(rf"\b(?:{_MONTHS})\b", re.IGNORECASE)),
    ("a month name", re.compile(r"\bMay\b")),  # case-sensitive: not the verb "may"
    ("a day of the week", re.compile(rf"\b(?:{_DAYS})s?\b", re.IGNORECASE)),
    ("a year", re.compile(r"\b(?:1[5-9]\d\d|20\d\d)s?\b")),
    ("a time word", re.compile(rf"\b(?:{_TIME_WORDS})\b", re.IGNORECASE)),
)


@dataclass
class Calendar(Tool):
    """Returns "Today is <weekday>, <month> <day>, <year>." from ``clock`` and ignores its input."""

    name: str = "Calendar"
    description: str = "Today's date, e.g. 'Today is Monday, January 30, 2023.' (takes no input)."
    instruction: str = INSTRUCTION
    examples: tuple[tuple[str, str], ...] = EXAMPLES
    # Paper: tau_s=0.05, k=5, m=5, tau_f=1.0. A 135M model's p(" [") peaks near 0.01, so tau_s is
    # lowered to 0.005, and its loss gains are 0.3-1.2, so tau_f is 0.3.
    thresholds: Thresholds = field(default_factory=lambda: Thresholds(tau_s=0.005, k=5, m=5, tau_f=0.3))
    clock: Callable[[], datetime.date] = datetime.date.today
    takes_input = False

    def selection_reason(self, text: str) -> str | None:
        for label, pattern in _DATE_PATTERNS:
            m = pattern.search(text)
            if m:
                return f"mentions {label}: {m.group()!r}"
        return None

    def selects(self, text: str) -> bool:
        return self.selection_reason(text) is not None

    def for_document(self, meta: dict | None) -> Calendar:
        """The paper's Calendar: for a document with a creation date, "today" is that date."""
        day = document_date(meta)
        return self if day is None else replace(self, clock=lambda: day)

    def accepts_document(self, meta: dict | None) -> bool:
        """A.1: only documents with a creation date. ``{"date": None}`` marks a corpus whose dates are
        unknown (the wiki extracts); no "date" key at all means a text written now (the Annotate tab)."""
        return "date" not in (meta or {}) or document_date(meta) is not None

    def run(self, input: str = "") -> ToolResult:
        try:
            day = self.clock()
            if isinstance(day, datetime.datetime):
                day = day.date()
            return ToolResult(today_sentence(day))
        except Exception as exc:  # a broken clock must not break the text
            return ToolResult(None, f"calendar clock failed: {type(exc).__name__}: {exc}")
