"""The pieces that make data generation fast, each checked against the plain computation."""

from __future__ import annotations

import threading

import pytest
import torch

from toolformer_app.pipeline import PipelineConfig, shared_attention
from toolformer_app.pipeline.run import api_token_id
from toolformer_app.pipeline.scoring import span_logprobs, split_head
from toolformer_app.pipeline.steps import (
    _uniform,
    draw_tokens,
    encode_text,
    length_groups,
    position_scores,
    rows_per_batch,
    sample_calls_batch,
)
from toolformer_app.tools import get_tool


@pytest.mark.parametrize("lengths", [[5], [10, 10, 10], [3, 50, 4, 49, 100, 5, 51], list(range(1, 60, 3))])
def test_length_groups_cover_every_index_once_and_bound_the_padding(lengths):
    groups = length_groups(lengths, max_padding=0.1, max_rows=4)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        assert len(g) <= 4
        real = sum(lengths[i] for i in g)
        assert len(g) * max(lengths[i] for i in g) <= 1.1 * real + 1e-9


def test_length_groups_keep_rows_times_width_under_the_token_budget():
    lengths = [100, 101, 102, 103, 104, 105, 500]
    groups = length_groups(lengths, max_padding=1.0, max_tokens=1000, overhead=200)
    for g in groups:
        assert len(g) == 1 or len(g) * (200 + max(lengths[i] for i in g)) <= 1000
    assert [len(g) for g in groups] == [3, 3, 1]


def test_draw_tokens_inverts_the_cdf_and_never_draws_a_zero_probability_token():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5], [0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 1.0, 0.0]])
    assert draw_tokens(probs, [0.0, 0.0, 0.0]) == [1, 0, 2]
    assert draw_tokens(probs, [0.49, 0.3, 0.999]) == [1, 1, 2]
    assert draw_tokens(probs, [0.5, 0.99, 0.5]) == [3, 3, 2]
    # many draws follow the distribution
    row = torch.tensor([[0.1, 0.2, 0.7]])
    draws = [draw_tokens(row, [_uniform(7, step)])[0] for step in range(3000)]
    freq = [draws.count(v) / len(draws) for v in range(3)]
    assert freq == pytest.approx([0.1, 0.2, 0.7], abs=0.03)


def test_uniforms_depend_only_on_the_sample_and_the_step():
    assert _uniform(123, 4) == _uniform(123, 4)
    assert len({_uniform(123, s) for s in range(100)}) == 100
    assert all(0.0 <= _uniform(k, 0) < 1.0 for k in range(1000))


def test_lm_head_on_needed_positions_only_equals_full_logits(tiny_model):
    model, tok = tiny_model
    assert split_head(model) is not None
    seqs = [tok("The war lasted from 1914 to 1918, four years.")["input_ids"], tok("Out of 1400, 400 passed.")["input_ids"]]
    spans = [(3, 9), (1, len(seqs[1]))]
    fast = span_logprobs(model, seqs, spans)
    with torch.no_grad():
        for seq, (a, b), got in zip(seqs, spans, fast, strict=True):
            logp = torch.log_softmax(model(torch.tensor([seq])).logits[0].float(), -1)
            want = logp[a - 1 : b - 1].gather(-1, torch.tensor(seq[a:b])[:, None])[:, 0]
            assert torch.allclose(got, want, atol=1e-5)


def _scored(tiny_model):
    model, tok = tiny_model
    tool = get_tool("Calculator")
    encs = [encode_text(tok, "a", "The company sold 120 cars in March and 80 in April."),
            encode_text(tok, "b", "Out of 1400 participants, 400 passed the test.")]
    return model, tok, tool, encs, position_scores(model, tok, tool, encs, api_token_id(tok))


def test_rows_per_batch_follow_the_memory_budget(tiny_model):
    *_, scored = _scored(tiny_model)
    small = rows_per_batch(scored, PipelineConfig(sample_memory_mb=16), 5, shared=True)
    large = rows_per_batch(scored, PipelineConfig(sample_memory_mb=256), 5, shared=True)
    padded = rows_per_batch(scored, PipelineConfig(sample_memory_mb=256), 5, shared=False)
    assert small % 5 == 0 and large % 5 == 0 and small >= 5
    assert large > small and large > padded  # sharing the context fits more rows in the same memory


def test_samples_do_not_depend_on_the_memory_budget(tiny_model, monkeypatch):
    model, tok, tool, _, scored = _scored(tiny_model)
    requests = [(0, [3, 6, 9]), (1, [4, 8])]
    api = api_token_id(tok)
    draws = []
    for budget, rows in ((256, None), (16, 2)):  # one batch; then 2 positions (4 rows) per batch
        if rows:
            monkeypatch.setattr("toolformer_app.pipeline.steps.rows_per_batch", lambda *a, n=rows, **k: n * 2)
        cfg = PipelineConfig(tools=("Calculator",), max_call_tokens=6, sample_memory_mb=budget)
        drawn = sample_calls_batch(model, tok, scored, requests, 2, cfg, api, tool.name)
        draws.append([[s.token_ids for s in at] for at in drawn])
    assert draws[0] == draws[1]


def test_another_thread_on_the_same_model_keeps_plain_attention_while_one_samples(tiny_model):
    model, tok = tiny_model
    ids = torch.tensor([tok("A thread that chats while another samples.")["input_ids"]])
    with torch.no_grad():
        want = model(ids).logits
    state = shared_attention.SharedContext(prefix=[], ctx=[], row_text=[], ctx_len=torch.zeros(0, dtype=torch.long),
                                           gen_k=[], gen_v=[])
    got = {}
    with shared_attention.sharing(model, state):
        assert model.config._attn_implementation == shared_attention.NAME
        worker = threading.Thread(target=lambda: got.setdefault("logits", model(ids).logits.detach()))
        worker.start()
        worker.join()
    assert model.config._attn_implementation == "sdpa"
    assert torch.allclose(got["logits"], want, atol=1e-5)
