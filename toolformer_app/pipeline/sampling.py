"""Step 2 of the paper: sample m calls at each kept position.

    m samples per position i from P(x) + x_<i + " [", stopped when the decoded text closes the call
    (")]" or ") ->": on text, since tokenizers merge ")]"); each sample parsed into (tool, input),
    checked and deduplicated (``candidates_from_samples``)

Speed: sampling starts from the position pass's cache cut at position i (no re-encoding), batches the
positions of all texts, drops finished rows and writes keys into a buffer allocated once. Each sample
draws from its own hashed uniforms (``sample_uniform``), so samples do not depend on batching.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections import Counter
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, DynamicLayer

from toolformer_app.calls import call_closed, parse_head
from toolformer_app.pipeline import shared_attention
from toolformer_app.pipeline.batching import TokenCounter
from toolformer_app.pipeline.config import Candidate, PipelineConfig
from toolformer_app.pipeline.positions import EncodedText, ScoredPositions
from toolformer_app.tools.base import Tool


def parse_sampled_call(decoded: str) -> tuple[str, str] | None:
    """(tool, input) from the text sampled after " [", or None if it is not a well-formed call."""
    head = parse_head("[" + decoded)
    return None if head is None else head[:2]


def sample_seed(seed: int, *parts: object) -> int:
    """A sample's key: a hash of the run's seed and what names the sample (text, tool, position, index)."""
    h = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(h[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def sample_uniform(key: int, step: int) -> float:
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
    uniforms (``sample_uniform``), so samples do not depend on batching or on which rows finished.
    """
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


def forced_tokens(tok, cfg: PipelineConfig, tool_name: str) -> list[int]:
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
        text_lens = [length - self.scored.prefix_len for length in self.lengths]

        k0 = self.scored.kv[0][0][0]
        shape = (n, k0.shape[0], capacity, k0.shape[2])
        self.state = shared_attention.SharedContext(
            prefix=self.scored.prefix_kv,
            ctx=self.scored.kv,
            row_text=[row for row, _ in self.pairs],
            ctx_len=torch.tensor(text_lens),
            gen_k=[k.new_empty(shape) for k, _ in self.scored.kv[0]],
            gen_v=[v.new_empty(shape) for _, v in self.scored.kv[0]],
        )

    def forward(self, model, ids: torch.Tensor, positions: torch.Tensor):
        with shared_attention.sharing(model, self.state):
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
    forced = forced_tokens(tok, cfg, tool_name)
    rows.start(model, len(pairs), 1 + len(forced) + cfg.max_call_tokens)
    pos_ids = torch.tensor(rows.lengths, device=device)[:, None]
    keys = [sample_seed(cfg.seed, scored.texts[row].text_id, tool_name, p, j) for row, p in pairs for j in range(m)]
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
        drawn = draw_tokens(probs, [sample_uniform(keys[r], n_step) for r in samples],
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
                if call_closed(tok.decode(generated[child[0]][-8:])):  # the same tokens for the whole child
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


_CLAUSE_END = re.compile(r"[.!?;:]\s+|\n")  # not the point inside "3.5"
MAX_CLAUSE_WORDS = 24


def clause_before(text: str, char_pos: int) -> str:
    """The clause written before ``char_pos``: from the last sentence or clause end on, its last words."""
    before = text[:char_pos]
    ends = [m.end() for m in _CLAUSE_END.finditer(before)]
    return " ".join(before[ends[-1] if ends else 0 :].split()[-MAX_CLAUSE_WORDS:])


def clause_candidate(text: EncodedText, tool: Tool, position: int, p_i: float, taken: list[Candidate],
                     counts: Counter) -> list[Candidate]:
    """``PipelineConfig.clause_calls``: the call at ``position`` whose input is the clause so far (at least 3
    words, not already sampled there), or nothing. Counted as "clause_calls" in the tool's stats."""
    char_pos = text.char_starts[position]
    clause = clause_before(text.text, char_pos)
    if len(clause.split()) < 3 or any(c.token_pos == position and c.input == clause for c in taken):
        return []
    keeps = getattr(tool, "keeps_call", None)
    if keeps is not None and not keeps(text.text[:char_pos], text.text[char_pos:], clause):
        return []
    counts["clause_calls"] += 1
    return [Candidate(text.text_id, tool.name, position, char_pos, p_i, clause)]
