"""Step 1 of the paper (section 2, "Sampling API Calls"): where does the model want a call?

    p_i = p_M(" [" | P(x), x_<i)   for every position i of x, in one teacher-forced pass
    keep the positions with p_i > tau_s, at most k of them, highest first (``top_positions``)

Speed: the tool prompt's prefix is encoded once per (model, tool) and its KV cache reused for every
text (``prompt_prefix``); texts of similar length share a pass; only x's positions go through the LM
head. The pass's keys and values are kept (``ScoredPositions.kv``): sampling starts from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache

from toolformer_app.models.forward import HEAD_ROWS, split_head
from toolformer_app.pipeline import shared_attention
from toolformer_app.pipeline.batching import (
    POSITION_PASS_COPY_TOKENS,
    POSITION_PASS_TOKENS,
    TokenCounter,
    length_groups,
)
from toolformer_app.tools.base import Tool


@dataclass
class EncodedText:
    """x tokenised as " " + x (the copy after "Output:" starts with a space).

    char_starts[i] is the offset in the text where token i starts; insertable[i] says whether a
    call may go before token i (a clean boundary, not inside a multi-byte character).
    """

    text_id: str
    text: str
    x_ids: list[int]
    char_starts: list[int]
    insertable: list[bool]


def encode_text(tok, text_id: str, text: str) -> EncodedText:
    enc = tok(" " + text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    starts = [max(0, s - 1) for s, _ in offsets]
    insertable = [False] + [offsets[i][0] >= offsets[i - 1][1] and offsets[i][0] > 0 for i in range(1, len(ids))]
    return EncodedText(text_id, text, ids, starts, insertable)


@dataclass
class PromptPrefix:
    """A tool prompt's fixed prefix (instruction + examples + "Input:") and its KV cache."""

    ids: list[int]
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (1, heads, P, head_dim)


_PREFIXES: dict[tuple[int, str, str], PromptPrefix] = {}


@torch.inference_mode()
def prompt_prefix(model, tok, tool: Tool, counter: TokenCounter | None = None) -> PromptPrefix:
    """Encode a tool's prompt prefix once per (model, tool) and keep its KV cache."""
    text = tool.prompt_prefix().rstrip(" ")
    key = (id(model), tool.name, text)
    if key not in _PREFIXES:
        ids = tok(text, add_special_tokens=True)["input_ids"]
        device = next(model.parameters()).device
        out = model(torch.tensor([ids], device=device), use_cache=True, logits_to_keep=1)
        if counter:
            counter.positions += len(ids)
        _PREFIXES[key] = PromptPrefix(ids, [(k, v) for k, v, *_ in out.cache])
    return _PREFIXES[key]


def _cache_from(layers: list[tuple[torch.Tensor, torch.Tensor]], rows: slice | list[int], length: int,
                repeats: int = 1) -> DynamicCache:
    """A fresh DynamicCache holding ``layers`` cut to ``length`` positions, rows repeated (copies)."""
    data = []
    for k, v in layers:
        k, v = k[rows, :, :length], v[rows, :, :length]
        if repeats > 1:
            k, v = k.repeat_interleave(repeats, 0), v.repeat_interleave(repeats, 0)
        data.append((k, v))
    return DynamicCache(ddp_cache_data=data)


@dataclass
class ScoredPositions:
    """The result of the position-scoring pass for a batch of texts."""

    texts: list[EncodedText]
    body_lens: list[int]  # tokens of " " + x + "\nOutput:" per text
    p: list[torch.Tensor]  # p_i for i in 0..n-1 (p[0] is unused: no call before the first token)
    prefix_len: int
    prefix_kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: the prompt prefix's (kv_heads, P, head_dim)
    kv: list[list[tuple[torch.Tensor, torch.Tensor]]]  # per text, per layer: (kv_heads, body + n, head_dim)


