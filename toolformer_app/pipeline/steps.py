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
import time
from collections import Counter
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, DynamicLayer

from toolformer_app.calls import _CLOSE, API_END, linearize, parse_head
from toolformer_app.pipeline.config import Candidate, PipelineConfig
from toolformer_app.pipeline.scoring import SPAN, span_logprobs, weighted_loss
from toolformer_app.tools.base import Tool


@dataclass
class TokenCounter:
    """Tokens sent through the model, and seconds spent, per stage (the benchmark's figures)."""

    positions: int = 0
    sampling: int = 0
    scoring: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, stage: str):
        return _Timer(self.seconds, stage)

    @property
    def total(self) -> int:
        return self.positions + self.sampling + self.scoring


class _Timer:
    def __init__(self, into: dict[str, float], stage: str):
        self.into, self.stage = into, stage

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.into[self.stage] = self.into.get(self.stage, 0.0) + time.perf_counter() - self.start


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
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # (B, heads, P + body + n, head_dim)


@torch.inference_mode()
def position_scores(model, tok, tool: Tool, texts: list[EncodedText], api_token_id: int,
                    counter: TokenCounter | None = None) -> ScoredPositions:
    """p_i = p_M(" [" | P(x), x_<i) for every position of every text, one batched pass.

    The sequence is prefix (cached) + " " + x + "\\nOutput:" + " " + x: teacher forcing, so p_i
    is measured on the true x_<i, never on the model's own copy.
    """
    prefix = prompt_prefix(model, tok, tool, counter)
    device = next(model.parameters()).device
    bodies = [tok(" " + t.text + "\nOutput:", add_special_tokens=False)["input_ids"] for t in texts]
    seqs = [b + t.x_ids for b, t in zip(bodies, texts, strict=True)]
    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), len(prefix.ids) + width), dtype=torch.long)
    mask[:, : len(prefix.ids)] = 1
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
        mask[r, len(prefix.ids) : len(prefix.ids) + len(s)] = 1
    cache = _cache_from(prefix.layers, slice(0, 1), len(prefix.ids), repeats=len(seqs))
    # logits at body_len - 1 + i predict x_i: keep only the x part of every row.
    keep = width - (min(len(b) for b in bodies) - 1)
    out = model(ids.to(device), attention_mask=mask.to(device), cache=cache, use_cache=True,
                logits_to_keep=keep)
    if counter:
        counter.positions += sum(len(s) for s in seqs)
    offset = width - out.logits.shape[1]
    p = []
    for r, (b, t) in enumerate(zip(bodies, texts, strict=True)):
        rows = out.logits[r, len(b) - 1 - offset : len(b) - 1 - offset + len(t.x_ids)].float()
        p.append(torch.softmax(rows, -1)[:, api_token_id].cpu())
    layers = [(k, v) for k, v, *_ in out.cache]
    return ScoredPositions(texts, [len(b) for b in bodies], p, len(prefix.ids), layers)


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


