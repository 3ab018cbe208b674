"""A seeded corpus of plain texts that state the result of a calculation: Calculator input for `generate`.

The paper annotates CCNet, where the Calculator heuristic (A.1) finds texts whose numbers combine
into a later number. No such web corpus ships offline, and the Wikipedia extracts hold few
(379 of 10,033 texts pass A.1). This corpus stands in for that CCNet subset: short report-style
sentences in which a later number is the sum, difference, product or quotient of earlier ones.
The texts carry no API calls; the pipeline samples, executes and filters calls on them like on any
other text.

Its templates are deliberately unlike the math evaluation suite's word problems
(`evaluation/suites.py`): different settings, statements instead of questions, and never
"The answer is", so a finetune on it is not trained on the evaluation's prompts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction

from toolformer_app.tools.calculator import evaluate, format_number

SEED = 5150
_TOWNS = ("Aldermoor", "Brackley", "Corran", "Dunmere", "Eastwick", "Fenholt", "Garrow", "Hollin", "Ivybridge",
          "Kestwick", "Larkfield", "Marlow", "Norbury", "Oakhurst", "Pellworth", "Redhill", "Stanmoor", "Thornbury")
_ITEMS = (("crate", "crates", "bottles"), ("pallet", "pallets", "bricks"), ("carton", "cartons", "eggs"),
          ("shelf", "shelves", "books"), ("tray", "trays", "seedlings"), ("rack", "racks", "bicycles"))
_SPORTS = ("the league", "the season", "the tournament", "the cup run", "the campaign")


def _dec(rng: random.Random, low: int, high: int) -> str:
    return f"{rng.randint(low, high)}.{rng.choice('2468')}" if rng.random() < 0.4 else str(rng.randint(low, high))


# Each template returns (text with {r} where the result goes, expression over numbers in the text).
def _population(rng: random.Random) -> tuple[str, str]:
    town, a, b = rng.choice(_TOWNS), rng.randint(2000, 60000), rng.randint(150, 4000)
    return (f"In 1990 {town} had {a} inhabitants. Over the next decade it grew by {b} people, "
            f"reaching {{r}} by the turn of the century.", f"{a} + {b}")


def _budget(rng: random.Random) -> tuple[str, str]:
    town, a = rng.choice(_TOWNS), rng.randint(300, 9000)
    b = rng.randint(20, a - 10)
    return (f"The {town} council set aside {a} thousand pounds for roads and had spent {b} thousand by June, "
            f"leaving {{r}} thousand for the rest of the year.", f"{a} - {b}")


def _stock(rng: random.Random) -> tuple[str, str]:
    one, many, what = rng.choice(_ITEMS)
    a, b = rng.randint(4, 60), rng.randint(6, 48)
    return (f"The warehouse received {a} {many} with {b} {what} on each {one}, a delivery of {{r}} {what}.",
            f"{a} * {b}")


def _ride(rng: random.Random) -> tuple[str, str]:
    h = rng.choice([2, 3, 4, 5, 6, 8])
    km = h * rng.randint(12, 95) + rng.choice([0, 0, 1, 2, 3])
    return (f"The stage covered {km} kilometres and the winner finished it in {h} hours, an average of "
            f"{{r}} kilometres per hour.", f"{km} / {h}")


def _goals(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(3, 30), rng.randint(2, 25)
    return (f"He scored {a} goals in {rng.choice(_SPORTS)} and {b} in the cup, {{r}} in all competitions.",
            f"{a} + {b}")


def _tickets(rng: random.Random) -> tuple[str, str]:
    p = f"{rng.randint(4, 60)}.{rng.choice(['50', '25', '75', '20'])}"
    k = rng.randint(2, 9)
    return f"Tickets were {p} euros each, so the group of {k} paid {{r}} euros at the door.", f"{p} * {k}"


def _share(rng: random.Random) -> tuple[str, str]:
    k = rng.choice([2, 3, 4, 5, 6, 8, 10])
    total = k * rng.randint(20, 3000) + rng.choice([0, 0, k // 2])
    return (f"The prize of {total} dollars was split equally between the {k} winners, who received "
            f"{{r}} dollars each.", f"{total} / {k}")


def _area(rng: random.Random) -> tuple[str, str]:
    a, b = _dec(rng, 4, 80), _dec(rng, 3, 60)
    return f"The hall measures {a} by {b} metres, a floor area of {{r}} square metres.", f"{a} * {b}"


def _percent(rng: random.Random) -> tuple[str, str]:
    total = rng.choice([200, 250, 400, 500, 800, 1000, 1200, 2000])
    part = rng.randint(total // 10, total - 1)
    return (f"Of the {total} people surveyed, {part} said they cycle to work, a share of {{r}} percent.",
            f"{part} / {total} * 100")


def _age(rng: random.Random) -> tuple[str, str]:
    born = rng.randint(1801, 1950)
    died = born + rng.randint(30, 98)
    return f"Born in {born}, she died in {died} at the age of {{r}}.", f"{died} - {born}"


def _recipe(rng: random.Random) -> tuple[str, str]:
    g, k = rng.randint(40, 450), rng.choice([2, 3, 4, 5, 6])
    return f"The recipe needs {g} grams of flour per loaf, so {k} loaves take {{r}} grams.", f"{g} * {k}"


def _wages(rng: random.Random) -> tuple[str, str]:
    rate, hours = f"{rng.randint(9, 40)}.{rng.choice(['50', '25', '75', '00'])}", rng.randint(4, 45)
    return (f"At {rate} dollars an hour, a {hours}-hour week earns {{r}} dollars before tax.", f"{rate} * {hours}")


def _votes(rng: random.Random) -> tuple[str, str]:
    a, b, c = rng.randint(800, 30000), rng.randint(500, 25000), rng.randint(100, 9000)
    return (f"The three candidates received {a}, {b} and {c} votes, "
            f"{{r}} votes in total.", f"{a} + {b} + {c}")


def _fuel(rng: random.Random) -> tuple[str, str]:
    litres, km = rng.randint(20, 70), rng.randint(250, 1100)
    return (f"The car used {litres} litres of fuel over {km} kilometres, or {{r}} kilometres per litre.",
            f"{km} / {litres}")


def _profit(rng: random.Random) -> tuple[str, str]:
    rev = rng.randint(100, 9000)
    cost = rng.randint(50, rev - 10)
    return (f"The company reported revenue of {rev} million dollars and costs of {cost} million, "
            f"a profit of {{r}} million dollars.", f"{rev} - {cost}")


def _seats(rng: random.Random) -> tuple[str, str]:
    rows, per = rng.randint(10, 60), rng.randint(12, 40)
    sold = rng.randint(rows, rows * per - 1)
    return (f"The theatre has {rows} rows of {per} seats. With {sold} tickets sold, {{r}} seats were still "
            f"free on opening night.", f"{rows} * {per} - {sold}")


TEMPLATES: tuple[Callable[[random.Random], tuple[str, str]], ...] = (
    _population, _budget, _stock, _ride, _goals, _tickets, _share, _area, _percent, _age, _recipe, _wages,
    _votes, _fuel, _profit, _seats,
)


def arithmetic_texts(n: int, seed: int = SEED) -> list[tuple[str, str]]:
    """``n`` distinct ``(id, text)`` pairs, balanced over the templates; the same seed gives the same texts."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    while len(out) < n:
        template = TEMPLATES[len(out) % len(TEMPLATES)]
        body, expression = template(rng)
        value: Fraction = evaluate(expression)
        text = body.replace("{r}", format_number(value))
        if value < 0 or text in seen:
            continue
        seen.add(text)
        out.append((f"arith:{len(out)}", text))
    return out
