"""Training statements about countries, for QA's clause calls: capitals, languages, currencies and borders.

Built from the ``countryinfo`` records (``tools.countries``) of the countries that no evaluation item names
(``split.eval_titles``: every facts item's subject and answers), nor the Chat tab's own example questions.
Half the texts ask the question before they state the answer ("What is the capital of Peru? The capital of Peru
is Lima."), so that a question, as Chat's paper style writes it, is a place to call QA too. Seeded: the same
texts every run.
"""

from __future__ import annotations

import random

from toolformer_app.tools.countries import Country, country_records

SEED = 4021
DEMO_SUBJECTS = frozenset({"australia", "kenya"})  # Chat's example questions: kept out of training


def training_countries() -> list[Country]:
    from toolformer_app.pipeline.split import eval_titles

    banned = eval_titles() | DEMO_SUBJECTS
    return [c for c in country_records() if c.name.casefold() not in banned and c.capital.casefold() not in banned]


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def country_text(c: Country, ask: bool) -> str:
    """Two or three sentences about one country; ``ask``: the capital is asked about before it is stated."""
    capital = (f"What is the capital of {c.called}? The capital of {c.called} is {c.capital}." if ask
               else f"The capital of {c.called} is {c.capital}.")
    parts = [f"{_cap(c.called)} is a country" + (f" in {c.region}." if c.region else "."), capital]
    if c.languages:
        parts.append(f"The official language of {c.called} is {c.languages[0]}.")
    elif c.currencies:
        parts.append(f"The currency of {c.called} is {c.currencies[0]}.")
    return " ".join(parts)


def country_texts(limit: int | None = None) -> list[tuple[str, str]]:
    """(id, text) pairs, at most ``limit``: every training country once (in a seeded order, stated and asked about
    in turn), then each once more in the other form."""
    countries = training_countries()
    rng = random.Random(SEED)
    rng.shuffle(countries)
    items = [(f"country:{c.name}:{'question' if ask else 'statement'}", country_text(c, ask))
             for second in (False, True) for n, c in enumerate(countries) for ask in [(n % 2 == 1) != second]]
    return items[:limit] if limit else items
