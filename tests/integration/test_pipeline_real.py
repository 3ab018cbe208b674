"""The pipeline on the real default model: batched numbers equal a slow, obviously correct reference."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from toolformer_app import models
from toolformer_app.calls import linearize
from toolformer_app.pipeline import PipelineConfig, run_pipeline
from toolformer_app.pipeline.positions import encode_text, position_scores
from toolformer_app.pipeline.run import api_token_id
from toolformer_app.pipeline.sampling import clause_before, sample_calls, sample_calls_batch
from toolformer_app.tools import get_tool

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXT = "The company sold 120 cars in March and 80 cars in April, a total of 200 cars in two months."


@pytest.fixture(scope="module")
def fp32_model():
    return models.load("smollm2-135m", dtype="float32")


def _reference_loss(model, prefix: list[int], x: list[int], i: int) -> float:
    """Full pass over prefix + all of x, full log-softmax, the paper's weights: no batching, no truncation."""
    ids = torch.tensor([prefix + x])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double(), -1)
    w = [1.0, 0.8, 0.6, 0.4, 0.2]
    return -sum(w[t] / 3 * float(logp[len(prefix) + i + t - 1, x[i + t]]) for t in range(5) if i + t < len(x))


def test_batched_losses_equal_a_slow_reference_on_the_real_model(fp32_model):
    model, tok = fp32_model
    texts = [TEXT, "Out of 1400 participants, 400 passed the test, about 29 percent.", "The war lasted from 1914 to 1918."]
    res = run_pipeline(texts, PipelineConfig(tools=("Calculator",), batch_size=3), model, tok)
    scored = [c for c in res.candidates if c.loss_reduction is not None]
    assert scored, "the real model should sample at least one executable Calculator call on these texts"
    for c in scored:
        x = encode_text(tok, c.text_id, texts[int(c.text_id)]).x_ids
        plain = _reference_loss(model, [], x, c.token_pos)
        empty = _reference_loss(model, tok(linearize(c.tool, c.input, ""))["input_ids"], x, c.token_pos)
        full = _reference_loss(model, tok(linearize(c.tool, c.input, c.result))["input_ids"], x, c.token_pos)
        assert c.loss_plain == pytest.approx(plain, abs=1e-3)
        assert c.loss_empty == pytest.approx(empty, abs=1e-3)
        assert c.loss_result == pytest.approx(full, abs=1e-3)
        assert c.loss_reduction == pytest.approx(min(plain, empty) - full, abs=2e-3)


