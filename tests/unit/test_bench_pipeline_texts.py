"""`bench pipeline`'s texts: the default corpus gives the scoring stage something to score."""
from __future__ import annotations

import pytest

from toolformer_app.bench.pipeline import _texts, targets
from toolformer_app.tools.calculator import numbers_in_text


def test_the_mixed_corpus_is_half_wiki_half_arithmetic_and_every_wiki_text_is_selected():
    from toolformer_app.tools import get_tool

    texts = _texts(7, ["Calculator"], "mixed")
    wiki = [t for i, t in texts if i.startswith("wiki:")]
    arith = [t for i, t in texts if i.startswith("arith:")]
    assert (len(wiki), len(arith)) == (3, 4)
    assert all(get_tool("Calculator").selects(t) for t in wiki)
    # arithmetic texts state the numbers a call can read from the past
    assert all(len(numbers_in_text(t)) >= 2 for t in arith)
    assert [i for i, _ in _texts(3, ["Calculator"], "wiki")] == [i for i, t in texts if i.startswith("wiki:")]
    assert all(i.startswith("arith:") for i, _ in _texts(3, ["Calculator"], "arithmetic"))
    with pytest.raises(ValueError, match="corpus must be one of"):
        _texts(3, ["Calculator"], "cc-net")


def test_a_run_that_scored_nothing_says_so_instead_of_missing_the_scoring_target():
    report = {"speedup": 12.0, "scoring_vs_raw": 0.0, "pipeline_peak_rss_mb": 1500.0, "candidates_scored": 0,
              "same_kept": True}
    assert targets(report)["scoring_vs_raw"].startswith("not measured: no candidate was scored")
    scored = {**report, "candidates_scored": 40, "scoring_vs_raw": 0.9}
    assert targets(scored)["scoring_vs_raw"] == "0.9 (met; target >= 0.85)"
