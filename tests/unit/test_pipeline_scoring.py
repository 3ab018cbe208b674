"""The filter's maths, pinned with a model whose log-probabilities the test controls."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from toolformer_app.calls import linearize
from toolformer_app.pipeline.config import Candidate
from toolformer_app.pipeline.positions import encode_text
from toolformer_app.pipeline.scoring import (
    filter_tokens_with_api_response,
    loss_weights,
    plain_logprobs,
    score_candidates,
    weighted_loss,
)


class CountingLM(torch.nn.Module):
    """logits_t[v] = A[x_t, v] + B[v] * (number of "marker" tokens in x_<=t): exact and hand-computable.

    The marker count lets a prefix (the call and its result) change the following predictions.
    """

    def __init__(self, vocab: int, markers: list[int], seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = torch.nn.Parameter(torch.randn(vocab, vocab, generator=g, dtype=torch.float64))
        self.B = torch.nn.Parameter(torch.randn(vocab, generator=g, dtype=torch.float64))
        self.markers = torch.tensor(markers)

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0, **_):
        is_marker = torch.isin(input_ids, self.markers).to(torch.float64)
        count = is_marker.cumsum(-1)  # (B, T)
        logits = self.A[input_ids] + count[..., None] * self.B  # (B, T, V)
        if logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        return SimpleNamespace(logits=logits)


def hand_logprob(model: CountingLM, context: list[int], target: int) -> float:
    count = sum(1 for t in context if t in set(model.markers.tolist()))
    row = [float(model.A[context[-1], v].detach() + count * model.B[v].detach()) for v in range(model.A.shape[0])]
    top = max(row)
    return row[target] - top - math.log(sum(math.exp(r - top) for r in row))


def hand_loss(model: CountingLM, prefix: list[int], x: list[int], i: int) -> float:
    w = [1.0, 0.8, 0.6, 0.4, 0.2]
    return -sum(w[t] / 3.0 * hand_logprob(model, prefix + x[: i + t], x[i + t]) for t in range(5) if i + t < len(x))


class SmallVocab:
    """Maps the real tokenizer's ids into a 64-token vocabulary, so the hand computation stays small."""

    def __init__(self, tok):
        self.tok = tok
        self.eos_token_id = tok.eos_token_id

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        enc = self.tok(text, add_special_tokens=add_special_tokens, return_offsets_mapping=return_offsets_mapping)
        enc["input_ids"] = [i % 64 for i in enc["input_ids"]]
        return enc

    def decode(self, ids):
        return "|".join(str(i) for i in ids)


@pytest.fixture(scope="module")
def setup(real_tokenizer):
    tok = SmallVocab(real_tokenizer)
    markers = sorted(set(tok("42 -> ]", add_special_tokens=False)["input_ids"]))
    return CountingLM(64, markers), tok


def test_weights_are_the_papers_normalised_ones():
    w = loss_weights()
    assert torch.allclose(w, torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2], dtype=torch.float64) / 3.0)
    assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-6)
    lp = torch.tensor([-1.0, -2.0, -3.0, -4.0, -5.0, -100.0])  # only five tokens carry weight
    assert math.isclose(float(weighted_loss(lp)), (1 + 1.6 + 1.8 + 1.6 + 1.0) / 3.0, rel_tol=1e-6)


def _candidates(tok, text, calls):
    enc = encode_text(tok, "t", text)
    return enc, [Candidate("t", "Calculator", pos, enc.char_starts[pos], 0.1, inp, result) for pos, inp, result in calls]


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_losses_equal_hand_computed_values_for_any_batching(setup, batch_size):
    model, tok = setup
    text = "The shop sold 12 apples and 30 pears, so 42 fruits in all were sold that day."
    enc, cands = _candidates(tok, text, [(8, "12 + 30", "42"), (3, "1 + 1", "2"), (5, "7 * 6", "42")])
    plain = plain_logprobs(model, [enc], batch_size)
    score_candidates(model, tok, cands, {"t": enc}, plain, batch_size)
    x = enc.x_ids
    for c in cands:
        z_empty = tok(linearize(c.tool, c.input, ""))["input_ids"]
        z_result = tok(linearize(c.tool, c.input, c.result))["input_ids"]
        assert c.loss_plain == pytest.approx(hand_loss(model, [], x, c.token_pos), abs=1e-9)
        assert c.loss_empty == pytest.approx(hand_loss(model, z_empty, x, c.token_pos), abs=1e-9)
        assert c.loss_result == pytest.approx(hand_loss(model, z_result, x, c.token_pos), abs=1e-9)
        assert c.loss_reduction == pytest.approx(min(c.loss_plain, c.loss_empty) - c.loss_result, abs=1e-12)


def test_call_near_the_end_uses_only_the_tokens_that_exist(setup):
    model, tok = setup
    text = "In total there were 42 of them"
    enc, cands = _candidates(tok, text, [(len(encode_text(tok, "t", text).x_ids) - 2, "40 + 2", "42")])
    plain = plain_logprobs(model, [enc], 4)
    score_candidates(model, tok, cands, {"t": enc}, plain, 4)
    c = cands[0]
    assert len(c.logprobs_result) == 2  # x_i and x_{i+1} only
    z = tok(linearize(c.tool, c.input, c.result))["input_ids"]
    assert c.loss_result == pytest.approx(hand_loss(model, z, enc.x_ids, c.token_pos), abs=1e-9)


def test_call_with_bracket_and_arrow_in_result_is_scored_to_its_own_end(setup):
    model, tok = setup
    text = "The list holds 42 items and 7 of them are new ones."
    enc, cands = _candidates(tok, text, [(4, "6 * 7", "a]b -> c"), (4, "6 * 7", "42")])
    plain = plain_logprobs(model, [enc], 4)
    score_candidates(model, tok, cands, {"t": enc}, plain, 4)
    weird = cands[0]
    z = tok(" [Calculator(6 * 7) -> a)b → c]")["input_ids"]  # sanitised: the call cannot end early
    assert weird.loss_result == pytest.approx(hand_loss(model, z, enc.x_ids, 4), abs=1e-9)
    assert weird.logprobs_plain == cands[1].logprobs_plain  # same x_i..x_{i+4} are scored


def test_filter_tokens_with_api_response_finds_the_call_end_past_a_bracket_in_the_result(setup):
    model, _ = setup
    start, end = 60, 61
    x = [5, 9, 12, 7, 3, 8, 14, 2, 11, 6]
    i = 4
    with_r = x[:i] + [start, 20, 21, end, 22, end] + x[i:]  # the result holds the end id once
    without_r = x[:i] + [start, 20, 21, end] + x[i:]
    n = len(with_r)
    pad = lambda s: s + [1] * (n - len(s))  # noqa: E731
    res = filter_tokens_with_api_response(
        model, tokens=torch.tensor([pad(x)]), tokens_with_api_response=torch.tensor([with_r]),
        tokens_without_api_response=torch.tensor([pad(without_r)]), filter_threshold=-100.0,
        api_start_token_id=start, api_end_token_id=end,
    )
    expected_plus = hand_loss(model, [], with_r, i + 6)
    assert float(res.loss_with_response[0]) == pytest.approx(expected_plus, abs=1e-6)
    assert float(res.loss_without_call[0]) == pytest.approx(hand_loss(model, [], pad(x), i), abs=1e-6)
    assert bool(res.keep[0]) and res.tokens.shape[0] == 1
