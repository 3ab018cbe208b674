"""The pieces that make data generation fast, each checked against the plain computation."""

from __future__ import annotations

import threading

import pytest
import torch

from toolformer_app.pipeline import PipelineConfig, shared_attention
from toolformer_app.pipeline.batching import length_groups
from toolformer_app.pipeline.positions import encode_text, position_scores
from toolformer_app.pipeline.run import api_token_id
from toolformer_app.pipeline.sampling import draw_tokens, rows_per_batch, sample_calls_batch
from toolformer_app.pipeline.sampling import sample_uniform as _uniform
from toolformer_app.pipeline.scoring import span_logprobs, split_head
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
            monkeypatch.setattr("toolformer_app.pipeline.sampling.rows_per_batch", lambda *a, n=rows, **k: n * 2)
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


def test_merging_attention_parts_by_log_sum_exp_equals_one_softmax_over_all_keys():
    torch.manual_seed(0)
    q = torch.randn(2, 4, 5, 8)
    k1, v1 = torch.randn(2, 4, 7, 8), torch.randn(2, 4, 7, 8)
    k2, v2 = torch.randn(2, 4, 3, 8), torch.randn(2, 4, 3, 8)
    parts = []
    for k, v in ((k1, v1), (k2, v2)):
        scores = q @ k.transpose(-1, -2) / 8**0.5
        parts.append((torch.softmax(scores, -1) @ v, torch.logsumexp(scores, -1)))
    want = torch.nn.functional.scaled_dot_product_attention(q, torch.cat([k1, k2], 2), torch.cat([v1, v2], 2))
    assert torch.allclose(shared_attention.merge_attention(parts), want, atol=1e-6)


def test_position_pass_reading_the_prefix_in_place_equals_the_pass_with_copies(tiny_model, monkeypatch):
    model, tok, tool, encs, in_place = _scored(tiny_model)
    monkeypatch.setattr(shared_attention, "supported", lambda model: False)
    copied = position_scores(model, tok, tool, encs, api_token_id(tok))
    for row in range(len(encs)):
        assert torch.allclose(in_place.p[row], copied.p[row], rtol=1e-4, atol=1e-7)
        for (k, v), (k_ref, v_ref) in zip(in_place.kv[row], copied.kv[row], strict=True):
            assert k.shape == k_ref.shape and torch.allclose(k, k_ref, atol=1e-5)
            assert torch.allclose(v, v_ref, atol=1e-5)


def _one_sample_at_a_time(model, tok, tool, enc, position, key, cfg, api):
    """The reference sampler: one sample alone, the whole context re-encoded at every token."""
    from toolformer_app.calls import call_closed as _closed
    from toolformer_app.pipeline.positions import prompt_prefix
    from toolformer_app.pipeline.sampling import forced_tokens as _forced_tokens

    ids = (prompt_prefix(model, tok, tool).ids + tok(" " + enc.text + "\nOutput:", add_special_tokens=False)["input_ids"]
           + enc.x_ids[:position] + [api] + _forced_tokens(tok, cfg, tool.name))
    generated = list(_forced_tokens(tok, cfg, tool.name))
    for step in range(cfg.max_call_tokens):
        with torch.no_grad():
            logits = model(torch.tensor([ids + generated[len(_forced_tokens(tok, cfg, tool.name)):]])).logits[0, -1]
        token = draw_tokens(torch.softmax(logits.float() / cfg.temperature, -1)[None], [_uniform(key, step)])[0]
        if token == tok.eos_token_id:
            break
        generated.append(token)
        if _closed(tok.decode(generated[-8:])):
            break
    return generated


@pytest.mark.parametrize("temperature", [0.3, 1.0])
def test_rows_shared_by_samples_with_equal_prefixes_draw_the_samples_of_separate_rows(tiny_model, temperature):
    """A decoding row stands for all samples of a position that drew the same tokens so far; the
    samples are still exactly those of m independent rows, and shared prefixes are computed once."""
    from toolformer_app.pipeline.batching import TokenCounter
    from toolformer_app.pipeline.sampling import sample_seed as _seed_for

    model, tok, tool, encs, scored = _scored(tiny_model)
    api, m = api_token_id(tok), 4
    cfg = PipelineConfig(tools=("Calculator",), max_call_tokens=6, temperature=temperature)
    requests = [(0, [3, 9]), (1, [5])]
    counter = TokenCounter()
    drawn = sample_calls_batch(model, tok, scored, requests, m, cfg, api, tool.name, counter)
    forced = len(tok("Calculator(", add_special_tokens=False)["input_ids"])
    separate = 0  # at most what one row per sample would feed: " [" + "Calculator(", then its drawn tokens
    for (row, positions), per_position in zip(requests, drawn, strict=True):
        for p, samples in zip(positions, per_position, strict=True):
            for j in range(m):
                key = _seed_for(cfg.seed, encs[row].text_id, tool.name, p, j)
                want = _one_sample_at_a_time(model, tok, tool, encs[row], p, key, cfg, api)
                assert samples.token_ids[j] == want
                separate += 1 + len(want)
    assert counter.sampling <= separate - 3 * (m - 1) * (1 + forced)  # the first step is fed once per position
