"""Honest C*: no self-retrieval while annotating, Calculator inputs from the past, the self-overlap count."""

from __future__ import annotations

import pytest

from toolformer_app.pipeline.filtering import self_overlap, self_retrieved_table
from toolformer_app.tools.calculator import Calculator, inputs_from_past
from toolformer_app.tools.corpus import Corpus, Exclusion
from toolformer_app.tools.qa import QA
from toolformer_app.tools.wikisearch import WikiSearch


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"title": "Beowulf", "text": "Beowulf is an Old English poem, an epic in the tradition of Germanic heroic legend."}\n'
        '{"title": "Nowell Codex", "text": "The Nowell Codex is a manuscript that holds the poem Beowulf."}\n',
        encoding="utf-8")
    return str(path)


def test_exclusion_by_title_and_index():
    c = Corpus(["alpha beta", "alpha gamma", "delta"], ["A", "B", "C"])
    assert [i for _, i in c.search_ids("alpha", 3)] == [0, 1]
    assert [i for _, i in c.search_ids("alpha", 3, Exclusion(ids=frozenset({0})))] == [1]
    assert [i for _, i in c.search_ids("alpha", 3, Exclusion(titles=frozenset({"b"})))] == [0]
    assert c.search_ids("alpha", 3, Exclusion(frozenset({0}), frozenset({"b"}))) == []


def test_wikisearch_never_returns_the_annotated_article(corpus_file):
    tool = WikiSearch(corpus_path=corpus_file)
    assert "Old English poem" in tool.run("Beowulf poem").output  # a user's search sees every article
    doc_tool = tool.for_document({"date": None, "title": "Beowulf"})
    result = doc_tool.run("Beowulf poem")
    assert result.ok and "Nowell Codex" in result.output and "Old English" not in result.output
    assert tool.for_document({"date": None}) is tool  # nothing to leave out: the same tool


def test_embedded_article_index_only_for_the_embedded_corpus(corpus_file):
    assert WikiSearch(corpus_path=corpus_file).for_document({"article": 0}).exclude.ids == frozenset()
    assert WikiSearch().for_document({"article": 7}).exclude.ids == frozenset({7})


def test_qa_retrieval_leaves_out_the_article(corpus_file):
    qa = QA(corpus_path=corpus_file).for_document({"title": "Beowulf"})
    assert all("Old English" not in p for p in qa.retrieve("What is Beowulf?"))


def test_wiki_texts_carry_their_article_for_leave_one_out():
    from toolformer_app.pipeline.corpus import load_texts
    from toolformer_app.tools.corpus import wiki_corpus

    metas: dict = {}
    items = load_texts(wiki=True, limit=5, metas=metas)
    corpus = wiki_corpus()
    for text_id, text in items:
        meta = metas[text_id]
        assert corpus.titles[meta["article"]] == meta["title"]
        assert text in corpus.passages[meta["article"]]
        # the annotated text's own passage can never be the search result
        tool = WikiSearch().for_document(meta)
        result = tool.run(meta["title"])
        assert not result.ok or not self_overlap(result.output, text)


@pytest.mark.parametrize("before, expr, keep", [
    ("Out of 1400 people, 400 passed, that is", "400 / 1400", True),
    ("A shop sold 347 loaves in the morning and 289 in the afternoon, so", "347 + 289", True),
    ("It rose by 15% from 80 to", "80 * 1.15", False),   # 1.15 is not stated (100 + 15 is two steps)
    ("It rose by 15% from 80 to", "80 + 15% of 80", True),
    ("A shop sold 347 loaves, and in total", "347 + 289", False),  # 289 comes from the future
    ("Nothing here", "Calculator", False),
    ("He ran 3 laps of 400 m, 1200 m, then", "1200 / 60", True),  # 60: a unit constant
    ("Out of 1400 people, 400 passed,", "0.29 * 100", True),  # 400 / 1400 ~ 0.29, derived
    ("The ferry sailed", "7 * 60", False),  # constants alone: both operands come from the words after the call
    ("The ferry sailed 3 days,", "3 * 24", True),  # a stated number and a constant
])
def test_calculator_inputs_come_from_the_past(before, expr, keep):
    assert inputs_from_past(before, expr) is keep
    assert Calculator().keeps_call(before, " 636 loaves.", expr) is keep


def test_self_overlap_counts_copies_per_tool():
    from toolformer_app.pipeline.config import Candidate

    text = "Beowulf is an Old English poem, an epic in the tradition of Germanic heroic legend."
    copy = "Beowulf is an Old English poem, an epic in the tradition of Germanic heroic legend. It survives"
    assert self_overlap(copy, text) and not self_overlap("The Nowell Codex is a manuscript.", text)
    a = Candidate("t", "WikiSearch", 3, 10, 0.1, "Beowulf", result=copy)
    b = Candidate("t", "QA", 3, 10, 0.1, "What?", result="an epic")
    assert self_retrieved_table([a, b], {"t": text}) == {"QA": 0, "WikiSearch": 1}


def test_stats_json_counts_self_retrieved_kept_calls_per_tool():
    from toolformer_app.pipeline.config import Candidate
    from toolformer_app.pipeline.filtering import build_stats

    text = "Beowulf is an Old English poem, an epic in the tradition of Germanic heroic legend."

    def cand(tool, result, red):
        return Candidate("t", tool, 3, 10, 0.1, "q", result=result, loss_plain=2.0, loss_empty=2.0,
                         loss_result=2.0 - red, loss_reduction=red, next_tokens=[" Old"])

    cands = [cand("WikiSearch", text + " It survives in one manuscript.", 1.0),
             cand("WikiSearch", "The Nowell Codex holds it.", 0.5), cand("QA", "Old English", 0.4),
             cand("WikiSearch", text, 0.1)]  # a copy, but not kept at tau_f = 0.3
    stats = build_stats([{"text_id": "t", "text": text}], cands, {"WikiSearch": 0.3, "QA": 0.3}, 1)
    assert stats["self_retrieved"] == {"QA": 0, "WikiSearch": 1}
    assert stats["per_tool"]["WikiSearch"]["self_retrieved"] == 1
