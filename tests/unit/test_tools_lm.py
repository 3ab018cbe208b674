"""Batched greedy completions (the QA and MT readers) against one prompt at a time."""

from __future__ import annotations

import pytest

from toolformer_app.tools._lm import greedy_complete_many


def _generate_alone(model, tok, prompt: str, max_new_tokens: int) -> str:
    import torch

    enc = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.eos_token_id,
                             stop_strings=["\n"], tokenizer=tok)
    return tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).split("\n", 1)[0]


def test_a_batch_of_prompts_completes_each_as_it_would_alone(tiny_model):
    model, tok = tiny_model
    prompts = ["Translate into English.\nFrench: le chat\nEnglish:", "Q: capital of Kenya?\nA:",
               "A much longer prompt, so that the batch is left-padded: one, two, three, four, five.\nAnswer:"]
    budgets = [3, 9, 6]
    batched = greedy_complete_many(model, tok, prompts, budgets, stop="\n", batch_size=3)
    alone = [_generate_alone(model, tok, p, n) for p, n in zip(prompts, budgets, strict=True)]
    assert batched == alone
    assert greedy_complete_many(model, tok, prompts, budgets, stop="\n", batch_size=2) == alone


def test_one_budget_per_prompt():
    with pytest.raises(ValueError, match="one max_new_tokens per prompt"):
        greedy_complete_many(None, None, ["a", "b"], [3])


def test_a_cached_few_shot_prefix_gives_the_same_completions(tiny_model):
    from toolformer_app.tools import _lm
    from toolformer_app.tools.qa import READER_SHOTS, build_prompt

    model, tok = tiny_model
    prompts = [build_prompt("Who painted The Starry Night?", ["Vincent van Gogh was a Dutch painter."]),
               build_prompt("Where is Nairobi?", ["Nairobi is the capital of Kenya. It lies in the south."]),
               build_prompt("The capital of Peru is", ["Lima is the capital and largest city of Peru, on the coast "
                                                       "of the Pacific Ocean, and one of the largest in South America."])]
    budgets = [6, 12, 9]
    _lm._PREFIX_CACHES.clear()
    plain = greedy_complete_many(model, tok, prompts, budgets, stop="\n", batch_size=3)
    cached = greedy_complete_many(model, tok, prompts, budgets, stop="\n", batch_size=3, prefix=READER_SHOTS)
    assert cached == plain
    assert greedy_complete_many(model, tok, prompts, budgets, stop="\n", batch_size=2, prefix=READER_SHOTS) == plain
    assert [greedy_complete_many(model, tok, [p], [n], prefix=READER_SHOTS)[0]
            for p, n in zip(prompts, budgets, strict=True)] == plain
    assert len(_lm._PREFIX_CACHES) == 1  # computed once, reused by every batch
    # a prefix that not every prompt starts with is simply not cached
    assert greedy_complete_many(model, tok, prompts + ["Q: capital of Kenya?\nA:"], budgets + [4],
                                prefix=READER_SHOTS)[:3] == plain


def test_the_cached_prefix_stops_where_the_prompts_tokens_part(tiny_model):
    from toolformer_app.tools._lm import _common_length

    _, tok = tiny_model
    prefix = "Question: one\n\n"
    full, alone = tok(prefix + "Context: two")["input_ids"], tok(prefix)["input_ids"]
    n = _common_length(alone, full)
    assert full[:n] == alone[:n] and n >= len(alone) - 1
