"""Shared prompt prefixes and their KV, computed once for many rows.

Chat prompts in the paper's few-shot style start with the same long text; prefilling it for every
row makes the time to first token grow with the number of sessions. ``PrefixCache`` keeps the
per-layer keys and values of a few such prefixes (LRU, bounded in entries and bytes) and finds
them again. Everything is matched on token ids, never on text: a prefix is used only when the
row's own prompt ids start with exactly its ids, so the model sees the very tokens it would see
without the cache (a tokenizer that merges across the boundary simply gives no match).

Prefixes are found, not registered: a new prompt that shares at least ``min_tokens`` leading ids
with recent prompts (or prompts admitted with it) makes that shared part an entry (computed in a pass of
its own when rows admitted together share it, else copied from the row's own prefill: ``batched``).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer, keys and values (1, kv_heads, tokens, head_dim)


@dataclass(frozen=True)
class PrefixEntry:
    ids: tuple[int, ...]
    kv: KV  # never written to: rows get copies

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self.kv)


def common_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading ids ``a`` and ``b`` share (slice comparisons, so it stays fast on long prompts)."""
    a, b = list(a), list(b)
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class PrefixCache:
    """Up to ``max_entries`` prefixes (and ``max_bytes`` of KV), the least recently used evicted first.

    ``min_tokens``: the shortest prefix worth an entry, and the least gain over the best cached one
    for a longer entry (so near-identical prompts do not churn the cache). ``history``: recent prompts
    whose shared starts are looked for. Not thread-safe (the decoder's thread only).
    """

    def __init__(self, max_entries: int = 4, max_bytes: int = 256 << 20, min_tokens: int = 64, history: int = 16):
        self.max_entries, self.max_bytes, self.min_tokens = max_entries, max_bytes, min_tokens
        self.entries: OrderedDict[tuple[int, ...], PrefixEntry] = OrderedDict()
        self.recent: deque[list[int]] = deque(maxlen=history)

    def lookup(self, ids: Sequence[int]) -> PrefixEntry | None:
        """The longest entry that ``ids`` starts with, leaving at least one id of its own (its logits)."""
        best = None
        for entry in self.entries.values():
            n = len(entry.ids)
            if n < len(ids) and (best is None or n > len(best.ids)) and tuple(ids[:n]) == entry.ids:
                best = entry
        if best is not None:
            self.entries.move_to_end(best.ids)
        return best

    def worth_caching(self, ids: Sequence[int], others: Sequence[Sequence[int]], cached: int) -> int:
        """The length of a new entry for ``ids`` (0: none): a start it shares with recent prompts or with
        ``others``, of ``min_tokens`` or more and as much longer than ``cached``. Of those, the one that
        saves the most over the prompts known (length x prompts sharing it), so a repeated prompt does
        not hide the preamble that many share."""
        shared = sorted((min(common_length(ids, o), len(ids) - 1) for o in [*self.recent, *others]), reverse=True)
        # shared[j] is shared by at least j + 1 prompts; ties go to the longer start
        scores = [((j + 1) * n, n) for j, n in enumerate(shared) if n >= self.min_tokens and n - cached >= self.min_tokens]
        return max(scores, default=(0, 0))[1]

    def remember(self, ids: Sequence[int]) -> None:
        self.recent.append(list(ids))

    def add(self, ids: Sequence[int], kv: KV) -> PrefixEntry:
        """Store an entry (evicting old ones to stay within bounds); an entry over ``max_bytes`` alone is
        returned but not kept."""
        entry = PrefixEntry(tuple(ids), kv)
        if entry.nbytes > self.max_bytes:
            return entry
        self.entries[entry.ids] = entry
        self.entries.move_to_end(entry.ids)
        while len(self.entries) > self.max_entries or self.nbytes > self.max_bytes:
            self.entries.popitem(last=False)
        return entry

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self.entries.values())