MAX_SAMPLE_ROWS = 48  # rows per sampling batch: bounds the KV cache (rows x context) in memory


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
        """Keep ``rows`` (ascending), moved down in place: no second buffer is allocated."""
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

    Each row starts from the scoring pass's cache cut to P(x) + x_<i (no re-encoding); rows are
    left-padded inside the cache, with the pads masked out and explicit position ids, so every row
    sees exactly its own context. A row stops when its decoded text closes the call (")]" or
    ") ->", detected on text because tokenizers merge ")]") and leaves the batch. Each sample has
    its own seeded generator, so samples do not depend on batching or on which rows finished.
    """
    pairs = [(row, p) for row, positions in requests for p in positions]
    per_chunk = max(1, MAX_SAMPLE_ROWS // m)
    drawn: list[Samples] = []
    for s in range(0, len(pairs), per_chunk):
        drawn += _sample_chunk(model, tok, scored, pairs[s : s + per_chunk], m, cfg, api_token_id, tool_name,
                               counter)
    out, at = [], 0
    for _, positions in requests:
        out.append(drawn[at : at + len(positions)])
        at += len(positions)
    return out


def _sample_chunk(model, tok, scored: ScoredPositions, pairs: list[tuple[int, int]], m: int, cfg: PipelineConfig,
                  api_token_id: int, tool_name: str, counter: TokenCounter | None) -> list[Samples]:
    device = next(model.parameters()).device
    lengths = [scored.prefix_len + scored.body_lens[row] + p for row, p in pairs]  # context of each position
    width = max(lengths)
    n = len(pairs) * m
    # The model writes the tool name itself (the paper), unless cfg.prefill_tool_name feeds
    # "Tool(" after " [" (an option for small models, which often write no name at all).
    forced = tok(tool_name + "(", add_special_tokens=False)["input_ids"] if cfg.prefill_tool_name else []
    capacity = width + 1 + len(forced) + cfg.max_call_tokens
    buffers = []
    for k, v in scored.layers:
        kk = k.new_zeros((n, k.shape[1], capacity, k.shape[3]))
        vv = v.new_zeros((n, v.shape[1], capacity, v.shape[3]))
        for g, ((row, _), length) in enumerate(zip(pairs, lengths, strict=True)):
            kk[g * m : (g + 1) * m, :, width - length : width] = k[row : row + 1, :, :length]
            vv[g * m : (g + 1) * m, :, width - length : width] = v[row : row + 1, :, :length]
        buffers.append((kk, vv))
    cache = _GrowingCache(buffers, width)
    mask = torch.zeros((n, width), dtype=torch.long)
    for g, length in enumerate(lengths):
        mask[g * m : (g + 1) * m, width - length :] = 1
    mask = mask.to(device)
    pos_ids = torch.tensor([length for length in lengths for _ in range(m)], device=device)[:, None]
    gens = [torch.Generator(device="cpu").manual_seed(
                _seed_for(cfg.seed, scored.texts[row].text_id, tool_name, p, j))
            for row, p in pairs for j in range(m)]
    nxt = torch.tensor([[api_token_id, *forced]] * n, dtype=torch.long, device=device)
    generated: list[list[int]] = [list(forced) for _ in range(n)]
    closed = [False] * n
    active = list(range(n))  # original row index of each batch row
    eos = tok.eos_token_id
    fed = 0
    for _ in range(cfg.max_call_tokens):
        step = nxt.shape[1]
        mask = torch.cat([mask, mask.new_ones((len(active), step))], 1)
        positions_now = pos_ids + fed + torch.arange(step, device=device)[None, :]
        out = model(nxt, cache=cache, attention_mask=mask, position_ids=positions_now, use_cache=True)
        fed += step
        if counter:
            counter.sampling += len(active) * step
        probs = torch.softmax(out.logits[:, -1].float() / cfg.temperature, -1).cpu()
        keep, tokens = [], []
        for b, r in enumerate(active):
            token = int(torch.multinomial(probs[b], 1, generator=gens[r]))
            if token == eos:
                continue
            generated[r].append(token)
            if _closed(tok.decode(generated[r][-8:])):
                closed[r] = True
                continue
            keep.append(b)
            tokens.append(token)
        if not keep:
            break
        if len(keep) < len(active):  # finished rows leave the batch
            cache.keep_rows(keep)
            rows = torch.tensor(keep, device=device)
            mask, pos_ids = mask[rows], pos_ids[rows]
            active = [active[b] for b in keep]
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
    """r = tool(input) for each candidate; a call without a result keeps its reason and is not scored."""
    cache: dict[str, tuple[str | None, str]] = {}
    for c in candidates:
        if c.input not in cache:
            try:
                res = tool.run(c.input)
                cache[c.input] = (res.output, res.reason)
            except Exception as exc:  # a tool bug must not stop a long run
                cache[c.input] = (None, f"{type(exc).__name__}: {exc}")
        c.result, c.reason = cache[c.input]
        if c.result is None or c.result.strip() == "":
            c.result = None
            c.reason = c.reason or "no result"
            counts["no_result"] += 1
            reasons[c.reason.split(":")[0][:60]] += 1
        else:
            counts["executed"] += 1


@torch.inference_mode()
def plain_logprobs(model, texts: list[EncodedText], batch_size: int,
                   counter: TokenCounter | None = None) -> dict[str, torch.Tensor]:
    """log p(x_j | x_<j) for j = 1..n-1 of every text (index j-1), for L_i(eps): one pass per text."""
    out: dict[str, torch.Tensor] = {}
    order = sorted(texts, key=lambda t: len(t.x_ids))
    for s in range(0, len(order), batch_size):
        batch = [t for t in order[s : s + batch_size] if len(t.x_ids) >= 2]
        if not batch:
            continue
        lps = span_logprobs(model, [t.x_ids for t in batch], [(1, len(t.x_ids)) for t in batch])
        if counter:
            counter.scoring += sum(len(t.x_ids) for t in batch)
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

    Each sequence is e(.) + x_1..x_{i+4} (the call is a prefix, footnote 3); sequences are sorted by
    length and batched, and only x_i..x_{i+4} are scored.

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
    jobs.sort(key=lambda j: j[0])
    results: dict[tuple[int, str], torch.Tensor] = {}
    for s in range(0, len(jobs), batch_size):
        batch = jobs[s : s + batch_size]
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
        c.loss_reduction = min(c.loss_plain, c.loss_empty) - c.loss_result
        if ci in placebos:
            c.placebo_result = placebos[ci]
            c.loss_placebo = float(weighted_loss(results[(ci, "placebo")]))
            c.loss_reduction = min(c.loss_plain, c.loss_empty, c.loss_placebo) - c.loss_result
        c.next_tokens = [tok.decode([t]) for t in x[c.token_pos : end]]
        c.logprobs_plain = [round(float(v), 5) for v in lp_plain]
        c.logprobs_empty = [round(float(v), 5) for v in lp_empty]
        c.logprobs_result = [round(float(v), 5) for v in lp_result]