def test_position_scores_are_teacher_forced_p_of_the_api_token(fp32_model):
    model, tok = fp32_model
    tool = get_tool("Calculator")
    enc = encode_text(tok, "0", TEXT)
    api = api_token_id(tok)
    scored = position_scores(model, tok, tool, [enc], api)
    prompt = tok(tool.prompt_prefix().rstrip(" "))["input_ids"] + tok(" " + TEXT + "\nOutput:")["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([prompt + enc.x_ids])).logits[0].float(), -1)[:, api]
    reference = probs[len(prompt) - 1 : len(prompt) - 1 + len(enc.x_ids)]
    assert torch.allclose(scored.p[0], reference, atol=1e-5)
    assert 0 < float(scored.p[0].max()) < 1


def test_sampling_from_the_cut_cache_equals_sampling_after_re_encoding(fp32_model):
    """Greedy-like (low temperature) samples from the cached, left-padded batch match a fresh encode."""
    model, tok = fp32_model
    tool = get_tool("Calculator")
    enc = encode_text(tok, "0", TEXT)
    api = api_token_id(tok)
    cfg = PipelineConfig(tools=("Calculator",), temperature=0.05, max_call_tokens=8)
    scored = position_scores(model, tok, tool, [enc], api)
    positions = [5, 17, len(enc.x_ids) - 3]
    drawn = sample_calls(model, tok, scored, 0, positions, 2, cfg, api, tool.name)
    prompt = tok(tool.prompt_prefix().rstrip(" "))["input_ids"] + tok(" " + TEXT + "\nOutput:")["input_ids"]
    forced = tok("Calculator(", add_special_tokens=False)["input_ids"]
    for pos, samples in zip(positions, drawn, strict=True):
        ids = prompt + enc.x_ids[:pos] + [api] + forced
        out = []
        with torch.no_grad():
            for _ in range(len(samples.token_ids[0]) - len(forced)):
                nxt = int(model(torch.tensor([ids])).logits[0, -1].argmax())
                out.append(nxt)
                ids.append(nxt)
        assert samples.token_ids[0][len(forced) :] == out


def _two_texts(model, tok):
    """The Calculator's position pass over two texts, and a sampling config (temperature 1)."""
    tool = get_tool("Calculator")
    other = "Out of 1400 participants, 400 passed the test, about 29 percent."
    encs = [encode_text(tok, "a", TEXT), encode_text(tok, "b", other)]
    api = api_token_id(tok)
    cfg = PipelineConfig(tools=("Calculator",), temperature=1.0, max_call_tokens=12)
    return tool, encs, api, cfg, position_scores(model, tok, tool, encs, api)


def test_samples_do_not_depend_on_batching_across_texts(fp32_model):
    """One sampling batch over two texts (rows finishing at different steps and leaving the batch)
    draws exactly the samples that each text draws alone: every sample has its own draws."""
    model, tok = fp32_model
    tool, encs, api, cfg, scored = _two_texts(model, tok)
    requests = [(0, [4, 17]), (1, [9])]
    together = sample_calls_batch(model, tok, scored, requests, 3, cfg, api, tool.name)
    for row, positions in requests:
        alone = position_scores(model, tok, tool, [encs[row]], api)
        drawn = sample_calls(model, tok, alone, 0, positions, 3, cfg, api, tool.name)
        assert [s.token_ids for s in drawn] == [s.token_ids for s in together[row]]
    lengths = {len(ids) for at in together for s in at for ids in s.token_ids}
    assert len(lengths) > 1, "the rows should finish at different steps"


def test_generate_on_dated_documents_calls_the_calendar_with_each_documents_date(tmp_path):
    import json

    from toolformer_app.pipeline.dated import dated_texts
    from toolformer_app.tools.calendar import today_sentence

    out = tmp_path / "gen"
    p = subprocess.run([sys.executable, "-m", "toolformer_app", "generate", "--dated", "--limit", "3", "--tools",
                        "Calendar", "--k", "2", "--out", str(out)], cwd=REPO, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    for name in ("candidates.jsonl", "dataset.jsonl", "stats.json"):
        assert (out / name).exists()
    stats = json.loads((out / "stats.json").read_text())
    assert stats["texts_seen"] == 3
    cal = stats["per_tool"]["Calendar"]
    # a tool that takes no input: one call per position, the m - 1 other samples skipped (not drawn)
    assert cal["samples_drawn"] == cal["positions_over_tau_s"] > 0
    assert cal["samples_skipped"] == cal["positions_over_tau_s"] * 4 and cal["duplicates"] == 0
    dates = {d.id: d.date for d in dated_texts(3)}
    cands = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    assert cands and all(c["result"] == today_sentence(dates[c["text_id"]]) for c in cands)


def test_a_tool_without_input_is_sampled_once_per_position_and_keeps_what_m_samples_keep(fp32_model, monkeypatch):
    """Calendar takes no input: one fixed call per position instead of m samples, the same kept set."""
    from toolformer_app.pipeline import run as pr
    from toolformer_app.pipeline.dated import dated_texts

    model, tok = fp32_model
    docs = dated_texts(3)
    items = [(d.id, d.text, {"date": d.date.isoformat()}) for d in docs]
    cfg = PipelineConfig(tools=("Calendar",), k=3, tau_f=-100.0)  # keep every scored call: compare them all
    once = run_pipeline(items, cfg, model, tok)
    monkeypatch.setattr(pr, "samples_needed", lambda tool, cfg: True)
    sampled = run_pipeline(items, cfg, model, tok)

    def counts(result):
        return [t.counts["Calendar"] for t in result.texts]

    positions = sum(c["positions_over_tau_s"] for c in counts(once))
    assert positions > 0
    assert sum(c["samples_drawn"] for c in counts(once)) == positions
    assert sum(c.get("samples_skipped", 0) for c in counts(once)) == positions * 4
    assert sum(c["samples_drawn"] for c in counts(sampled)) == positions * 5
    assert sum(c.get("samples_skipped", 0) for c in counts(sampled)) == 0

    def kept(result):
        return {(c.text_id, c.token_pos, c.call): round(c.loss_reduction, 5) for c in result.kept()}

    assert kept(once) and kept(once) == kept(sampled)


def test_shared_context_sampling_draws_what_padded_copies_draw(fp32_model, monkeypatch):
    """The two ways of holding the context while sampling (shared in place; left-padded copies for
    models without the attention interface) give the same samples."""
    from toolformer_app.pipeline import shared_attention

    model, tok = fp32_model
    tool, _, api, cfg, scored = _two_texts(model, tok)
    requests = [(0, [4, 17]), (1, [9, 20])]
    assert shared_attention.supported(model)
    shared = sample_calls_batch(model, tok, scored, requests, 3, cfg, api, tool.name)
    monkeypatch.setattr(shared_attention, "supported", lambda model: False)
    padded = sample_calls_batch(model, tok, scored, requests, 3, cfg, api, tool.name)
    assert [[s.token_ids for s in at] for at in shared] == [[s.token_ids for s in at] for at in padded]
    assert model.config._attn_implementation == "sdpa"  # restored after sampling


def test_clause_calls_give_qa_its_statement_and_the_filter_decides(real_model):
    """With ``clause_calls=("QA",)`` each chosen position also gets QA(<the clause so far>), executed by the real
    reader (its own article left out) and scored like a sampled call."""
    model, tok = real_model
    text = "Mount Kilimanjaro is in northern Tanzania. The capital of Kenya is Nairobi, a city of four million."
    cfg = PipelineConfig(tools=("QA",), k=5, tau_s=0.0, tau_f=-100.0, batch_size=1, clause_calls=("QA",))
    res = run_pipeline([("t0", text, {"title": "Nairobi"})], cfg, model, tok)
    counts = res.texts[0].counts["QA"]
    clause = [c for c in res.texts[0].candidates if c.input == clause_before(text, c.char_pos)
              and len(c.input.split()) >= 3]
    assert counts["clause_calls"] >= 1 and len(clause) >= counts["clause_calls"]
    assert all(c.loss_reduction is not None for c in clause if c.result is not None)  # scored as any call
    assert PipelineConfig(tools=("QA",)).clause_calls == ()
