"""The filtering loss of the paper (section 2, "Filtering API Calls").

    w~_t = max(0, 1 - 0.2 t),  w_t = w~_t / sum_s w~_s      (sum = 3.0; only t = 0..4 are non-zero)
    L_i(z) = - sum_{j >= i} w_{j-i} * log p_M(x_j | z, x_1..x_{j-1})
    L+ = L_i(e(c, r)),   L- = min(L_i(eps), L_i(e(c, eps))),   keep if L- - L+ >= tau_f

z is a *prefix* before x_1 (footnote 3), so each scoring sequence is z + x_1..x_{i+4}.
Near the end of a text, fewer than five tokens follow i; the weights stay the paper's
(normalised over all five), so the three losses of one candidate remain comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from toolformer_app.calls import linearize
from toolformer_app.models.forward import HEAD_ROWS, head_logprobs, split_head
from toolformer_app.models.forward import logits as model_logits
from toolformer_app.pipeline.batching import SCORING_PASS_TOKENS, TokenCounter, length_groups
from toolformer_app.pipeline.config import Candidate
from toolformer_app.pipeline.positions import EncodedText

__all__ = ["HEAD_ROWS", "SPAN", "FilterResult", "filter_tokens_with_api_response", "head_logprobs", "loss_reduction",
           "loss_weights", "placebo_results", "plain_logprobs", "score_candidates", "span_logprobs", "split_head",
           "weighted_loss"]

SPAN = 5  # tokens x_i..x_{i+4} carry weight


def loss_weights(device: torch.device | str = "cpu") -> torch.Tensor:
    """w_t for t = 0..4: [1, .8, .6, .4, .2] / 3."""
    raw = torch.clamp(1.0 - 0.2 * torch.arange(SPAN, dtype=torch.float64), min=0.0)
    return (raw / raw.sum()).to(device=device)


def weighted_loss(logprobs: torch.Tensor) -> torch.Tensor:
    """L from the log-probs of x_i.. (last dim, at most 5 used); shorter spans keep the same weights."""
    n = min(logprobs.shape[-1], SPAN)
    lp = logprobs[..., :n] if logprobs.dtype == torch.float64 else logprobs[..., :n].float()
    return -(lp * loss_weights(logprobs.device).to(lp.dtype)[:n]).sum(-1)


def loss_reduction(plain, empty, result, placebo=None):
    """L⁻ − L⁺ (paper, section 2): L⁻ = min(L_i(ε), L_i(e(c, ε))), the better of no call and a call
    without its result (with the placebo control, also L_i(e(c, r')), an unrelated result); L⁺ = L_i(e(c, r)).

    The one place this is computed: ``score_candidates`` below (floats) and the toolformer-pytorch API's
    ``filter_tokens_with_api_response`` (tensors, elementwise) both call it.
    """
    if isinstance(plain, torch.Tensor):
        minus = torch.minimum(plain, empty)
        if placebo is not None:
            minus = torch.minimum(minus, placebo)
    else:
        minus = min(plain, empty) if placebo is None else min(plain, empty, placebo)
    return minus - result


@torch.inference_mode()
def span_logprobs(
    model: torch.nn.Module,
    sequences: list[list[int]],
    spans: list[tuple[int, int]],
) -> list[torch.Tensor]:
    """log p(token_j | tokens_<j) for j in [start, end) of each sequence, in one right-padded batch.

    Rows are right-padded; a causal model never lets a pad influence an earlier position, so the
    decoders whose LM head is split off run without a padding mask; for other models the mask is
    built from lengths (never from pad ids: SmolLM2's pad is its eos). Only the positions needed
    are sent through the LM head.
    """
    device = next(model.parameters()).device
    lengths = [len(s) for s in sequences]
    width = max(lengths)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for b, seq in enumerate(sequences):
        ids[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[b, : len(seq)] = 1
    parts = split_head(model)
    if parts is not None:
        decoder, head = parts
        # No padding mask: rows are right-padded, so under the causal mask no real position sees a pad,
        # and without a mask SDPA takes its causal kernel (no mask tensor, no key copies for GQA).
        hidden = decoder(input_ids=ids.to(device)).last_hidden_state  # (B, W, D)
        rows = torch.tensor([b for b, (s, e) in enumerate(spans) for _ in range(s, e)], dtype=torch.long)
        cols = torch.tensor([j - 1 for s, e in spans for j in range(s, e)], dtype=torch.long)  # logits at j-1
        targets = ids[rows, cols + 1]
        flat = head_logprobs(head, hidden[rows.to(device), cols.to(device)], targets).cpu()
        return list(flat.split([e - s for s, e in spans]))
    first_needed = min(start - 1 for start, _ in spans)  # logits at j-1 predict token j
    keep = width - first_needed
    logits = model_logits(model, ids.to(device), mask.to(device), keep=keep)  # (B, keep, V)
    offset = width - logits.shape[1]
    out = []
    for b, (start, end) in enumerate(spans):
        rows = logits[b, start - 1 - offset : end - 1 - offset]  # (end-start, V)
        rows = rows if rows.dtype == torch.float64 else rows.float()  # log-softmax never in half precision
        target = ids[b, start:end].to(rows.device)
        out.append(torch.log_softmax(rows, -1).gather(-1, target[:, None])[:, 0].cpu())
    return out


@dataclass
class FilterResult:
    """What ``filter_tokens_with_api_response`` decides for each row of the batch."""

    tokens: torch.Tensor  # (kept, seq): the rows of tokens_with_api_response that were kept
    keep: torch.Tensor  # (batch,) bool
    loss_reduction: torch.Tensor  # (batch,) L- - L+
    loss_with_response: torch.Tensor  # (batch,) L+ = L_i(e(c, r))
    loss_without_response: torch.Tensor  # (batch,) L_i(e(c, eps))
    loss_without_call: torch.Tensor  # (batch,) L_i(eps)


def _call_end(row_with: torch.Tensor, row_plain: torch.Tensor, start: int, end_id: int) -> int:
    """Index of the end token that closes the call starting at ``start``.

    A result may itself contain the end token, so the first one is not trusted: the call ends at
    the end token after which the row continues with the original tokens (an insertion). If no
    such alignment exists (random mock data), the last end token is used.
    """
    ends = (row_with[start + 1 :] == end_id).nonzero()[:, 0] + start + 1
    for e in ends.tolist():
        rest = row_with[e + 1 :]
        n = min(len(rest), len(row_plain) - start)
        if n > 0 and torch.equal(rest[:n], row_plain[start : start + n]):
            return e
    if len(ends) == 0:
        raise ValueError("a row has an API start token but no end token after it")
    return int(ends[-1])


@torch.inference_mode()
def filter_tokens_with_api_response(
    model: torch.nn.Module,
    *,
    tokens: torch.Tensor,
    tokens_with_api_response: torch.Tensor,
    tokens_without_api_response: torch.Tensor,
    filter_threshold: float = 1.0,
    api_start_token_id: int,
    api_end_token_id: int,
) -> FilterResult:
    """toolformer-pytorch's token-level filter (``compat``), with the paper's normalised weights.

    tokens: (batch, seq) the plain text x. tokens_with_api_response / tokens_without_api_response:
    (batch, seq) x with e(c, r) / e(c, eps) inserted at position i (marked by the start and end ids).
    For each row, L_i is taken over the five tokens that follow the call (x_i..x_{i+4}); the model is
    any nn.Module returning logits (batch, seq, vocab). A row is kept if L- - L+ >= filter_threshold.
    """
    plain_l, with_l, without_l = [], [], []
    for b in range(tokens.shape[0]):
        starts = (tokens_with_api_response[b] == api_start_token_id).nonzero()[:, 0]
        if len(starts) == 0:
            raise ValueError(f"row {b} of tokens_with_api_response has no API start token")
        i = int(starts[0])
        e_with = _call_end(tokens_with_api_response[b], tokens[b], i, api_end_token_id)
        e_without = _call_end(tokens_without_api_response[b], tokens[b], i, api_end_token_id)
        n = min(SPAN, tokens.shape[1] - i)
        if i == 0:
            raise ValueError(f"row {b}: a call at position 0 leaves no context to score x_i")
        seqs = [tokens[b].tolist(), tokens_with_api_response[b].tolist(), tokens_without_api_response[b].tolist()]
        spans = [(i, i + n), (e_with + 1, min(e_with + 1 + n, len(seqs[1]))),
                 (e_without + 1, min(e_without + 1 + n, len(seqs[2])))]
        lp = span_logprobs(model, seqs, spans)
        plain_l.append(weighted_loss(lp[0]))
        with_l.append(weighted_loss(lp[1]))
        without_l.append(weighted_loss(lp[2]))
    plain, with_r, without_r = torch.stack(plain_l), torch.stack(with_l), torch.stack(without_l)
    reduction = loss_reduction(plain, without_r, with_r)
    keep = reduction >= filter_threshold
    return FilterResult(tokens_with_api_response[keep.to(tokens_with_api_response.device)], keep, reduction,
                        with_r, without_r, plain)


# -- step 4: the three losses of every candidate ---------------------------------------------

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
