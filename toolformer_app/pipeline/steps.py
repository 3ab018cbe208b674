"""The model-bound steps of the pipeline, each in the paper's words.

    position_scores  -> p_i = p_M(" [" | P(x), x_<i) for every i, one teacher-forced pass
    sample_calls     -> m calls per kept position, from P(x) + x_<i + " [", stopped at ")]" / ") ->"
    execute_calls    -> r = tool(input), or no result with its reason
    score_candidates -> L_i(eps), L_i(e(c, eps)), L_i(e(c, r)) with e(.) as a prefix

Speed: the tool prompt's prefix is encoded once (KV cache reused for every text); sampling starts
from the scoring pass's cache cut at position i (no re-encoding), batches the positions of all texts,
drops finished rows and writes keys into a preallocated buffer; loss sequences stop at x_{i+4},
are sorted by length and batched, and only the scored positions go through the LM head.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections import Counter
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, DynamicLayer

from toolformer_app.calls import _CLOSE, API_END, linearize, parse_head
from toolformer_app.pipeline.config import Candidate, PipelineConfig
from toolformer_app.pipeline.scoring import SPAN, loss_reduction, span_logprobs, weighted_loss
from toolformer_app.tools.base import Tool, ToolResult


@dataclass
class TokenCounter:
    """Tokens sent through the model, and seconds spent, per stage (and per tool and stage)."""

    positions: int = 0
    sampling: int = 0
    scoring: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    tool_seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    def timed(self, stage: str, tool: str | None = None):
        return _Timer(self, stage, tool)

    def add(self, stage: str, seconds: float, tool: str | None = None) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
        if tool is not None:
            per = self.tool_seconds.setdefault(tool, {})
            per[stage] = per.get(stage, 0.0) + seconds

    @property
    def total(self) -> int:
        return self.positions + self.sampling + self.scoring


class _Timer:
    def __init__(self, counter: TokenCounter, stage: str, tool: str | None):
        self.counter, self.stage, self.tool = counter, stage, tool

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.counter.add(self.stage, time.perf_counter() - self.start, self.tool)


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


MAX_PADDING = 0.1  # rows share a pass only if padding stays under this share of its tokens
POSITION_PASS_TOKENS = 4096  # rows x width per position pass (the prefix read in place)
POSITION_PASS_COPY_TOKENS = 8192  # rows x (prefix + width) when each row holds a copy of the prefix (~0.4 GB fp32)
SCORING_PASS_TOKENS = 2048  # rows x width per loss pass (measured fastest here between 1k and 4k)


def length_groups(lengths: list[int], max_padding: float = MAX_PADDING, max_rows: int = 512,
                  max_tokens: int | None = None, overhead: int = 0) -> list[list[int]]:
    """Indices of ``lengths`` in groups of similar length (ascending): each padded by at most
    ``max_padding`` of its tokens, at most ``max_rows`` long, and with rows x (overhead + longest)
    at most ``max_tokens`` (a single row may exceed it).

    A padded token costs as much as a real one, and a batch of rows of one length is about as fast
    per token as a wide batch: so a batch is split where padding would start to cost.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    total = 0
    for i in order:
        n = len(groups[-1]) + 1 if groups else 0
        fits = (groups and n <= max_rows and n * lengths[i] <= (1 + max_padding) * (total + lengths[i])
                and (max_tokens is None or n * (overhead + lengths[i]) <= max_tokens))
        if fits:
            groups[-1].append(i)
            total += lengths[i]
        else:
            groups.append([i])
            total = lengths[i]
    return groups


@torch.inference_mode()
def position_scores(model, tok, tool: Tool, texts: list[EncodedText], api_token_id: int,
                    counter: TokenCounter | None = None) -> ScoredPositions:
    """p_i = p_M(" [" | P(x), x_<i) for every position of every text.

    The sequence is prefix (cached) + " " + x + "\nOutput:" + " " + x: teacher forcing, so p_i
    is measured on the true x_<i, never on the model's own copy. Texts of similar length share a
    pass (``length_groups``); only the copy's positions go through the LM head.
    """
    from toolformer_app.pipeline import shared_attention
    from toolformer_app.pipeline.scoring import HEAD_ROWS, split_head

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


def parse_sampled_call(decoded: str) -> tuple[str, str] | None:
    """(tool, input) from the text sampled after " [", or None if it is not a well-formed call."""
    head = parse_head("[" + decoded)
    return None if head is None else head[:2]


