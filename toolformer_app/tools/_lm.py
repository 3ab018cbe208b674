"""Short greedy completions with a causal LM, shared by the QA and MT executors."""

from __future__ import annotations

from typing import Any

BATCH = 16  # prompts decoded together: a decoding step reads the weights once for all of them


def greedy_complete(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int, stop: str = "\n") -> str:
    """The greedy continuation of ``prompt`` (special tokens removed), cut at the first ``stop``."""
    return greedy_complete_many(model, tokenizer, [prompt], [max_new_tokens], stop)[0]


def greedy_complete_many(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: list[int],
                         stop: str = "\n", batch_size: int = BATCH) -> list[str]:
    """``greedy_complete`` for many prompts, ``batch_size`` at a time (prompts of similar length
    together, left-padded by hand: the tokenizer is shared, so its padding side is left alone).

    A batch decodes until every row has stopped or reached the largest budget; each row keeps only
    its own first ``max_new_tokens[i]`` tokens, which is what it would have generated alone.
    """
    import torch

    if len(prompts) != len(max_new_tokens):
        raise ValueError("one max_new_tokens per prompt")
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: (len(encoded[i]), max_new_tokens[i]))
    out: list[str] = [""] * len(prompts)
    for s in range(0, len(order), batch_size):
        rows = order[s : s + batch_size]
        width = max(len(encoded[i]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, i in enumerate(rows):
            ids[b, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            mask[b, width - len(encoded[i]) :] = 1
        kwargs: dict[str, Any] = {
            "max_new_tokens": max(max_new_tokens[i] for i in rows),
            "do_sample": False,
            "num_beams": 1,
            "pad_token_id": pad,
        }
        if stop:  # a row stops as soon as its stop string is decoded
            kwargs.update(stop_strings=[stop], tokenizer=tokenizer)
        with torch.no_grad():
            gen = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device), **kwargs)
        for b, i in enumerate(rows):
            text = tokenizer.decode(gen[b, width : width + max_new_tokens[i]], skip_special_tokens=True)
            out[i] = text.split(stop, 1)[0] if stop else text
    return out
