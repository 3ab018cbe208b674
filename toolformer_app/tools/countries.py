"""Country records (capital, region, languages, currencies, neighbours) from the ``countryinfo`` package.

Two uses: QA's knowledge includes one almanac passage per country (``almanac_passages``), because the Wikipedia
extracts hold no passage that names, for example, Canberra; and the pipeline builds training statements from the
records of countries that no evaluation item asks about (``pipeline.countries``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# ISO 639-1 and ISO 4217 names of the codes countryinfo uses most; a record whose code is missing here simply
# states nothing about its language or currency.
LANGUAGES = {
    "ar": "Arabic", "bn": "Bengali", "de": "German", "el": "Greek", "en": "English", "es": "Spanish",
    "fa": "Persian", "fr": "French", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian",
    "ja": "Japanese", "ko": "Korean", "ms": "Malay", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese",
    "ro": "Romanian", "ru": "Russian", "sv": "Swedish", "sw": "Swahili", "th": "Thai", "tr": "Turkish",
    "uk": "Ukrainian", "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese", "fi": "Finnish", "da": "Danish",
    "no": "Norwegian", "cs": "Czech", "sk": "Slovak", "bg": "Bulgarian", "sr": "Serbian", "hr": "Croatian",
    "he": "Hebrew", "am": "Amharic", "so": "Somali", "ne": "Nepali", "si": "Sinhala", "km": "Khmer",
    "lo": "Lao", "my": "Burmese", "mn": "Mongolian", "ka": "Georgian", "hy": "Armenian", "az": "Azerbaijani",
    "kk": "Kazakh", "uz": "Uzbek", "ps": "Pashto", "sq": "Albanian", "mk": "Macedonian", "lv": "Latvian",
    "lt": "Lithuanian", "et": "Estonian", "is": "Icelandic", "ga": "Irish", "mt": "Maltese", "tl": "Filipino",
}
CURRENCIES = {
    "EUR": "the euro", "USD": "the United States dollar", "GBP": "the pound sterling", "JPY": "the yen",
    "CNY": "the renminbi", "INR": "the Indian rupee", "RUB": "the Russian ruble", "BRL": "the Brazilian real",
    "CAD": "the Canadian dollar", "AUD": "the Australian dollar", "CHF": "the Swiss franc",
    "SEK": "the Swedish krona", "NOK": "the Norwegian krone", "DKK": "the Danish krone", "PLN": "the zloty",
    "MXN": "the Mexican peso", "ARS": "the Argentine peso", "CLP": "the Chilean peso", "COP": "the Colombian peso",
    "PEN": "the sol", "ZAR": "the rand", "NGN": "the naira", "KES": "the Kenyan shilling", "EGP": "the Egyptian pound",
    "TRY": "the Turkish lira", "KRW": "the South Korean won", "THB": "the baht", "VND": "the dong",
    "IDR": "the Indonesian rupiah", "PHP": "the Philippine peso", "PKR": "the Pakistani rupee",
    "BDT": "the taka", "XOF": "the West African CFA franc", "XAF": "the Central African CFA franc",
    "MAD": "the Moroccan dirham", "DZD": "the Algerian dinar", "TND": "the Tunisian dinar", "NZD": "the New Zealand dollar",
    "HUF": "the forint", "CZK": "the Czech koruna", "RON": "the Romanian leu", "UAH": "the hryvnia",
    "ILS": "the Israeli new shekel", "SAR": "the Saudi riyal", "AED": "the UAE dirham", "IRR": "the Iranian rial",
    "ISK": "the Icelandic krona", "MYR": "the ringgit", "SGD": "the Singapore dollar", "LKR": "the Sri Lankan rupee",
    "NPR": "the Nepalese rupee", "ETB": "the birr", "GHS": "the cedi", "TZS": "the Tanzanian shilling",
    "UGX": "the Ugandan shilling", "BOB": "the boliviano", "PYG": "the guarani", "UYU": "the Uruguayan peso",
    "VES": "the bolivar", "CUP": "the Cuban peso", "JMD": "the Jamaican dollar", "MNT": "the tugrik",
    "KZT": "the tenge", "GEL": "the lari", "AMD": "the dram", "AZN": "the Azerbaijani manat",
}
_THE = {"Netherlands", "Philippines", "Bahamas", "Gambia", "Maldives", "Comoros", "Seychelles"}


@dataclass(frozen=True)
class Country:
    name: str  # as countryinfo spells it: "Kenya", "United States"
    capital: str
    region: str  # "Eastern Africa"; empty when the record has none
    languages: tuple[str, ...]
    currencies: tuple[str, ...]
    neighbours: tuple[str, ...]

    @property
    def called(self) -> str:
        """The name as written in a sentence: "the Netherlands", "the United States", "Kenya"."""
        n = self.name
        if n in _THE or n.startswith(("United ", "Republic ", "Democratic ", "Federated ")) \
                or n.endswith(("Islands", "Republic")):
            return f"the {n}"
        return n


@lru_cache(maxsize=1)
def country_records() -> tuple[Country, ...]:
    """Every country with a plain capital (no commas or brackets), sorted by name."""
    from countryinfo import CountryInfo

    raw = {v["name"]: v for v in CountryInfo.all().values() if isinstance(v, dict) and v.get("name")}
    by_code = {str((v.get("ISO") or {}).get("alpha3", "")).upper(): n for n, v in raw.items()}
    out = []
    for name, rec in sorted(raw.items()):
        capital = rec.get("capital")
        capital = capital.strip() if isinstance(capital, str) else ""
        if not capital or re.search(r"[,()]", name + capital):
            continue
        out.append(Country(
            name, capital, str(rec.get("subregion") or rec.get("region") or "").strip(),
            tuple(LANGUAGES[c] for c in rec.get("languages") or () if c in LANGUAGES),
            tuple(CURRENCIES[c] for c in rec.get("currencies") or () if c in CURRENCIES),
            tuple(by_code[c] for c in rec.get("borders") or () if c in by_code),
        ))
    return tuple(out)


def _list(words: tuple[str, ...]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def almanac_passage(c: Country) -> str:
    """One short passage per country, in the encyclopedia's register."""
    parts = [f"{c.called[0].upper() + c.called[1:]} is a country" + (f" in {c.region}." if c.region else "."),
             f"The capital of {c.called} is {c.capital}."]
    if c.languages:
        parts.append(f"The official language{'s' if len(c.languages) > 1 else ''} of {c.called} "
                     f"{'are' if len(c.languages) > 1 else 'is'} {_list(c.languages)}.")
    if c.currencies:
        parts.append(f"The currency of {c.called} is {c.currencies[0]}.")
    if c.neighbours:
        parts.append(f"{c.called[0].upper() + c.called[1:]} borders {_list(c.neighbours[:6])}.")
    return " ".join(parts)


@lru_cache(maxsize=1)
def almanac_passages() -> tuple[tuple[str, str], ...]:
    """(title, passage) for every country record: part of QA's knowledge."""
    return tuple((f"{c.name} (almanac)", almanac_passage(c)) for c in country_records())