def _closed(decoded: str) -> bool:
    return API_END in decoded or _CLOSE.search(decoded) is not None


def _seed_for(seed: int, *parts: object) -> int:
    h = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(h[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def _uniform(key: int, step: int) -> float:
    """A uniform draw in [0, 1) for a sample's ``step``-th token: a hash of its key, so a sample's
    draws depend on nothing else (not the batch, not which rows have finished)."""
    h = hashlib.blake2b(struct.pack("<QQ", key, step), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64


def draw_tokens(probs: torch.Tensor, uniforms: list[float], rows: list[int] | None = None) -> list[int]:
    """One token per uniform by inverting a CDF: of row ``rows[s]`` of ``probs`` (rows, vocab) for
    uniform s, or of row s when ``rows`` is None.

    One batched cumsum and search per step, instead of a multinomial per row; a token of
    probability 0 is never drawn (the search takes the first CDF value strictly above u).
    """
    cdf = probs.double().cumsum(-1)
    if rows is not None:
        cdf = cdf[torch.tensor(rows, dtype=torch.long)]
    u = torch.tensor(uniforms, dtype=torch.float64)[:, None] * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[-1] - 1)[:, 0].tolist()


@dataclass
class Samples:
    """The m decoded samples at one position: text and token ids of each, whether it closed."""

    decoded: list[str] = field(default_factory=list)
    token_ids: list[list[int]] = field(default_factory=list)
    closed: list[bool] = field(default_factory=list)


def fixed_call_samples(tool_name: str, n_positions: int) -> list[Samples]:
    """The one possible call at each position for a tool that takes no input, its name given (prefill).

    With the name fed and the input dropped, all m samples would decode to "Name()": sampling them
    costs m short generations per position and yields m - 1 duplicates.
    """
    return [Samples([f"{tool_name}()]"], [[]], [True]) for _ in range(n_positions)]


class _GrowingLayer(DynamicLayer):
    """A DynamicLayer that writes new keys into a buffer allocated once, instead of torch.cat.

    DynamicLayer copies the whole cache (rows x context) at every decoded token; with 48 rows of
    a ~600-token few-shot context that copy costs more than the forward pass of a 135M model.
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int):
        super().__init__()
        self.k_buf, self.v_buf, self.length = keys, values, length  # (rows, heads, capacity, head_dim)
        self.dtype, self.device = keys.dtype, keys.device
        self.is_initialized = True
        self._view()

    def _view(self) -> None:
        self.keys, self.values = self.k_buf[:, :, : self.length], self.v_buf[:, :, : self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self.length + key_states.shape[-2]
        self.k_buf[:, :, self.length : end] = key_states
        self.v_buf[:, :, self.length : end] = value_states
        self.length = end
        self._view()
        return self.keys, self.values

    def keep_rows(self, rows: list[int]) -> None:
        """Keep ``rows`` (ascending), moved down in place: no second buffer is allocated. Rows that
        repeat (a row splits in two) need new buffers."""
        if any(b <= a for a, b in zip(rows, rows[1:], strict=False)) or len(rows) > self.k_buf.shape[0]:
            index = torch.tensor(rows, dtype=torch.long, device=self.k_buf.device)
            self.k_buf, self.v_buf = self.k_buf.index_select(0, index), self.v_buf.index_select(0, index)
            self._view()
            return
        for new, old in enumerate(rows):
            if new != old:
                self.k_buf[new].copy_(self.k_buf[old])
                self.v_buf[new].copy_(self.v_buf[old])
        self.k_buf, self.v_buf = self.k_buf[: len(rows)], self.v_buf[: len(rows)]
        self._view()


class _GrowingCache(DynamicCache):
    def __init__(self, buffers: list[tuple[torch.Tensor, torch.Tensor]], length: int):
        Cache.__init__(self, layers=[_GrowingLayer(k, v, length) for k, v in buffers])

    def keep_rows(self, rows: list[int]) -> None:
        for layer in self.layers:
            layer.keep_rows(rows)


def _kv_bytes_per_token(scored: ScoredPositions) -> int:
    """Bytes of keys and values one token takes over all layers."""
    return sum(2 * k.shape[0] * k.shape[2] * k.element_size() for k, _ in scored.kv[0])


def rows_per_batch(scored: ScoredPositions, cfg: PipelineConfig, m: int, shared: bool) -> int:
    """Sampling rows that fit in ``cfg.sample_memory_mb``, a multiple of m (at least m).

    Shared context: a row stores only its call's keys (1 + "Tool(" + max_call_tokens positions) and
    a row of attention scores over the context. Padded copies: a row stores the whole context.
    """
    per_token = _kv_bytes_per_token(scored)
    width = max(scored.body_lens) + max(len(t.x_ids) for t in scored.texts)
    call = 4 + cfg.max_call_tokens
    if shared:
        heads = scored.kv[0][0][0].shape[0] * 4  # query heads (kv heads x groups, ~4); float32 scores, twice
        per_row = per_token * call + heads * (scored.prefix_len + width + call) * 4 * 2
    else:
        per_row = per_token * (scored.prefix_len + width + call)
    rows = int(cfg.sample_memory_mb * 2**20 // max(per_row, 1))
    return max(m, rows // m * m)


@torch.inference_mode()
def sample_calls(model, tok, scored: ScoredPositions, row: int, positions: list[int], m: int, cfg: PipelineConfig,
                 api_token_id: int, tool_name: str, counter: TokenCounter | None = None) -> list[Samples]:
    """Draw m calls at each of ``positions`` of text ``row`` (see ``sample_calls_batch``)."""
    return sample_calls_batch(model, tok, scored, [(row, positions)], m, cfg, api_token_id, tool_name, counter)[0]


@torch.inference_mode()
def sample_calls_batch(model, tok, scored: ScoredPositions, requests: list[tuple[int, list[int]]], m: int,
                       cfg: PipelineConfig, api_token_id: int, tool_name: str,
                       counter: TokenCounter | None = None) -> list[list[Samples]]:
    """Draw m calls at each position of each ``(row, positions)`` request; every (text, position,
    sample) is one batch row, whatever text it comes from.

    Each row starts from the position pass's keys and values cut at P(x) + x_<i (no re-encoding).
    On a transformers decoder the rows of a text share that context (``shared_attention``: a row
    stores only its call); otherwise each row gets a left-padded copy in a preallocated cache, the
    pads masked out. Either way, as many rows as ``cfg.sample_memory_mb`` allows decode together.
    A row stops when its decoded text closes the call (")]" or ") ->", detected on text because
    tokenizers merge ")]") and leaves the batch. Each sample draws its tokens from its own hashed
    uniforms (``_uniform``), so samples do not depend on batching or on which rows finished.
    """
    from toolformer_app.pipeline import shared_attention

    pairs = [(row, p) for row, positions in requests for p in positions]
    shared = shared_attention.supported(model)
    per_chunk = rows_per_batch(scored, cfg, m, shared) // m
    drawn: list[Samples] = []
    for s in range(0, len(pairs), per_chunk):
        chunk = pairs[s : s + per_chunk]
        rows = _SharedRows(scored, chunk) if shared else _PaddedRows(scored, chunk)
        drawn += _decode(model, tok, scored, chunk, m, cfg, api_token_id, tool_name, rows, counter)
    out, at = [], 0
    for _, positions in requests:
        out.append(drawn[at : at + len(positions)])
        at += len(positions)
    return out


def _forced_tokens(tok, cfg: PipelineConfig, tool_name: str) -> list[int]:
    # The model writes the tool name itself (the paper), unless cfg.prefill_tool_name feeds
    # "Tool(" after " [" (an option for small models, which often write no name at all).
    return tok(tool_name + "(", add_special_tokens=False)["input_ids"] if cfg.prefill_tool_name else []


class _SharedRows:
    """Rows reading their text's context in place; only the call's keys are stored per row.
    Decoding starts with one row per (text, position) pair."""

    def __init__(self, scored: ScoredPositions, pairs: list[tuple[int, int]]):
        self.lengths = [scored.prefix_len + scored.body_lens[row] + p for row, p in pairs]
        self.scored, self.pairs = scored, pairs

    def start(self, model, n: int, capacity: int) -> None:
        from toolformer_app.pipeline.shared_attention import SharedContext

        text_lens = [length - self.scored.prefix_len for length in self.lengths]

        k0 = self.scored.kv[0][0][0]
        shape = (n, k0.shape[0], capacity, k0.shape[2])
        self.state = SharedContext(
            prefix=self.scored.prefix_kv,
            ctx=self.scored.kv,
            row_text=[row for row, _ in self.pairs],
            ctx_len=torch.tensor(text_lens),
            gen_k=[k.new_empty(shape) for k, _ in self.scored.kv[0]],
            gen_v=[v.new_empty(shape) for _, v in self.scored.kv[0]],
        )

    def forward(self, model, ids: torch.Tensor, positions: torch.Tensor):
        from toolformer_app.pipeline.shared_attention import sharing

        with sharing(model, self.state):
            out = model(ids, position_ids=positions, use_cache=False, logits_to_keep=1)
        self.state.written += ids.shape[1]
        return out.logits[:, -1]

    def keep_rows(self, rows: list[int]) -> None:
        self.state.keep_rows(rows)  # rows may repeat (a row splits), ascending


class _PaddedRows:
    """Rows holding left-padded copies of their context in a cache allocated once (any model).
    Decoding starts with one row per (text, position) pair."""

    def __init__(self, scored: ScoredPositions, pairs: list[tuple[int, int]]):
        self.lengths = [scored.prefix_len + scored.body_lens[row] + p for row, p in pairs]
        self.scored, self.pairs = scored, pairs

    def start(self, model, n: int, capacity: int) -> None:
        device = next(model.parameters()).device
        width = max(self.lengths)
        buffers = []
        for layer, (k, v) in enumerate(self.scored.kv[0]):
            kk = k.new_zeros((n, k.shape[0], width + capacity, k.shape[2]))
            vv = v.new_zeros((n, v.shape[0], width + capacity, v.shape[2]))
            k_pre, v_pre = self.scored.prefix_kv[layer]
            prefix = k_pre.shape[1]
            for g, ((row, _), length) in enumerate(zip(self.pairs, self.lengths, strict=True)):
                k_row, v_row = self.scored.kv[row][layer]
                kk[g, :, width - length : width - length + prefix] = k_pre
                vv[g, :, width - length : width - length + prefix] = v_pre
                kk[g, :, width - length + prefix : width] = k_row[:, : length - prefix]
                vv[g, :, width - length + prefix : width] = v_row[:, : length - prefix]
            buffers.append((kk, vv))
        self.cache = _GrowingCache(buffers, width)
        mask = torch.zeros((n, width), dtype=torch.long)
        for g, length in enumerate(self.lengths):
            mask[g, width - length :] = 1
        self.mask = mask.to(device)

    def forward(self, model, ids: torch.Tensor, positions: torch.Tensor):
        self.mask = torch.cat([self.mask, self.mask.new_ones((ids.shape[0], ids.shape[1]))], 1)
        out = model(ids, cache=self.cache, attention_mask=self.mask, position_ids=positions, use_cache=True,
                    logits_to_keep=1)
        return out.logits[:, -1]

    def keep_rows(self, rows: list[int]) -> None:
        self.cache.keep_rows(rows)
        self.mask = self.mask[torch.tensor(rows, device=self.mask.device)]


def _decode(model, tok, scored: ScoredPositions, pairs: list[tuple[int, int]], m: int, cfg: PipelineConfig,
            api_token_id: int, tool_name: str, rows, counter: TokenCounter | None) -> list[Samples]:
    """Decode m samples per pair. A batch row stands for all the samples of a pair that have drawn
    the same tokens so far (their next-token distribution is the same): it starts as one row per
    pair and splits when its samples draw different tokens, so shared prefixes are computed once.
    Each sample still draws from its own uniform, so the samples are those of m separate rows."""
    device = next(model.parameters()).device
    n = len(pairs) * m
    forced = _forced_tokens(tok, cfg, tool_name)
    rows.start(model, len(pairs), 1 + len(forced) + cfg.max_call_tokens)
    pos_ids = torch.tensor(rows.lengths, device=device)[:, None]
    keys = [_seed_for(cfg.seed, scored.texts[row].text_id, tool_name, p, j) for row, p in pairs for j in range(m)]
    nxt = torch.tensor([[api_token_id, *forced]] * len(pairs), dtype=torch.long, device=device)
    generated: list[list[int]] = [list(forced) for _ in range(n)]
    closed = [False] * n
    members = [list(range(g * m, (g + 1) * m)) for g in range(len(pairs))]  # samples of each batch row
    eos = tok.eos_token_id
    fed = 0
    for n_step in range(cfg.max_call_tokens):
        step = nxt.shape[1]
        logits = rows.forward(model, nxt, pos_ids + fed + torch.arange(step, device=device)[None, :])
        fed += step
        if counter:
            counter.sampling += len(members) * step
        probs = torch.softmax(logits.float() / cfg.temperature, -1).cpu()
        samples = [r for group in members for r in group]
        drawn = draw_tokens(probs, [_uniform(keys[r], n_step) for r in samples],
                            rows=[b for b, group in enumerate(members) for _ in group])
        at = 0
        parents, children, tokens = [], [], []
        for b, group in enumerate(members):
            by_token: dict[int, list[int]] = {}
            for r in group:
                by_token.setdefault(drawn[at], []).append(r)
                at += 1
            for token, child in by_token.items():
                if token == eos:
                    continue
                for r in child:
                    generated[r].append(token)
                if _closed(tok.decode(generated[child[0]][-8:])):  # the same tokens for the whole child
                    for r in child:
                        closed[r] = True
                    continue
                parents.append(b)
                children.append(child)
                tokens.append(token)
        if not children:
            break
        if parents != list(range(len(members))):  # finished rows leave, split rows are copied
            rows.keep_rows(parents)
            pos_ids = pos_ids[torch.tensor(parents, device=device)]
        members = children
        nxt = torch.tensor(tokens, dtype=torch.long, device=device)[:, None]
    return [Samples([tok.decode(generated[g * m + j]) for j in range(m)],
                    [generated[g * m + j] for j in range(m)], closed[g * m : (g + 1) * m])
            for g in range(len(pairs))]


def candidates_from_samples(samples: Samples, text: EncodedText, tool: Tool, position: int, p_i: float,
                            counts: Counter) -> list[Candidate]:
    """Parse, check the tool name and deduplicate the samples of one position (counting each drop)."""
    seen: set[str] = set()
    out = []
    for decoded, closed in zip(samples.decoded, samples.closed, strict=True):
        counts["samples_drawn"] += 1
        if not closed:
            counts["unclosed"] += 1
            continue
        parsed = parse_sampled_call(decoded)
        if parsed is None:
            counts["malformed"] += 1
            continue
        name, inp = parsed
        if name != tool.name:
            counts["wrong_tool"] += 1
            continue
        if not tool.takes_input:  # whatever a small model writes between the parentheses, the call is Name()
            inp = ""
        if inp in seen:
            counts["duplicates"] += 1
            continue
        seen.add(inp)
        char_pos = text.char_starts[position]
        keeps = getattr(tool, "keeps_call", None)
        if keeps is not None and not keeps(text.text[:char_pos], text.text[char_pos:], inp):
            counts["dropped_by_heuristic"] += 1
            continue
        out.append(Candidate(text.text_id, tool.name, position, char_pos, p_i, inp))
    return out


def execute_calls(candidates: list[Candidate], tool: Tool, counts: Counter, reasons: Counter) -> None:
    """r = tool(input) for each candidate (``run_calls``), counted (``count_results``)."""
    run_calls(candidates, tool)
    count_results(candidates, counts, reasons)


def run_calls(candidates: list[Candidate], tool: Tool) -> None:
    """Fill each candidate's result, or no result and the reason.

    Each distinct input runs once, all of them in one ``run_many`` (QA and MT batch their model).
    """
    inputs = list(dict.fromkeys(c.input for c in candidates))
    try:
        results = tool.run_many(inputs)
        if len(results) != len(inputs):
            raise ValueError(f"{tool.name}.run_many gave {len(results)} results for {len(inputs)} inputs")
    except Exception:  # a tool bug must not stop a long run: each input alone, each with its reason
        results = []
        for i in inputs:
            try:
                results.append(tool.run(i))
            except Exception as exc:
                results.append(ToolResult(None, f"{type(exc).__name__}: {exc}"))
    cache = {i: (r.output, r.reason) for i, r in zip(inputs, results, strict=True)}
    for c in candidates:
        c.result, c.reason = cache[c.input]
        if c.result is not None and c.result.strip() == "":
            c.result = None


def count_results(candidates: list[Candidate], counts: Counter, reasons: Counter) -> None:
    """Count executed calls and calls without a result (by reason); the latter are not scored."""
    for c in candidates:
        if c.result is None:
            c.reason = c.reason or "no result"
            counts["no_result"] += 1
            reasons[c.reason.split(":")[0][:60]] += 1
        else:
            counts["executed"] += 1


@torch.inference_mode()
def plain_logprobs(model, texts: list[EncodedText], batch_size: int, counter: TokenCounter | None = None,
                   until: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
    """log p(x_j | x_<j) for j = 1..n-1 of every text (index j-1), for L_i(eps): one pass per text.

    ``until`` (optional): per text id, the first j not needed; the pass stops there (the filter
    needs x up to the last scored position + 4, not the whole text).
    """
    out: dict[str, torch.Tensor] = {}
    ends = {t.text_id: min(len(t.x_ids), (until or {}).get(t.text_id, len(t.x_ids))) for t in texts}
    usable = [t for t in texts if ends[t.text_id] >= 2]
    for group in length_groups([ends[t.text_id] for t in usable], max_rows=batch_size,
                               max_tokens=SCORING_PASS_TOKENS):
        batch = [usable[g] for g in group]
        lps = span_logprobs(model, [t.x_ids[: ends[t.text_id]] for t in batch], [(1, ends[t.text_id]) for t in batch])
        if counter:
            counter.scoring += sum(ends[t.text_id] for t in batch)
        for t, lp in zip(batch, lps, strict=True):
            out[t.text_id] = lp
    return out


@torch.inference_mode()
def placebo_results(candidates: list[Candidate]) -> dict[int, str]:
    """For each candidate with a result, the result of an unrelated call: the same tool, another text,
    another result (the next such candidate in order, wrapping around). Deterministic."""
    out: dict[int, str] = {}
    with_result = [(ci, c) for ci, c in enumerate(candidates) if c.result is not None]
    for n, (ci, c) in enumerate(with_result):
        for step in range(1, len(with_result)):
            _, other = with_result[(n + step) % len(with_result)]
            if other.tool == c.tool and other.text_id != c.text_id and other.result != c.result:
                out[ci] = other.result  # type: ignore[assignment]
                break
    return out


def score_candidates(model, tok, candidates: list[Candidate], texts: dict[str, EncodedText],
                     plain: dict[str, torch.Tensor], batch_size: int,
                     counter: TokenCounter | None = None, placebo: bool = False) -> None:
    """Fill L_i(eps), L_i(e(c, eps)), L_i(e(c, r)) and L- - L+ for every candidate with a result.

    Each sequence is e(.) + x_1..x_{i+4} (the call is a prefix, footnote 3); sequences are batched
    by length (``length_groups``), and only x_i..x_{i+4} are scored.

    ``placebo``: L- also takes L_i(e(c, r')) with r' the result of an unrelated call of the same tool
    (``placebo_results``), so a call is kept only if its own result beats any result's prefix effect.
    """
    placebos = placebo_results(candidates) if placebo else {}
    jobs = []  # (length, candidate index, "empty" | "result" | "placebo", ids, span)
    for ci, c in enumerate(candidates):
        if c.result is None:
            continue
        x = texts[c.text_id].x_ids
        end = min(c.token_pos + SPAN, len(x))
        kinds = [("empty", ""), ("result", c.result)] + ([("placebo", placebos[ci])] if ci in placebos else [])
        for kind, result in kinds:
            z = tok(linearize(c.tool, c.input, result), add_special_tokens=False)["input_ids"]
            ids = z + x[:end]
            jobs.append((len(ids), ci, kind, ids, (len(z) + c.token_pos, len(ids))))
    results: dict[tuple[int, str], torch.Tensor] = {}
    for group in length_groups([j[0] for j in jobs], max_rows=batch_size, max_tokens=SCORING_PASS_TOKENS):
        batch = [jobs[g] for g in group]
        lps = span_logprobs(model, [j[3] for j in batch], [j[4] for j in batch])
        if counter:
            counter.scoring += sum(j[0] for j in batch)
        for j, lp in zip(batch, lps, strict=True):
            results[(j[1], j[2])] = lp
    for ci, c in enumerate(candidates):
        if c.result is None:
            continue
        x = texts[c.text_id].x_ids
        end = min(c.token_pos + SPAN, len(x))
        lp_plain = plain[c.text_id][c.token_pos - 1 : end - 1]
        lp_empty, lp_result = results[(ci, "empty")], results[(ci, "result")]
        c.loss_plain = float(weighted_loss(lp_plain))
        c.loss_empty = float(weighted_loss(lp_empty))
        c.loss_result = float(weighted_loss(lp_result))
        if ci in placebos:
            c.placebo_result = placebos[ci]
            c.loss_placebo = float(weighted_loss(results[(ci, "placebo")]))
        c.loss_reduction = loss_reduction(c.loss_plain, c.loss_empty, c.loss_result,
                                          c.loss_placebo if ci in placebos else None)
        c.next_tokens = [tok.decode([t]) for t in x[c.token_pos : end]]
        c.logprobs_plain = [round(float(v), 5) for v in lp_plain]
        c.logprobs_empty = [round(float(v), 5) for v in lp_empty]
        c.logprobs_result = [round(float(v), 5) for v in lp_result]
