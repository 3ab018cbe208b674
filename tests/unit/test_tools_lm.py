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
