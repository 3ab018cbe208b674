"""Attention that reads a shared context in place: the position pass (``PrefixAttention``: every
text after the tool prompt's prefix) and sampling calls (``SharedContext``: every row reads the
context's keys and values where the position pass left them, and only its own generated tokens
are stored per row).

A sampling row (text, position i, sample j) attends to P(x) + x_<i and then to its own call. The
position pass has already computed the keys and values of P(x) + x for every text of the batch,
so all the k * m rows of a text share one copy: per row, only the call's tokens (at most
1 + len("Tool(") + max_call_tokens) are stored. This is what makes it cheap to decode hundreds of
rows in one batch: a decoding step reads the model's weights once for all of them, and the memory
per row is the call's keys, not a copy of a ~1,000-token context.

It is exact attention (one softmax over prefix, text and call), computed in three parts: all rows'
queries against the tool prompt's prefix (one matmul), per text the rows' queries against that
text's positions (the text read once), and per row the queries against the row's own call. The model's attention layers call it through transformers'
``AttentionInterface``; a thread that is not sampling (a chat on the same cached model) goes on
to SDPA unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch

NAME = "toolformer_shared_context"
_ACTIVE: ContextVar[SharedContext | None] = ContextVar("toolformer_shared_context", default=None)
_LOCK = threading.Lock()
_USERS: dict[int, int] = {}  # id(config) -> threads sampling with it now
_REGISTERED = False


@dataclass
class SharedContext:
    """The state of one sampling batch.

    prefix: per layer, (keys, values) of the tool prompt's prefix, (kv_heads, P, head_dim): every row sees it.
    ctx: per text, per layer, (keys, values) of the text's part of P(x) + x, each (kv_heads, T, head_dim).
    row_text: the text (index in ctx) of each sampling row, ascending; ctx_len: how many of the
    text's positions each row sees (up to x_<i). gen_k / gen_v: per layer (rows, kv_heads, G, head_dim),
    the row's own call; ``written`` positions of them are filled before the current step.
    """

    prefix: list[tuple[torch.Tensor, torch.Tensor]]
    ctx: list[list[tuple[torch.Tensor, torch.Tensor]]]
    row_text: list[int]
    ctx_len: torch.Tensor  # (rows,) long
    gen_k: list[torch.Tensor]
    gen_v: list[torch.Tensor]
    written: int = 0
    groups: list[tuple[int, int, int, int]] = field(default_factory=list)  # (text, first row, end row, width)
    ctx_masked: torch.Tensor | None = None  # (rows, width) True where a text position is not seen

    def __post_init__(self) -> None:
        self._regroup()

    def _regroup(self) -> None:
        self.groups = []
        lens = self.ctx_len.tolist()
        a = 0
        while a < len(self.row_text):
            b = a
            while b < len(self.row_text) and self.row_text[b] == self.row_text[a]:
                b += 1
            self.groups.append((self.row_text[a], a, b, max(lens[a:b])))
            a = b
        width = max((g[3] for g in self.groups), default=0)
        self.ctx_masked = torch.arange(width)[None, :] >= self.ctx_len[:, None]  # (rows, width)
        self._mask_cache: dict[int, torch.Tensor] = {}

    def keep_rows(self, rows: list[int]) -> None:
        """Keep ``rows`` (ascending, repeats allowed): finished rows leave the batch, a row whose
        samples drew different tokens is copied once per token."""
        index = torch.tensor(rows, dtype=torch.long)
        self.gen_k = [k.index_select(0, index) for k in self.gen_k]
        self.gen_v = [v.index_select(0, index) for v in self.gen_v]
        self.row_text = [self.row_text[r] for r in rows]
        self.ctx_len = self.ctx_len[index]
        self._regroup()

    def _masks(self, rq: int) -> torch.Tensor:
        """(rows * rq, width) True where a row must not see a text position (past x_<i)."""
        if rq not in self._mask_cache:
            self._mask_cache[rq] = self.ctx_masked.repeat_interleave(rq, 0)
        return self._mask_cache[rq]

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               scaling: float) -> torch.Tensor:
        """query (rows, heads, q, d) of the tokens fed now, key/value (rows, kv_heads, q, d) of the same
        tokens; returns the attention output as (rows, q, heads, d).

        Scores live in one (kv_heads, rows * rep * q, prefix | text | call) block: head h uses kv
        head h // rep, and the rows of a text are a contiguous slice of the middle axis.
        """
        rows, heads, q, d = query.shape
        kv_heads = key.shape[1]
        rep = heads // kv_heads
        rq = rep * q
        start, end = self.written, self.written + q
        gen_k, gen_v = self.gen_k[layer], self.gen_v[layer]
        gen_k[:, :, start:end] = key
        gen_v[:, :, start:end] = value
        q_all = (query * scaling).reshape(rows, kv_heads, rq, d).transpose(0, 1).reshape(kv_heads, rows * rq, d)
        k_pre, v_pre = self.prefix[layer]
        n_pre, width = k_pre.shape[1], self.ctx_masked.shape[-1]
        scores = q_all.new_empty((kv_heads, rows * rq, n_pre + width + end))
        scores[..., :n_pre] = q_all @ k_pre.transpose(-1, -2)  # the prefix: one matmul for all rows
        for text, a, b, w in self.groups:  # a text's positions: read once for all its rows
            k_t = self.ctx[text][layer][0][:, :w]
            scores[:, a * rq : b * rq, n_pre : n_pre + w] = q_all[:, a * rq : b * rq] @ k_t.transpose(-1, -2)
        scores[..., n_pre : n_pre + width].masked_fill_(self._masks(rq), float("-inf"))
        q_rows = q_all.view(kv_heads, rows, rq, d).transpose(0, 1)  # (rows, kv, rq, d)
        s_gen = q_rows @ gen_k[:, :, :end].transpose(-1, -2)  # each row's own call: (rows, kv, rq, end)
        if q > 1:  # the tokens fed together see the call only up to themselves
            causal = torch.arange(end)[None, :] > (start + torch.arange(q))[:, None]  # (q, end)
            s_gen = s_gen.masked_fill(causal.repeat(rep, 1), float("-inf"))
        scores[..., n_pre + width :] = s_gen.transpose(0, 1).reshape(kv_heads, rows * rq, end)
        probs = torch.softmax(scores.float(), -1).to(query.dtype)
        out = probs[..., :n_pre] @ v_pre  # (kv, rows * rq, d)
        for text, a, b, w in self.groups:
            v_t = self.ctx[text][layer][1][:, :w]
            out[:, a * rq : b * rq] += probs[:, a * rq : b * rq, n_pre : n_pre + w] @ v_t
        p_gen = probs[..., n_pre + width :].view(kv_heads, rows, rq, end).transpose(0, 1)
        out += (p_gen @ gen_v[:, :, :end]).transpose(0, 1).reshape(kv_heads, rows * rq, d)
        return out.view(kv_heads, rows, rep, q, d).permute(1, 3, 0, 2, 4).reshape(rows, q, heads, d)


_FLASH = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def merge_attention(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Exact attention over a union of key sets from per-set results (output, logsumexp):
    softmax over the union weighs each part's output by exp(lse_part - lse_union).

    outputs (..., q, d), lse (..., q) in float32; returns float32.
    """
    lse = torch.stack([lse for _, lse in parts])  # (parts, ..., q)
    weights = torch.softmax(lse, 0)  # exp(lse_p - logsumexp_p lse_p)
    out = parts[0][0].float() * weights[0, ..., None]
    for (o, _), w in zip(parts[1:], weights[1:], strict=True):
        out += o.float() * w[..., None]
    return out


