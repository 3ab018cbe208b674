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


# -- the "steps" corpus: the operation carried by words, and calculations of two or three steps ------
# Added after the dev split of the math suite (items 100-199) showed the finetuned model writing only
# "*" and "-" (no "/" and almost no "+") and no call with two operations, while C* held 38 "*" of 66 calls.
# Same rules as above: statements in settings of their own, never a question or "The answer is". A text of
# two or three steps holds no single "a op b = c" triple, so it says "a total of", "average of" or "equal to":
# the keywords of the paper's A.1 heuristic, which is how such texts reach the Calculator there too.
_CLUBS = ("the chess club", "the rowing club", "the choir", "the drama society", "the scout troop", "the orchestra")
_GOODS = (("loaf", "loaves"), ("jar of honey", "jars of honey"), ("bag of rice", "bags of rice"),
          ("notebook", "notebooks"), ("lamp", "lamps"), ("rope", "ropes"))


def _stocked_more(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(40, 900), rng.randint(10, 400)
    return (f"The {rng.choice(_TOWNS)} library held {a} maps and acquired {b} more in the spring, "
            f"so its collection grew to {{r}} maps.", f"{a} + {b}")


def _altogether(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(20, 800), rng.randint(20, 800)
    return (f"Volunteers planted {a} oaks on Saturday and {b} on Sunday, {{r}} trees over the weekend.",
            f"{a} + {b}")


def _before_sale(rng: random.Random) -> tuple[str, str]:
    sold, left = rng.randint(10, 300), rng.randint(10, 500)
    return (f"After selling {sold} tickets at the gate, the stall still had {left} left, so it had opened "
            f"with {{r}} tickets.", f"{left} + {sold}")


def _per_unit(rng: random.Random) -> tuple[str, str]:
    k = rng.randint(2, 12)
    total = f"{k * rng.randint(3, 90) + rng.choice([0, 0, 1, 2])}"
    one, many = rng.choice(_GOODS)
    return (f"The market stall sold {k} {many} for {total} pounds together, or {{r}} pounds per {one}.",
            f"{total} / {k}")


def _equal_parts(rng: random.Random) -> tuple[str, str]:
    k = rng.randint(2, 9)
    total = k * rng.randint(3, 60) + rng.choice([0, 0, 1, 2, 3])
    return (f"The {total} litres of paint were divided equally among {k} crews, leaving each crew {{r}} litres.",
            f"{total} / {k}")


def _speed(rng: random.Random) -> tuple[str, str]:
    h = rng.randint(2, 9)
    km = h * rng.randint(8, 110) + rng.choice([0, 0, 1, 3])
    return (f"The ferry sailed {km} kilometres in {h} hours, a speed of {{r}} kilometres an hour.", f"{km} / {h}")


def _times_as_much(rng: random.Random) -> tuple[str, str]:
    a, f = rng.randint(12, 600), rng.choice(["2", "3", "4", "1.5", "2.5", "0.5"])
    return (f"{rng.choice(_CLUBS).capitalize()} raised {a} dollars in May and {f} times as much in June, "
            f"{{r}} dollars.", f"{a} * {f}")


def _average(rng: random.Random) -> tuple[str, str]:
    a, b, c = rng.randint(5, 40), rng.randint(5, 40), rng.randint(5, 40)
    return (f"The team's 3 relay legs took {a}, {b} and {c} seconds, an average of {{r}} seconds a leg.",
            f"({a} + {b} + {c}) / 3")


def _in_out(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(50, 700), rng.randint(10, 300)
    c = rng.randint(5, a + b - 1)
    return (f"The shelter housed {a} dogs, took in {b} more in the winter and rehomed {c}, a total of {{r}} "
            f"dogs in its care by March.", f"{a} + {b} - {c}")


def _change(rng: random.Random) -> tuple[str, str]:
    k, price = rng.randint(2, 6), f"{rng.randint(1, 15)}.{rng.choice(['20', '40', '50', '75', '80'])}"
    note = next(n for n in (20, 50, 100) if n > k * float(price))
    one, many = rng.choice(_GOODS)
    return (f"He bought {k} {many} at {price} pounds each with a {note} pound note, and his change "
            f"was equal to {{r}} pounds.",
            f"{note} - {k} * {price}")


def _discount(rng: random.Random) -> tuple[str, str]:
    price, off = rng.randint(12, 400), rng.choice([10, 15, 20, 25, 30, 40, 50])
    return (f"The {price}-pound coat was reduced by {off} percent in the sale, "
            f"to a price equal to {{r}} pounds.",
            f"{price} - {price} * {off} / 100")


def _groups_then(rng: random.Random) -> tuple[str, str]:
    a, b, rate = rng.randint(3, 40), rng.randint(3, 40), rng.choice(["2", "3", "1.5", "2.5", "4"])
    return (f"The stable keeps {a} horses and {b} ponies, and each animal gets {rate} kilograms of oats a day, "
            f"a total of {{r}} kilograms.", f"({a} + {b}) * {rate}")


def _rate_then_more(rng: random.Random) -> tuple[str, str]:
    per, days, extra = rng.randint(5, 60), rng.randint(2, 14), rng.randint(2, 40)
    return (f"The press printed {per} posters a day for {days} days and {extra} on the last morning, "
            f"a total of {{r}} posters.", f"{per} * {days} + {extra}")


STEP_TEMPLATES: tuple[Callable[[random.Random], tuple[str, str]], ...] = (
    _stocked_more, _altogether, _before_sale, _per_unit, _equal_parts, _speed, _times_as_much, _average,
    _in_out, _change, _discount, _groups_then, _rate_then_more,
)
STEPS_SEED = 6170


def steps_texts(n: int, seed: int = STEPS_SEED) -> list[tuple[str, str]]:
    """``n`` distinct ``(id, text)`` pairs of the "steps" corpus, balanced over its templates."""
    return [(f"steps:{i}", text) for i, (_, text) in enumerate(arithmetic_texts(n, seed, STEP_TEMPLATES))]


def arithmetic_texts(n: int, seed: int = SEED,
                     templates: tuple[Callable[[random.Random], tuple[str, str]], ...] = TEMPLATES,
                     ) -> list[tuple[str, str]]:
    """``n`` distinct ``(id, text)`` pairs, balanced over the templates; the same seed gives the same texts."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    while len(out) < n:
        template = templates[len(out) % len(templates)]
        body, expression = template(rng)
        value: Fraction = evaluate(expression)
        text = body.replace("{r}", format_number(value))
        if value < 0 or text in seen:
            continue
        seen.add(text)
        out.append((f"arith:{len(out)}", text))
    return out
