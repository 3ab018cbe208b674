"""Short greedy completions with a causal LM, shared by the QA and MT executors."""

from __future__ import annotations

import copy
import threading
from typing import Any

BATCH = 16  # prompts decoded together: a decoding step reads the weights once for all of them

# The KV cache of a fixed few-shot prefix, per (model, prefix ids): computed once, copied per batch.
_PREFIX_CACHES: dict[tuple[int, tuple[int, ...]], tuple[Any, Any]] = {}
_PREFIX_LOCK = threading.Lock()
_MAX_PREFIXES = 8


def greedy_complete(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int, stop: str = "\n") -> str:
    """The greedy continuation of ``prompt`` (special tokens removed), cut at the first ``stop``."""
    return greedy_complete_many(model, tokenizer, [prompt], [max_new_tokens], stop)[0]


def _common_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def prefix_cache(model: Any, prefix_ids: list[int]) -> Any:
    """The KV cache of ``prefix_ids`` (batch 1), computed once per model and prefix."""
    import torch

    key = (id(model), tuple(prefix_ids))
    with _PREFIX_LOCK:
        hit = _PREFIX_CACHES.get(key)
        if hit is not None and hit[0] is model:  # id() alone could be a freed model's
            return hit[1]
        with torch.no_grad():
            ids = torch.tensor([prefix_ids], device=model.device)
            cache = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True).cache
        if len(_PREFIX_CACHES) >= _MAX_PREFIXES:
            _PREFIX_CACHES.pop(next(iter(_PREFIX_CACHES)))
        _PREFIX_CACHES[key] = (model, cache)
        return cache


def greedy_complete_many(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: list[int],
                         stop: str = "\n", batch_size: int = BATCH, prefix: str | None = None) -> list[str]:
    """``greedy_complete`` for many prompts, ``batch_size`` at a time (prompts of similar length
    together, left-padded by hand: the tokenizer is shared, so its padding side is left alone).

    A batch decodes until every row has stopped or reached the largest budget; each row keeps only
    its own first ``max_new_tokens[i]`` tokens, which is what it would have generated alone.

    ``prefix``: text that every prompt starts with (a tool's few-shot examples). Its KV cache is
    computed once and reused by every batch; each row is then prefix, padding, rest, so the cached
    positions stay first (the padding is masked and the rest's positions follow the prefix's). Only
    the tokens the prompts' own tokenization shares with the prefix's are cached, so the ids the
    model sees are the same as without it.
    """
    import torch

    if len(prompts) != len(max_new_tokens):
        raise ValueError("one max_new_tokens per prompt")
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    shared: list[int] = []
    if prefix and prompts and all(p.startswith(prefix) for p in prompts):
        shared = tokenizer(prefix)["input_ids"]
        # the boundary token can merge with the rest ("\n\n" + "Context"): keep what every prompt shares,
        # and leave each row at least one token of its own to prefill
        n = min([_common_length(shared, e) for e in encoded] + [min(len(e) for e in encoded) - 1])
        shared = shared[:n] if n > 0 else []
    p = len(shared)
    cache = prefix_cache(model, shared) if shared else None
    order = sorted(range(len(prompts)), key=lambda i: (len(encoded[i]), max_new_tokens[i]))
    out: list[str] = [""] * len(prompts)
    for s in range(0, len(order), batch_size):
        rows = order[s : s + batch_size]
        width = max(len(encoded[i]) - p for i in rows)
        ids = torch.full((len(rows), p + width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), p + width), dtype=torch.long)
        ids[:, :p] = torch.tensor(shared, dtype=torch.long)
        mask[:, :p] = 1
        for b, i in enumerate(rows):
            rest = encoded[i][p:]
            ids[b, p + width - len(rest) :] = torch.tensor(rest)
            mask[b, p + width - len(rest) :] = 1
        kwargs: dict[str, Any] = {
            "max_new_tokens": max(max_new_tokens[i] for i in rows),
            "do_sample": False,
            "num_beams": 1,
            "pad_token_id": pad,
        }
        if stop:  # a row stops as soon as its stop string is decoded
            kwargs.update(stop_strings=[stop], tokenizer=tokenizer)
        if cache is not None:  # generate appends to the cache it gets: give it a copy, one row per prompt
            batch_cache = copy.deepcopy(cache)
            batch_cache.batch_repeat_interleave(len(rows))
            kwargs["cache"] = batch_cache
        with torch.no_grad():
            gen = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device), **kwargs)
        for b, i in enumerate(rows):
            start = p + width
            text = tokenizer.decode(gen[b, start : start + max_new_tokens[i]], skip_special_tokens=True)
            out[i] = text.split(stop, 1)[0] if stop else text
    return out
