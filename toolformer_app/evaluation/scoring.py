"""Scoring rules of the zero-shot evaluation (paper, Appendix C), the date maths, and Wilson intervals.

- math: the *first number* predicted is the answer; numbers are compared after rounding to 2 decimal
  places (half away from zero, as the Calculator rounds), so "2.33" matches 7/3.
- facts (LAMA): correct if the answer is among the *first five words*, compared after lowercasing,
  removing accents and punctuation ("Bogotá." matches "bogota").
- dates: the rule follows the shape of the answer: a number (days, years) uses the first-number rule,
  a weekday or month name must be the *first* weekday/month name predicted, a full date
  ("February 14, 2023") must be the first date predicted; anything else uses the first-five-words rule.

Each rule also says when a prediction is *decided* (no later token can change its score), so decoding
can stop early without changing any score.
"""

from __future__ import annotations

import datetime
import math
import re
import unicodedata
from collections.abc import Sequence
from fractions import Fraction

from toolformer_app.tools.calculator import format_number

FIRST_WORDS = 5  # LAMA: the answer must be among the first 5 words
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
_MONTH_ABBR = {m[:3]: i + 1 for i, m in enumerate(MONTHS)} | {"sept": 9}
ANSWER_TYPES = ("number", "weekday", "month", "date", "words")

