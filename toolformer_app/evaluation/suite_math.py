"""The math suite's items (paper, section 4.2.2: ASDiv, SVAMP and MAWPS; here equivalents built from templates).

Word problems with 1-2 operations on 2-3 numbers, about a third with a non-integer answer. Each answer is
computed with sympy (exact rationals), checked against the project's Calculator, and rounded to 2 decimals.
Prompt (Appendix C): "x q The answer is".
"""

from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction

from toolformer_app.decoding import PAPER_QUESTION_SUFFIX  # " The answer is", written once
from toolformer_app.evaluation import scoring
from toolformer_app.evaluation.items import Item

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