@torch.inference_mode()
def position_scores(model, tok, tool: Tool, texts: list[EncodedText], api_token_id: int,
                    counter: TokenCounter | None = None) -> ScoredPositions:
    """p_i = p_M(" [" | P(x), x_<i) for every position of every text.

    The sequence is prefix (cached) + " " + x + "\nOutput:" + " " + x: teacher forcing, so p_i
    is measured on the true x_<i, never on the model's own copy. Texts of similar length share a
    pass (``length_groups``); only the copy's positions go through the LM head.
    """
    prefix = prompt_prefix(model, tok, tool, counter)
    device = next(model.parameters()).device
    bodies = [tok(" " + t.text + "\nOutput:", add_special_tokens=False)["input_ids"] for t in texts]
    seqs = [b + t.x_ids for b, t in zip(bodies, texts, strict=True)]
    parts = split_head(model)
    in_place = parts is not None and shared_attention.supported(model)
    prefix_kv = [(k[0], v[0]) for k, v in prefix.layers]
    p: list[torch.Tensor] = [torch.empty(0)] * len(texts)
    kv: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in texts]
    # Read in place, the prefix costs no memory per row; copied (any other model), it does.
    budget = (POSITION_PASS_TOKENS, 0) if in_place else (POSITION_PASS_COPY_TOKENS, len(prefix.ids))
    for group in length_groups([len(s) for s in seqs], max_tokens=budget[0], overhead=budget[1]):
        width = max(len(seqs[r]) for r in group)
        ids = torch.zeros((len(group), width), dtype=torch.long)
        for g, r in enumerate(group):
            ids[g, : len(seqs[r])] = torch.tensor(seqs[r])
        # the state at body_len - 1 + i predicts x_i: only the x part of every row is needed.
        spans = [(len(bodies[r]) - 1, len(bodies[r]) - 1 + len(texts[r].x_ids)) for r in group]
        if in_place:
            decoder = parts[0]
            state = shared_attention.PrefixAttention(prefix_kv)
            positions = torch.arange(len(prefix.ids), len(prefix.ids) + width, device=device)[None]
            with shared_attention.sharing(model, state):
                hidden = decoder(input_ids=ids.to(device), position_ids=positions, use_cache=False).last_hidden_state
            layers = state.layers  # per layer (rows, kv_heads, width, head_dim): the text part only
            start = 0
        else:
            hidden, layers = _position_pass_copied(model, parts, prefix, ids, [len(seqs[r]) for r in group], spans)
            start = len(prefix.ids)
        if parts is not None:
            head = parts[1]
            rows = torch.tensor([g for g, (a, b) in enumerate(spans) for _ in range(a, b)])
            cols = torch.tensor([j for a, b in spans for j in range(a, b)])
            picked = hidden[rows.to(device), cols.to(device)]
            flat = torch.cat([torch.softmax(head(picked[s : s + HEAD_ROWS]).float(), -1)[:, api_token_id]
                              for s in range(0, picked.shape[0], HEAD_ROWS)]).cpu()
            per_row = flat.split([b - a for a, b in spans])
        else:
            offset = width - hidden.shape[1]  # hidden holds the logits of the last positions
            per_row = [torch.softmax(hidden[g, a - offset : b - offset].float(), -1)[:, api_token_id].cpu()
                       for g, (a, b) in enumerate(spans)]
        for g, r in enumerate(group):
            p[r] = per_row[g]
            end = start + len(seqs[r])
            # views of the batch's block when it holds only the texts; copies when it also holds the prefix
            kv[r] = [(k[g, :, start:end], v[g, :, start:end]) if in_place
                     else (k[g, :, start:end].clone(), v[g, :, start:end].clone()) for k, v in layers]
        if counter:
            counter.positions += sum(len(seqs[r]) for r in group)
    return ScoredPositions(texts, [len(b) for b in bodies], p, len(prefix.ids), prefix_kv, kv)


def _position_pass_copied(model, parts, prefix: PromptPrefix, ids: torch.Tensor, lengths: list[int],
                          spans: list[tuple[int, int]]):
    """The position pass through the model's own attention: each row gets a copy of the prefix's
    cache and a padding mask. Returns (last hidden states, or logits of the last positions when the
    LM head cannot be split off) and the cache's layers (rows, kv_heads, P + width, head_dim)."""
    device = next(model.parameters()).device
    rows, width = ids.shape
    mask = torch.zeros((rows, len(prefix.ids) + width), dtype=torch.long)
    mask[:, : len(prefix.ids)] = 1
    for g, n in enumerate(lengths):
        mask[g, len(prefix.ids) : len(prefix.ids) + n] = 1
    cache = _cache_from(prefix.layers, slice(0, 1), len(prefix.ids), repeats=rows)
    if parts is not None:
        out = parts[0](input_ids=ids.to(device), attention_mask=mask.to(device), cache=cache, use_cache=True)
        hidden = out.last_hidden_state
    else:
        keep = width - min(a for a, _ in spans)
        out = model(ids.to(device), attention_mask=mask.to(device), cache=cache, use_cache=True, logits_to_keep=keep)
        hidden = out.logits
    return hidden, [(k, v) for k, v, *_ in out.cache]


def top_positions(p: torch.Tensor, text: EncodedText, tau_s: float, k: int) -> list[int]:
    """Positions with p_i > tau_s at clean boundaries, at most k, highest p_i first."""
    order = torch.argsort(p, descending=True).tolist()
    return [i for i in order if i >= 1 and text.insertable[i] and float(p[i]) > tau_s][:k]