class PrefixAttention:
    """Attention for the position pass: rows of P(x) + x, the prompt prefix P shared by every row.

    Instead of a copy of P's keys per row and a padding mask, each layer runs two flash-attention
    calls, all rows' queries against P's keys (one call: the rows are laid end to end) and each row's
    queries against its own keys (causal; rows are right-padded, so no real position sees a pad),
    and merges them exactly through their log-sum-exps. The keys and values of the rows (the text
    part, after rotary embedding) are kept per layer in ``layers`` for sampling.
    """

    def __init__(self, prefix: list[tuple[torch.Tensor, torch.Tensor]]):
        self.prefix = prefix  # per layer (kv_heads, P, head_dim)
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer (rows, kv_heads, W, head_dim)

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               scaling: float) -> torch.Tensor:
        """query (rows, heads, W, d), key/value (rows, kv_heads, W, d) -> (rows, W, heads, d)."""
        rows, heads, width, d = query.shape
        rep = heads // key.shape[1]
        if layer == len(self.layers):
            self.layers.append((key.contiguous(), value.contiguous()))  # value is a transposed view
        k_pre, v_pre = self.prefix[layer]
        k_pre, v_pre = k_pre.repeat_interleave(rep, 0)[None], v_pre.repeat_interleave(rep, 0)[None]
        q_all = query.transpose(0, 1).reshape(1, heads, rows * width, d)
        out_pre, lse_pre = _FLASH(q_all, k_pre, v_pre, 0.0, False, scale=scaling)
        out_pre = out_pre.reshape(heads, rows, width, d).transpose(0, 1)
        lse_pre = lse_pre.reshape(heads, rows, width).transpose(0, 1)
        k_own, v_own = key.repeat_interleave(rep, 1), value.repeat_interleave(rep, 1)
        out_own, lse_own = _FLASH(query, k_own, v_own, 0.0, True, scale=scaling)
        out = merge_attention([(out_pre, lse_pre), (out_own, lse_own)]).to(query.dtype)
        return out.transpose(1, 2)  # (rows, W, heads, d)


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    state = _ACTIVE.get()
    if state is None:  # another thread using the same model: plain SDPA
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return state.attend(module.layer_idx, query, key, value, scale), None


def _register() -> None:
    global _REGISTERED
    if not _REGISTERED:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

        AttentionInterface.register(NAME, _attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # other threads keep SDPA's masks
        _REGISTERED = True


def supported(model) -> bool:
    """Whether ``model`` can sample with shared context: a transformers decoder on SDPA whose attention
    layers go through the attention interface, with no sliding window or logit soft-capping."""
    config = getattr(model, "config", None)
    if _FLASH is None:
        return False
    if config is None or not getattr(model, "_supports_attention_backend", False):
        return False
    if getattr(config, "_attn_implementation", None) not in ("sdpa", NAME):
        return False
    if getattr(config, "sliding_window", None) or getattr(config, "attn_logit_softcapping", None):
        return False
    layers = [m for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "num_key_value_groups")]
    return bool(layers) and sorted(m.layer_idx for m in layers) == list(range(len(layers)))


@contextmanager
def sharing(model, state: SharedContext | PrefixAttention) -> Iterator[None]:
    """Route ``model``'s attention through ``state`` in this thread for the duration of the block."""
    _register()
    config = model.config
    with _LOCK:
        if _USERS.get(id(config), 0) == 0:
            config._attn_implementation = NAME
        _USERS[id(config)] = _USERS.get(id(config), 0) + 1
    token = _ACTIVE.set(state)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
        with _LOCK:
            _USERS[id(config)] -= 1
            if _USERS[id(config)] == 0:
                config._attn_implementation = "sdpa"
                del _USERS[id(config)]
