"""The train/eval split of the Wikipedia extracts, by article.

Two things are evaluated on the wiki extracts, so their articles must never be annotated or
trained on (not even as call-free text):
- the perplexity and `plain` suites read the last ``HELD_OUT`` extracts of the file;
- the facts suite asks about subjects whose articles (the subject's, and the answer's) state the
  fact: "Buenos Aires is the capital of" -> the articles "Buenos Aires" and "Argentina".

``training_wiki_items()`` is the only way the pipeline reads the wiki extracts for training.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from toolformer_app.config import EVAL_ASSETS_DIR
from toolformer_app.tools.corpus import HELD_OUT


def _names(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


@lru_cache(maxsize=1)
def eval_titles(facts_path: str | None = None) -> frozenset[str]:
    """Lower-cased article titles behind the facts suite: each item's subject and every accepted answer."""
    path = Path(facts_path) if facts_path else EVAL_ASSETS_DIR / "facts.jsonl"
    out: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        out.update(n.casefold() for n in _names((row.get("meta") or {}).get("subject")))
        out.update(n.casefold() for n in _names(row.get("answer")))
    return frozenset(out)


def held_out_start(n_extracts: int) -> int:
    """Index of the first held-out extract (the last ``HELD_OUT`` are the perplexity/plain texts)."""
    return max(0, n_extracts - HELD_OUT)


def training_wiki_items() -> list[tuple[int, str, str]]:
    """(extract index, title, extract) of every English extract that may be annotated and trained on."""
    from toolformer_app.tools.corpus import wiki_corpus

    corpus = wiki_corpus()
    banned = eval_titles()
    stop = held_out_start(len(corpus.passages))
    return [(i, corpus.titles[i], corpus.passages[i]) for i in range(stop)
            if corpus.titles[i].casefold() not in banned]


def is_eval_title(title: str) -> bool:
    return title.casefold() in eval_titles()