# "1,234.5", "-3", "0.75", ".5"; a minus only when it is not a hyphen inside a word ("COVID-19")
_NUMBER = re.compile(r"(?<![\w.])(-(?=[\d.]))?((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")
_WORD = re.compile(r"[^\W_]+")
_WEEKDAY_RE = re.compile(r"\b(" + "|".join(WEEKDAYS) + r")\b", re.IGNORECASE)
_MONTH_RE = re.compile(r"\b(" + "|".join(MONTHS) + r")\b", re.IGNORECASE)
_MON = r"(" + "|".join(MONTHS) + r"|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
_DATE_PATTERNS = (
    # February 14, 2023 / Feb 14th 2023 / February 14
    ("mdy", re.compile(_MON + r"\s+(\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(\d{4}))?(?!\d)", re.IGNORECASE)),
    # 14 February 2023 / 14th of February, 2023
    ("dmy", re.compile(r"(?<!\d)(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MON + r"(?:,?\s+(\d{4}))?(?!\d)",
                       re.IGNORECASE)),
    # 2023-02-14
    ("iso", re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")),
)


# -- numbers ----------------------------------------------------------------------------------------
def parse_number(text: str) -> Fraction | None:
    """The exact value of a number written like "1,234.5" or "-0.75"; None if it is not one."""
    text = text.strip().replace(",", "")
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def first_number(text: str) -> Fraction | None:
    """The first number in ``text`` (thousands commas allowed), exact; None when there is none."""
    m = _NUMBER.search(text)
    if not m:
        return None
    return parse_number((m.group(1) or "") + m.group(2))


def round2(value: Fraction | int | float | str) -> str:
    """A number rounded to 2 decimal places, half away from zero, as text: 7/3 -> "2.33", 5.0 -> "5"."""
    if isinstance(value, str):
        parsed = parse_number(value)
        if parsed is None:
            raise ValueError(f"not a number: {value!r}")
        value = parsed
    return format_number(Fraction(value))


def numbers_match(predicted: Fraction | None, answer: Fraction | str) -> bool:
    if predicted is None:
        return False
    return round2(predicted) == round2(answer)


# -- words ------------------------------------------------------------------------------------------
def normalize_words(text: str) -> list[str]:
    """Lowercased words without accents or punctuation: "Bogotá, D.C." -> ["bogota", "d", "c"]."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _WORD.findall(plain)


def first_words(text: str, n: int = FIRST_WORDS) -> list[str]:
    """The normalised words of the first ``n`` whitespace-separated words of ``text``."""
    return [w for chunk in text.split()[:n] for w in normalize_words(chunk)]


def contains_words(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    if not needle:
        return False
    return any(list(haystack[i : i + len(needle)]) == list(needle) for i in range(len(haystack) - len(needle) + 1))


def in_first_words(answer: str, text: str, n: int = FIRST_WORDS) -> bool:
    """LAMA rule: the answer's words occur, in order and together, among the first ``n`` words."""
    return contains_words(first_words(text, n), normalize_words(answer))


# -- dates ------------------------------------------------------------------------------------------
def _month_number(name: str) -> int:
    key = name.lower().rstrip(".")
    if key in MONTHS:
        return MONTHS.index(key) + 1
    return _MONTH_ABBR[key[:4] if key == "sept" else key[:3]]


def _date_matches(text: str) -> list[tuple[int, int, tuple[int | None, int, int]]]:
    """(start, end, (year or None, month, day)) of every valid date written in ``text``."""
    found = []
    for kind, pattern in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            if kind == "mdy":
                year, month, day = m.group(3), _month_number(m.group(1)), int(m.group(2))
            elif kind == "dmy":
                year, month, day = m.group(3), _month_number(m.group(2)), int(m.group(1))
            else:
                year, month, day = m.group(1), int(m.group(2)), int(m.group(3))
            y = int(year) if year else None
            try:
                datetime.date(y or 2000, month, day)  # 2000 is a leap year: February 29 stays valid
            except ValueError:
                continue
            found.append((m.start(), m.end(), (y, month, day)))
    return sorted(found)


def first_date(text: str) -> tuple[int | None, int, int] | None:
    """(year or None, month, day) of the first date written in ``text``."""
    found = _date_matches(text)
    return found[0][2] if found else None


def parse_date(text: str) -> datetime.date | None:
    """A full date (with its year) that makes up the whole of ``text``; else None."""
    found = _date_matches(text.strip())
    if len(found) == 1 and found[0][0] == 0 and found[0][1] == len(text.strip()) and found[0][2][0]:
        y, mth, d = found[0][2]
        return datetime.date(y, mth, d)  # type: ignore[arg-type]
    return None


def format_date(day: datetime.date) -> str:
    """"February 14, 2023" (the form the Calendar tool writes)."""
    return f"{day:%B} {day.day}, {day.year}"


def dates_match(predicted: tuple[int | None, int, int] | None, answer: datetime.date) -> bool:
    """Month and day must match; so must the year when the prediction gives one."""
    if predicted is None:
        return False
    year, month, day = predicted
    return (month, day) == (answer.month, answer.day) and (year is None or year == answer.year)


def days_until(today: datetime.date, month: int, day: int) -> int:
    """Days from ``today`` to the next ``month``/``day`` (0 on the day itself)."""
    target = datetime.date(today.year, month, day)
    if target < today:
        target = datetime.date(today.year + 1, month, day)
    return (target - today).days


def add_months(day: datetime.date, months: int) -> tuple[int, int]:
    """(year, month) ``months`` after (or before, if negative) the month of ``day``."""
    index = day.year * 12 + day.month - 1 + months
    return index // 12, index % 12 + 1


def age_on(birth: datetime.date, today: datetime.date) -> int:
    """Completed years between ``birth`` and ``today``."""
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


# -- the rules --------------------------------------------------------------------------------------
def answer_type(kind: str, answer: str) -> str:
    """Which rule scores ``answer`` for a suite ``kind``: number, weekday, month, date or words."""
    if kind == "math":
        return "number"
    if kind == "facts":
        return "words"
    text = answer.strip()
    if parse_number(text) is not None:
        return "number"
    if text.lower() in WEEKDAYS:
        return "weekday"
    if text.lower() in MONTHS:
        return "month"
    if parse_date(text) is not None:
        return "date"
    return "words"


def extract(atype: str, prediction: str) -> str | None:
    """What the rule reads from a prediction (for predictions.jsonl): the number, the name, the words."""
    if atype == "number":
        value = first_number(prediction)
        return None if value is None else round2(value)
    if atype in ("weekday", "month"):
        m = (_WEEKDAY_RE if atype == "weekday" else _MONTH_RE).search(prediction)
        return m.group(1).capitalize() if m else None
    if atype == "date":
        found = first_date(prediction)
        if found is None:
            return None
        year, month, day = found
        return f"{MONTHS[month - 1].capitalize()} {day}" + (f", {year}" if year else "")
    return " ".join(prediction.split()[:FIRST_WORDS])


def is_correct(atype: str, answers: Sequence[str], prediction: str) -> bool:
    """Whether ``prediction`` is right for any of ``answers`` (aliases) under rule ``atype``."""
    if atype == "number":
        value = first_number(prediction)
        return any(numbers_match(value, a) for a in answers)
    if atype in ("weekday", "month"):
        got = extract(atype, prediction)
        return got is not None and any(got.lower() == a.strip().lower() for a in answers)
    if atype == "date":
        found = first_date(prediction)
        return any(d is not None and dates_match(found, d) for d in map(parse_date, answers))
    return any(in_first_words(a, prediction) for a in answers)


def decided(atype: str, prediction: str) -> bool:
    """True once no further text can change the score of ``prediction`` (decoding may stop there).

    A number is decided once it is followed by 4 more characters ("1" could still become "1,000"),
    a name once followed by a non-letter, a date once followed by 7 characters (room for ", 2023"),
    the five words once a sixth word has started.
    """
    if atype == "number":
        m = _NUMBER.search(prediction)
        return m is not None and m.end() + 4 <= len(prediction)
    if atype in ("weekday", "month"):
        m = (_WEEKDAY_RE if atype == "weekday" else _MONTH_RE).search(prediction)
        return m is not None and m.end() < len(prediction)
    if atype == "date":
        found = _date_matches(prediction)
        return bool(found) and found[0][1] + 7 <= len(prediction)
    words = prediction.split()
    return len(words) > FIRST_WORDS or (len(words) == FIRST_WORDS and prediction[-1:].isspace())


# -- confidence intervals ---------------------------------------------------------------------------
def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95% by default); (0, 1) when n is 0.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0% and 100%,
    which small-model accuracies often are.
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, {n}], got {successes}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    # exact bounds at the edges (floating point can leave 1e-17 instead of 0)
    return (0.0 if successes == 0 else low), (1.0 if successes == n else high)
