"""Short greedy completions with a causal LM, shared by the QA and MT executors."""

from __future__ import annotations

from typing import Any


def greedy_complete(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int, stop: str = "\n") -> str:
    """The greedy continuation of ``prompt`` (special tokens removed), cut at the first ``stop``."""
    import torch

    enc = tokenizer(prompt, return_tensors="pt")
    enc = {k: v.to(model.device) for k, v in enc.items()}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": False,
        "num_beams": 1,
        "pad_token_id": pad,
    }
    if stop:  # stop as soon as the stop string is decoded instead of always running max_new_tokens
        kwargs.update(stop_strings=[stop], tokenizer=tokenizer)
    with torch.no_grad():
        out = model.generate(**enc, **kwargs)
    text = tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return text.split(stop, 1)[0] if stop else text
