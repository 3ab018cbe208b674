"""Decoding many prompts together with tools: one forward pass per step for all rows (issues 21 and 22).

Each row is a decoding coroutine: ``row.RowDecoder.steps``, the very loop that
``generate_with_tools`` drives at batch 1. It makes every decision (top-k or threshold, constrained
names, calls, stop strings, max tokens); this module only answers its ``Feed``/``Crop`` requests
with shared forward passes, so a row's text and calls are those it gets alone (float32, argmax-equal).
When a row reaches "->", its tool runs (in ``executor`` when one is given, so that a slow tool, such
as QA with its own reader, does not stall the batch: the row waits, the others go on decoding) and
the result is fed into that row's cache at a next step.

The KV cache: one buffer per layer, (rows, kv_heads, slots, head_dim). Slots are shared in time, so a
row's tokens sit at its own slots, marked by a 2D attention mask (rows, slots); position ids are per
row (its count of cached tokens). A row therefore attends to exactly its own keys at its own positions.
- A step feeds a chunk of L slots to every row: a row with fewer tokens pads on the left (masked); a
  row with more (a tool's result) feeds its first L and waits. L is chosen so that pads stay cheap.
- New rows are prefilled in a pass of their own, then merged: the cached tokens of every live row are
  gathered, right-aligned, into new buffers (pads, cropped slots and finished rows are dropped).
- A crop (a declined call's lookahead) masks the row's last slots and moves its position back.
- Shared prompt prefixes (``prefix_cache``): a prompt that starts with the ids of a cached prefix gets
  a copy of its KV in its first slots and prefills only the rest, at positions after it. A start that
  rows admitted together share is computed once, alone at batch 1, before their prefill; one that a
  new row shares only with recent prompts is copied out of that row's own prefill (no extra pass).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from toolformer_app.decoding.config import InferenceConfig
from toolformer_app.decoding.events import Crop, Done, Event, Feed, Result, RunTool, Steps
from toolformer_app.decoding.prefix_cache import KV, PrefixCache, PrefixEntry, common_length
from toolformer_app.decoding.row import RowDecoder, eos_token_ids, model_keeps_last
from toolformer_app.models.forward import contiguous_head

Sink = Callable[[Event], Any]  # receives a row's events; a true return value stops the row right there


class _SlotLayer(DynamicLayer):
    """Keys and values of every row in one buffer, new slots written in place (grown by doubling),
    instead of DynamicLayer's torch.cat of the whole cache at every step."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.length = keys.shape[2]
        self.k_buf, self.v_buf = self._alloc(keys, max(64, 2 * self.length)), self._alloc(values, max(64, 2 * self.length))
        self.k_buf[:, :, : self.length] = keys
        self.v_buf[:, :, : self.length] = values
        self.dtype, self.device = keys.dtype, keys.device
        self.is_initialized = True
        self._view()

    @staticmethod
    def _alloc(like: torch.Tensor, capacity: int) -> torch.Tensor:
        n, h, _, d = like.shape
        return like.new_zeros((n, h, capacity, d))

    def _view(self) -> None:
        self.keys, self.values = self.k_buf[:, :, : self.length], self.v_buf[:, :, : self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        end = self.length + key_states.shape[-2]
        if end > self.k_buf.shape[2]:
            k_buf, v_buf = self._alloc(self.k_buf, 2 * end), self._alloc(self.v_buf, 2 * end)
            k_buf[:, :, : self.length] = self.keys
            v_buf[:, :, : self.length] = self.values
            self.k_buf, self.v_buf = k_buf, v_buf
        self.k_buf[:, :, self.length : end] = key_states
        self.v_buf[:, :, self.length : end] = value_states
        self.length = end
        self._view()
        return self.keys, self.values


class _SlotCache(DynamicCache):
    def __init__(self, layers: list[_SlotLayer]):
        Cache.__init__(self, layers=layers)


@dataclass
class _Row:
    rid: int
    steps: Steps
    sink: Sink | None
    pending: list[int] = field(default_factory=list)  # ids of the current Feed not yet fed
    pos: int = 0  # tokens of this row in the cache: the position of its next token
    b: int = -1  # its index in the batch (-1: not admitted yet)
    finished: bool = False
    tool: Future | None = None  # a tool running in the executor: the row waits for it


@dataclass
class BatchStats:
    steps: int = 0
    forward_passes: int = 0
    slots: int = 0  # rows x chunk length, summed over the decode passes (pads included)
    tokens: int = 0  # tokens fed, pads excluded (prefill and cached prefixes' own pass included)
    prefix_entries: int = 0  # shared prefixes computed (one pass each)
    prefix_kept: int = 0  # prefixes kept from a row's own prefill (no pass of their own)
    prefix_hits: int = 0  # rows admitted with a cached prefix
    prefix_tokens: int = 0  # prompt tokens those rows did not prefill
    merges: int = 0
    prefills: int = 0  # prefill passes (each admits the rows that were waiting)
    max_rows: int = 0
    # wall seconds by phase (where a step's time goes: `bench chat` prints them)
    decode_s: float = 0.0  # decode passes, the rows' coroutines included
    prefill_s: float = 0.0  # prefill passes of joining rows (their shared prefixes' own passes included)
    merge_s: float = 0.0  # cache merges (joins, and dropping finished rows)


class BatchDecoder:
    """Rows join (``submit``), decode together one step at a time (``step``) and leave when they end
    or are cancelled (``cancel``): continuous batching, at most ``max_rows`` rows in a forward pass.

    ``step_tokens`` caps rows x chunk length in a decode pass; ``pad_cost`` is the fixed cost of a
    pass in tokens, used to pick the chunk length (a row with a long feed either makes every row
    pad, or feeds in several steps). ``executor``: where tools run (None: inline, in ``step``).
    ``prefix_cache``: reuse the KV of shared prompt prefixes (a ``PrefixCache`` sets its bounds). Off by
    default here (evaluation prompts share no long start); the decoding server turns it on (serving.Limits).
    Not thread-safe: one thread calls ``submit``/``step``/``cancel``.
    """

    def __init__(self, model: Any, tokenizer: Any, max_rows: int = 16, step_tokens: int = 512,
                 pad_cost: int = 32, executor: Executor | None = None, prefix_cache: bool | PrefixCache = False):
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        self.model, self.tok = model, tokenizer
        self.max_rows, self.step_tokens, self.pad_cost = max_rows, step_tokens, pad_cost
        self.executor = executor
        self.device = getattr(model, "device", None) or next(model.parameters()).device
        self.kwargs: dict[str, Any] = {"logits_to_keep": 1} if model_keeps_last(model) else {}
        contiguous_head(model)  # rows x 1 of a multi-token pass: a strided view the head is slow on
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.pad_id = self.eos_ids[0] if self.eos_ids else 0
        self.waiting: deque[_Row] = deque()
        self.rows: list[_Row] = []  # batch index -> row; finished rows stay until the next merge
        self.by_id: dict[int, _Row] = {}
        self.cache: _SlotCache | None = None
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=self.device)  # (rows, slots): 1 = the row's token
        self.stats = BatchStats()
        self.prefixes: PrefixCache | None = (prefix_cache if isinstance(prefix_cache, PrefixCache)
                                             else PrefixCache() if prefix_cache else None)
        self._next_id = 0

    # -- rows ------------------------------------------------------------------------------------
    def submit(self, prompt: str, tools: Mapping[str, Any] | None = None, config: InferenceConfig | None = None,
               sink: Sink | None = None) -> int:
        """Queue a generation with tools (as ``generate_with_tools``); it joins at a next step. Returns its id."""
        decoder = RowDecoder(self.tok, tools or {}, config or InferenceConfig(), self.eos_ids)
        return self.submit_steps(decoder.steps(prompt), sink)

    def submit_steps(self, steps: Steps, sink: Sink | None = None) -> int:
        """Queue any decoding coroutine (``Feed``/``Crop`` requests, events); returns its id."""
        row = _Row(self._next_id, steps, sink)
        self._next_id += 1
        self.by_id[row.rid] = row
        self.waiting.append(row)
        return row.rid

    def cancel(self, rid: int) -> bool:
        """Stop row ``rid`` (no more events); False when it had already ended."""
        row = self.by_id.get(rid)
        if row is None or row.finished:
            return False
        if row in self.waiting:
            self.waiting.remove(row)
        self._finish(row)
        return True

    @property
    def busy(self) -> bool:
        return bool(self.waiting) or any(not r.finished for r in self.rows)

    def live(self) -> int:
        return sum(not r.finished for r in self.rows)

    def _finish(self, row: _Row) -> None:
        row.finished = True
        row.pending, row.tool = [], None
        row.steps.close()
        self.by_id.pop(row.rid, None)

    def _advance(self, row: _Row, reply: Any, out: list[tuple[int, Event]]) -> None:
        """Run the row's coroutine up to its next Feed (handled at the next pass) or its end."""
        while True:
            try:
                item = row.steps.send(reply)
            except StopIteration:
                self._finish(row)
                return
            reply = None
            if isinstance(item, Feed):
                if not item.ids:  # nothing to feed: no logits can follow
                    raise ValueError("a Feed request needs at least one id")
                row.pending = list(item.ids)
                return
            if isinstance(item, Crop):
                reply = self._crop(row, item.n)
                continue
            if isinstance(item, RunTool):
                if self.executor is None:
                    reply = item.fn()
                    continue
                row.tool = self.executor.submit(item.fn)  # the row waits; see _resume
                return
            if row.sink is not None:
                if row.sink(item):
                    self._finish(row)
                    return
            else:
                out.append((row.rid, item))
            if isinstance(item, Done):
                self._finish(row)
                return

    def _crop(self, row: _Row, n: int) -> bool:
        if n <= 0:
            return True
        slots = self.mask[row.b].nonzero().flatten()[-n:]  # its last n tokens
        self.mask[row.b, slots] = 0
        row.pos -= n
        return True

    # -- one step --------------------------------------------------------------------------------
    def step(self) -> list[tuple[int, Event]]:
        """Admit waiting rows, run one decode pass (and a prefill pass for new rows); the events of rows
        without a sink, as (row id, event)."""
        out: list[tuple[int, Event]] = []
        stats = self.stats
        with torch.inference_mode():
            self._resume(out)
            new = self._admit(out)
            t0 = time.perf_counter()
            if any(r.pending for r in self.rows):
                self._decode(out)
            t1 = time.perf_counter()
            stats.decode_s += t1 - t0
            dead = len(self.rows) - self.live()
            if new:
                merged = stats.merge_s
                self._prefill(new, out)
                stats.prefill_s += time.perf_counter() - t1 - (stats.merge_s - merged)  # its merge: in merge_s
            elif dead and (dead * 2 >= len(self.rows) or not self.waiting and dead * 4 >= len(self.rows)):
                self._merge([], None, None)
            stats.steps += 1
        return out

    def run(self) -> Iterator[tuple[int, Event]]:
        """Step until every row has ended; yields (row id, event) for rows without a sink."""
        while self.busy:
            yield from self.step()

    def _resume(self, out: list[tuple[int, Event]]) -> None:
        """Rows whose tool has answered go on; when every live row waits for a tool, wait for one."""
        waiting = [r for r in self.rows if r.tool is not None and not r.finished]
        if not waiting:
            return
        if not any(r.pending for r in self.rows) and not self.waiting:
            wait([r.tool for r in waiting if r.tool is not None], timeout=1.0, return_when=FIRST_COMPLETED)
        for row in waiting:
            if row.tool is not None and row.tool.done():
                result, row.tool = row.tool.result(), None
                self._advance(row, result, out)

    def _admit(self, out: list[tuple[int, Event]]) -> list[_Row]:
        free = self.max_rows - self.live()
        if not self.waiting or free <= 0:
            return []
        # Each admission merges (copies) the cache: take rows in groups, unless few are waiting.
        group = min(len(self.waiting), max(1, self.max_rows // 4))
        if free < group and self.live():
            return []
        new = []
        while self.waiting and len(new) < free:
            row = self.waiting.popleft()
            self._advance(row, None, out)  # up to its first Feed: the prompt
            if not row.finished:
                new.append(row)
        return new

    def _chunk(self, lengths: list[int], rows: int) -> int:
        """The chunk length: the most fed tokens per unit of cost (pad_cost + rows x L)."""
        cap = max(1, self.step_tokens // max(rows, 1))
        options = sorted({min(n, cap) for n in lengths if n})
        return max(options, key=lambda c: (sum(min(n, c) for n in lengths) / (self.pad_cost + rows * c), c))

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any) -> Any:
        self.stats.forward_passes += 1
        # No pad and no cropped slot anywhere (one row, or rows of equal length): every row's slot i holds its
        # token at position i, which is the model's own causal mask, so none is built (as at batch 1).
        attention = None if bool(mask.all()) else mask
        return self.model(input_ids=ids, attention_mask=attention, position_ids=positions, cache=cache,
                          use_cache=True, **self.kwargs)

    def _decode(self, out: list[tuple[int, Event]]) -> None:
        n_rows = len(self.rows)
        length = self._chunk([len(r.pending) for r in self.rows], n_rows)
        ids = torch.full((n_rows, length), self.pad_id, dtype=torch.long)
        chunk_mask = torch.zeros((n_rows, length), dtype=torch.long)
        positions = torch.zeros((n_rows, length), dtype=torch.long)
        ready = []
        for b, row in enumerate(self.rows):
            n = min(len(row.pending), length)
            positions[b] = row.pos  # pads: any position (masked)
            if not n:
                continue
            ids[b, length - n :] = torch.tensor(row.pending[:n])
            chunk_mask[b, length - n :] = 1
            positions[b, length - n :] = torch.arange(row.pos, row.pos + n)
            row.pending = row.pending[n:]
            row.pos += n
            self.stats.tokens += n
            if not row.pending:
                ready.append(row)
        self.mask = torch.cat([self.mask, chunk_mask.to(self.device)], 1)
        res = self._forward(ids.to(self.device), self.mask, positions.to(self.device), self.cache)
        self.cache = res.cache
        self.stats.slots += n_rows * length
        logits = res.logits[:, -1].float()  # (rows, vocab): each row's next-token logits
        for row in ready:
            self._advance(row, logits[row.b], out)

    def _prefill(self, new: list[_Row], out: list[tuple[int, Event]]) -> None:
        """The prompts of new rows in one pass (left-padded), then one merge into the batch. A row with a
        cached prefix has its KV in the first ``head`` slots (right-aligned there) and feeds only the rest."""
        self.stats.prefills += 1
        entries, keep = self._prefixes(new)
        kept_ids = {i: list(new[i].pending) for i, _ in keep}
        skip = [len(e.ids) if e else 0 for e in entries]
        head = max(skip)
        width = max(len(r.pending) - s for r, s in zip(new, skip, strict=True))
        ids = torch.full((len(new), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(new), head + width), dtype=torch.long)
        positions = torch.zeros((len(new), width), dtype=torch.long)
        for i, (row, s) in enumerate(zip(new, skip, strict=True)):
            rest = row.pending[s:]
            n = len(rest)
            ids[i, width - n :] = torch.tensor(rest)
            mask[i, head - s : head] = 1
            mask[i, head + width - n :] = 1
            positions[i, width - n :] = torch.arange(s, s + n)
            row.pos, row.pending = s + n, []
            self.stats.tokens += n
            if s:
                self.stats.prefix_hits += 1
                self.stats.prefix_tokens += s
        mask = mask.to(self.device)
        cache = self._prefix_slots(entries, head) if head else None
        res = self._forward(ids.to(self.device), mask, positions.to(self.device), cache)
        kv = [(layer.keys, layer.values) for layer in res.cache.layers]
        for i, n in keep:  # a prompt start worth keeping that only this row uses now: its own slots, copied
            start = head + width - len(kept_ids[i])
            if self.prefixes is not None and all(k.shape[2] == head + width for k, _ in kv):
                self.prefixes.add(kept_ids[i][:n], [(k[i : i + 1, :, start : start + n].clone(),
                                                    v[i : i + 1, :, start : start + n].clone()) for k, v in kv])
                self.stats.prefix_kept += 1
        self._merge(new, kv, mask)
        logits = res.logits[:, -1].float()
        for i, row in enumerate(new):
            self._advance(row, logits[i], out)

    def _prefixes(self, new: list[_Row]) -> tuple[list[PrefixEntry | None], list[tuple[int, int]]]:
        """Each new row's cached prefix (its prompt is ``pending``), and the (row, length) of starts to keep
        from this prefill. A start worth caching that other new rows share is computed first, in a pass of its
        own, and used by all of them; one that only recent prompts share is cut from the row's own prefill
        afterwards, at no cost (a pass of its own would only add one)."""
        store = self.prefixes
        if store is None:
            return [None] * len(new), []
        prompts = [r.pending for r in new]
        found: list[PrefixEntry | None] = []
        keep: list[tuple[int, int]] = []
        for i, ids in enumerate(prompts):
            entry = store.lookup(ids)
            others = prompts[:i] + prompts[i + 1 :]
            n = store.worth_caching(ids, others, len(entry.ids) if entry else 0)
            if n and any(common_length(ids, o) >= n for o in others):
                kv = self._prefix_kv(ids[:n])
                if kv is None:  # this model's cache cannot be shared this way: prefill whole from now on
                    self.prefixes = None
                    return [None] * len(new), []
                entry = store.add(ids[:n], kv)
            elif n and entry is None:
                keep.append((i, n))
            found.append(entry)
        for ids in prompts:
            store.remember(ids)
        return found, keep

    def _prefix_kv(self, ids: list[int]) -> KV | None:
        """The KV of ``ids`` alone (batch 1, positions from 0); None when a layer does not keep every slot."""
        x = torch.tensor([ids], device=self.device)
        res = self._forward(x, torch.ones_like(x), torch.arange(len(ids), device=self.device)[None], None)
        self.stats.tokens += len(ids)
        self.stats.prefix_entries += 1
        kv = [(layer.keys, layer.values) for layer in res.cache.layers]
        return kv if all(k.shape[2] == len(ids) == v.shape[2] for k, v in kv) else None

    def _prefix_slots(self, entries: list[PrefixEntry | None], head: int) -> _SlotCache:
        """A cache of ``head`` slots per row: each row's prefix KV right-aligned, zeros (masked) elsewhere."""
        groups: dict[tuple[int, ...], tuple[PrefixEntry, list[int]]] = {}
        for i, e in enumerate(entries):
            if e is not None:
                groups.setdefault(e.ids, (e, []))[1].append(i)
        layers = []
        first = next(e for e in entries if e is not None)
        for layer, (k0, v0) in enumerate(first.kv):
            k = k0.new_zeros((len(entries), k0.shape[1], head, k0.shape[3]))
            v = v0.new_zeros((len(entries), v0.shape[1], head, v0.shape[3]))
            for e, rows in groups.values():
                index = torch.tensor(rows, device=k.device)
                k[index, :, head - len(e.ids) :] = e.kv[layer][0]  # broadcast over the rows sharing it
                v[index, :, head - len(e.ids) :] = e.kv[layer][1]
            layers.append(_SlotLayer(k, v))
        return _SlotCache(layers)

    def _merge(self, new: Sequence[_Row], new_kv: list[tuple[torch.Tensor, torch.Tensor]] | None,
               new_mask: torch.Tensor | None) -> None:
        """Fresh buffers holding every live row's tokens right-aligned (rows, heads, width, dim), then the
        new rows' prompts; finished rows, pads and cropped slots are dropped."""
        t0 = time.perf_counter()
        keep = [b for b, r in enumerate(self.rows) if not r.finished]
        parts: list[tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]] = []
        if keep and self.cache is not None:
            index = torch.tensor(keep, device=self.device)
            parts.append(([(layer.keys.index_select(0, index), layer.values.index_select(0, index))
                           for layer in self.cache.layers], self.mask.index_select(0, index)))
        if new_kv is not None and new_mask is not None:
            parts.append((new_kv, new_mask))
        self.rows = [self.rows[b] for b in keep] + list(new)
        for b, row in enumerate(self.rows):
            row.b = b
        self.stats.merges += 1
        if not parts:
            self.cache, self.mask = None, self.mask.new_zeros((0, 0))
            self.stats.merge_s += time.perf_counter() - t0
            return
        width = max(int(m.sum(1).max()) for _, m in parts)
        layers: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        masks = []
        for kv, mask in parts:
            index, aligned = _right_aligned(mask, width)
            masks.append(aligned)
            layers.append([(_gather_slots(k, index), _gather_slots(v, index)) for k, v in kv])
        self.mask = torch.cat(masks)
        self.cache = _SlotCache([_SlotLayer(torch.cat([p[i][0] for p in layers]), torch.cat([p[i][1] for p in layers]))
                                 for i in range(len(layers[0]))])
        self.stats.max_rows = max(self.stats.max_rows, len(self.rows))
        self.stats.merge_s += time.perf_counter() - t0


def _right_aligned(mask: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row, the slots holding its tokens, right-aligned in ``width`` (index (rows, width), its
    left part pointing at slot 0, masked) and the new mask."""
    rows = mask.shape[0]
    index = torch.zeros((rows, width), dtype=torch.long, device=mask.device)
    aligned = torch.zeros((rows, width), dtype=mask.dtype, device=mask.device)
    for r in range(rows):
        slots = mask[r].nonzero().flatten()
        if len(slots):
            index[r, width - len(slots) :] = slots
            aligned[r, width - len(slots) :] = 1
    return index, aligned


def _gather_slots(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (rows, heads, slots, dim) at index (rows, width) -> (rows, heads, width, dim)."""
    n, h, _, d = x.shape
    return x.gather(2, index[:, None, :, None].expand(n, h, index.shape[1], d))


def generate_batch(model: Any, tokenizer: Any, prompts: Sequence[str], tools: Mapping[str, Any] | None = None,
                   configs: InferenceConfig | Sequence[InferenceConfig] | None = None,
                   max_rows: int = 16) -> list[Result]:
    """``run_with_tools`` for many prompts, decoded together; one Result per prompt, in order.

    ``configs``: one InferenceConfig for all, or one per prompt (each row keeps its own tools, k,
    threshold, stop strings and max tokens).
    """
    if configs is None or isinstance(configs, InferenceConfig):
        configs = [configs or InferenceConfig()] * len(prompts)
    if len(configs) != len(prompts):
        raise ValueError("one config per prompt")
    decoder = BatchDecoder(model, tokenizer, max_rows=max_rows)
    events: dict[int, list[Event]] = {}
    order = []
    for prompt, cfg in zip(prompts, configs, strict=True):
        rid = decoder.submit(prompt, tools, cfg)
        events[rid] = []
        order.append(rid)
    for rid, event in decoder.run():
        events[rid].append(event)
    results = []
    for rid in order:
        done = events[rid][-1]
        assert isinstance(done, Done)
        results.append(Result(done.text, done.calls, events[rid], done.stop_reason, done.stats, done.token_ids))
    return results
