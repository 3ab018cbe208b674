"""English paragraphs that hold a foreign chunk (the MT heuristic of A.1), from the wiki's fr and es extracts.

The paper annotates CCNet paragraphs that quote at least 10 tokens of another language among
English. Offline, the French and Spanish lead extracts of the wiki wheel supply the foreign chunk,
and the English extract of the same article supplies English text whose content the translation
predicts. Articles behind the evaluation suites are skipped (``pipeline.split``).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from toolformer_app.tools.corpus import sentences, wiki_data_path

SEED = 3011
LANGUAGES = {"fr": ("fr-fr", "French"), "es": ("es-es", "Spanish")}
MIN_WORDS, MAX_WORDS = 10, 40
_FRAMES = (
    'The {lang} edition of the encyclopedia opens its entry on {title} with "{chunk}" The English entry puts it '
    "this way: {english}",
    'A {lang} guidebook describes {title} in one line: "{chunk}" For English readers: {english}',
    'In a {lang} school textbook, the chapter on {title} begins: "{chunk}" The English version of the chapter '
    "says: {english}",
)


def _extracts(code: str) -> dict[str, str]:
    en = wiki_data_path()
    if en is None:
        return {}
    path = Path(str(en).replace("en-us", code))
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(rec.get("title") or key): (rec.get("extract") or "").strip()
            for key, rec in data.items() if isinstance(rec, dict)}


def _first_sentence(text: str) -> str:
    parts = sentences(re.sub(r"\s+", " ", text).strip())
    return parts[0] if parts else ""


def foreign_texts(n: int, seed: int = SEED) -> list[tuple[str, str]]:
    """Up to ``n`` (id, text) pairs, alternating French and Spanish chunks; seeded and reproducible."""
    from toolformer_app.pipeline.split import training_wiki_items

    english = {title: extract for _, title, extract in training_wiki_items()}
    rng = random.Random(seed)
    pools = []
    for lang, (code, name) in LANGUAGES.items():
        rows = []
        for title, extract in sorted(_extracts(code).items()):
            if title not in english:
                continue  # an article behind an eval suite, or one with no English extract
            chunk, en = _first_sentence(extract), _first_sentence(english[title])
            if MIN_WORDS <= len(chunk.split()) <= MAX_WORDS and len(en.split()) >= 6:
                rows.append((lang, name, title, chunk, en))
        rng.shuffle(rows)
        pools.append(rows)
    out: list[tuple[str, str]] = []
    for i in range(max((len(p) for p in pools), default=0)):
        for rows in pools:
            if i < len(rows) and len(out) < n:
                lang, name, title, chunk, en = rows[i]
                frame = _FRAMES[len(out) % len(_FRAMES)]
                out.append((f"mt-{lang}:{len(out)}", frame.format(lang=name, title=title, chunk=chunk, english=en)))
    return out
