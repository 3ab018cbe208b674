"""How many date items the Calendar's result alone answers: the ceiling of a model that makes its one call
(paper, section 4: at most one API call per input) and then copies from the result without computing.

    python experiments/calendar/dates_copy_ceiling.py

An item counts when one of its gold answers is a word (or, for a date, a phrase) of the Calendar's sentence at
the suite's clock ("Today is Monday, January 30, 2023."): an upper bound, since a number can match by chance
(an age of 30 on January 30). Printed for the test split (items 0-99, the reported one), the dev split (100-199)
and per question type.
"""
from __future__ import annotations

import datetime
import re
from collections import Counter

from toolformer_app.evaluation.suites import load_suite
from toolformer_app.tools.calendar import today_sentence


def in_result(item) -> bool:
    result = today_sentence(datetime.date.fromisoformat(item.meta["clock"])).lower()
    return any(re.search(rf"(?<!\w){re.escape(a.lower())}(?!\w)", result) for a in item.answers)


def main() -> None:
    items = load_suite("dates")
    answered: Counter[str] = Counter(i.meta["type"] for i in items if in_result(i))
    types: Counter[str] = Counter(i.meta["type"] for i in items)
    for name, part in (("test split (0-99)", items[:100]), ("dev split (100-199)", items[100:200])):
        hit = sum(map(in_result, part))
        print(f"{name}: the Calendar's result holds the answer for {hit} of {len(part)} items")
    print("per type (answered / items):", ", ".join(f"{t} {answered[t]}/{n}" for t, n in types.most_common()))


if __name__ == "__main__":
    main()
