"""Chat's call threshold: chosen on training sources, never on an evaluation suite."""

from __future__ import annotations

import pytest

from toolformer_app.evaluation.calibrate import choose_threshold, negative_texts, positive_prompts


def test_the_threshold_calls_on_the_most_positives_within_the_fpr_budget() -> None:
    pos = [0.30, 0.20, 0.10, 0.02]
    neg = [0.01, 0.02, 0.05, 0.001, 0.003, 0.004, 0.006, 0.007, 0.008, 0.009]
    r = choose_threshold(pos, neg, max_fpr=0.1)  # 0.1: TPR 0.75, FPR 0 beats 0.05: TPR 0.75, FPR 0.1 (tie)
    assert r["call_threshold"] == 0.1 and r["tpr"] == 0.75 and r["fpr"] == 0.0
    loose = choose_threshold(pos, neg, max_fpr=0.2)  # 0.02: TPR 1, FPR 0.2
    assert loose["call_threshold"] == 0.02 and loose["tpr"] == 1.0 and loose["fpr"] == 0.2
    # TPR - FPR would keep 0.3 (0.9 - 0 > 1 - 0.2); within a 20% budget 0.05 calls on every positive
    budget = choose_threshold([0.3] * 9 + [0.05], [0.05, 0.05] + [0.001] * 8, max_fpr=0.2)
    assert budget["call_threshold"] == 0.05 and budget["tpr"] == 1.0 and budget["fpr"] == 0.2
    none = choose_threshold([0.001], [0.5, 0.6], max_fpr=0.0)  # no threshold under the cap calls on a positive
    assert none["call_threshold"] is None and none["tpr"] == 0.0
    with pytest.raises(ValueError):
        choose_threshold([], neg)


def test_positives_are_unread_arithmetic_texts_cut_before_the_result() -> None:
    from toolformer_app.pipeline.arithmetic import arithmetic_texts

    prompts = positive_prompts(skip=160, n=20)
    read = {t for _, t in arithmetic_texts(160)}
    assert len(prompts) >= 15
    assert not any(t.startswith(p) for p in prompts for t in read)  # never a text the recipe annotated
    assert all(p[-1].isalpha() or p[-1] in ",:=" for p in prompts)  # cut before a number


def test_negatives_are_training_wiki_passages_outside_the_mix() -> None:
    from toolformer_app.pipeline.split import held_out_start, training_wiki_items

    first = negative_texts(set(), 5)
    excluded = negative_texts({f"wiki:{i}" for i, _, _ in training_wiki_items()[:9000]}, 5)
    assert len(first) == 5 and len(excluded) == 5 and first != excluded
    allowed = {e for i, _, e in training_wiki_items()[9000:]}
    assert all(any(e.startswith(t[:40]) for e in allowed) for t in excluded)
    assert held_out_start(10_033) > 9000
