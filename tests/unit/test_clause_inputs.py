"""Clause-input decoding and per-tool call thresholds: one decision path for single and batched decoding.

A model finetuned on clause calls (``generate --clause-calls QA``) learns *when* to ask QA; the decoder writes
what it was trained on after "[QA(": the clause so far (``pipeline.sampling.clause_before``) and ")".
"""

from __future__ import annotations

import json

from tests.unit.test_batched import Counting, PositionScripted, _strip, scripts
from tests.unit.test_row_decoder import Counting as Recording
from toolformer_app import models
from toolformer_app.decoding import BatchDecoder, InferenceConfig, run_with_tools
from toolformer_app.pipeline.sampling import clause_before

CLAUSE = InferenceConfig(max_new_tokens=12, ignore_eos=True, clause_inputs=("QA",))
CASES = [  # (prompt, scripted continuation, config)
    ("Please complete the text: The capital of Kenya is", " [QA(", CLAUSE),
    ("Answer the following question: What is the capital of Peru?", " [QA(", CLAUSE),
    ("Mali lies in West Africa, and its capital is", " [QA(Bamako) ->", InferenceConfig(max_new_tokens=12)),  # paper
    ("Ann had 8 pens", " and lost [Calculator(8 - 3) ->",
     InferenceConfig(max_new_tokens=14, tool_thresholds={"Calculator": 0.5, "QA": 1.01})),
    ("Bob had 9 red pens on the old desk today", " but gave away [Calculator(9 - 4) ->",
     InferenceConfig(max_new_tokens=14, ignore_eos=True, tool_thresholds={"Calculator": 1.01}, call_threshold=0.5)),
]


def _tools():
    return {"QA": Recording(lambda s: "Nairobi"), "Calculator": Counting()}


def test_the_decoder_writes_the_clause_so_far_as_the_qa_input(tiny_model):
    model, tok = tiny_model
    model = PositionScripted(model, scripts(tok, [(p, t) for p, t, _ in CASES]))
    results = [run_with_tools(model, tok, p, _tools(), cfg) for p, _, cfg in CASES]
    kenya, peru, mali = (r.calls[0] for r in results[:3])
    assert kenya.input == clause_before(CASES[0][0], len(CASES[0][0])) == "The capital of Kenya is"
    assert peru.input == "What is the capital of Peru?"  # a question is the clause it ends
    assert (kenya.input_by, peru.input_by, mali.input_by) == ("decoder", "decoder", "model")
    assert results[0].text.startswith(" [QA(The capital of Kenya is) -> Nairobi]")
    assert kenya.text == " [QA(The capital of Kenya is) -> Nairobi]" and kenya.ok
    assert mali.input == "Bamako"  # without the setting, the model's own input (the paper)
    assert results[0].stats.prefix_tokens_reencoded == 0
    assert tok.decode(results[0].token_ids) == results[0].text
    # the written input is not the model's choice: max_new_tokens counts only what the model chose
    assert results[0].stats.tokens_generated <= CLAUSE.max_new_tokens < len(results[0].token_ids)


def test_per_tool_thresholds_decide_on_the_name_the_model_would_write(tiny_model):
    model, tok = tiny_model
    model = PositionScripted(model, scripts(tok, [(p, t) for p, t, _ in CASES]))
    ann, bo = (run_with_tools(model, tok, p, _tools(), cfg) for p, _, cfg in CASES[3:])
    assert [c.tool for c in ann.calls] == ["Calculator"] and ann.calls[0].output == "5"
    # p(" [") ~ 1 passes the gate (0.5) but not the Calculator's own 1.01: declined there, cropped, no call
    assert bo.calls == [] and bo.stats.calls_declined >= 1 and "[" not in bo.text
    assert bo.stats.prefix_tokens_reencoded == 0


def test_batched_rows_make_the_same_clause_calls_as_each_alone(tiny_model):
    model, tok = tiny_model
    model = PositionScripted(model, scripts(tok, [(p, t) for p, t, _ in CASES]))
    alone = [run_with_tools(model, tok, p, _tools(), cfg) for p, _, cfg in CASES]
    decoder = BatchDecoder(model, tok, max_rows=3)
    tools = _tools()
    ids = [decoder.submit(p, tools, cfg) for p, _, cfg in CASES]
    events: dict[int, list] = {i: [] for i in ids}
    for rid, event in decoder.run():
        events[rid].append(event)
    for rid, single in zip(ids, alone, strict=True):
        assert [_strip(e) for e in events[rid]] == [_strip(e) for e in single.events]
    assert sorted(tools["QA"].inputs) == ["Bamako", "The capital of Kenya is", "What is the capital of Peru?"]


def test_the_card_turns_clause_inputs_and_per_tool_thresholds_on(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "toolformer_card.json").write_text(json.dumps({"calling": {"call_threshold": 0.03}}))
    trained = tmp_path / "clause"
    trained.mkdir()
    (trained / "toolformer_card.json").write_text(json.dumps({
        "calling": {"call_threshold": 0.03, "per_tool": {"QA": {"call_threshold": 0.2}, "Calculator": 0.01,
                                                          "MT": {"call_threshold": None}}},
        "inference": {"clause_inputs": ["QA"]}}))
    assert models.clause_inputs(str(plain)) == () and models.tool_thresholds(str(plain)) == {}
    assert models.clause_inputs(str(trained)) == ("QA",)
    assert models.tool_thresholds(str(trained)) == {"QA": 0.2, "Calculator": 0.01}
    cfg = models.card_inference(str(trained))
    assert cfg == {"call_threshold": 0.03, "tool_thresholds": {"QA": 0.2, "Calculator": 0.01},
                   "clause_inputs": ("QA",)}
    assert models.card_inference(str(plain)) == {"call_threshold": 0.03, "tool_thresholds": None,
                                                 "clause_inputs": ()}
    assert models.card_inference(None) == {"call_threshold": None, "tool_thresholds": None, "clause_inputs": ()}


def test_eval_takes_the_clause_inputs_and_per_tool_thresholds_from_the_card(tmp_path):
    from toolformer_app.evaluation.config import EvalConfig
    from toolformer_app.evaluation.report import format_table
    from toolformer_app.evaluation.runner import card_settings

    (tmp_path / "toolformer_card.json").write_text(json.dumps({
        "calling": {"call_threshold": 0.03, "per_tool": {"QA": {"call_threshold": 0.2}}},
        "inference": {"clause_inputs": ["QA"]}}))
    top_k = EvalConfig()
    card_settings(top_k, str(tmp_path))
    assert top_k.clause_inputs == ("QA",) and top_k.tool_thresholds is None  # top-k: no thresholds at all
    calibrated = EvalConfig(call_threshold=0.03)
    card_settings(calibrated, str(tmp_path))
    assert calibrated.tool_thresholds == {"QA": 0.2}
    paper = EvalConfig(clause_inputs=())  # `eval --clause-inputs none`: the model writes every input
    card_settings(paper, str(tmp_path))
    assert paper.clause_inputs == ()
    table = format_table({"model": "m", "clock": "2023-01-30", "config": {"clause_inputs": ["QA"]}, "suites": {}})
    assert "inputs written by the decoder (the clause so far): QA" in table.splitlines()[0]


def test_per_tool_calibration_counts_a_text_for_a_tool_only_where_the_model_would_name_it():
    from toolformer_app.evaluation.calibrate import per_tool_thresholds, qa_positive_prompts

    calc = [(0.5, "Calculator"), (0.4, "Calculator"), (0.3, "QA")]
    qa = [(0.2, "QA"), (0.25, "QA"), (0.6, "Calculator")]
    negatives = [(0.01, ""), (0.02, "WikiSearch"), (0.05, "QA")] * 10
    out = per_tool_thresholds({"Calculator": calc, "QA": qa}, negatives, max_fpr=0.1)
    # QA: the arithmetic text named QA (0.3) and the negatives named QA (0.05) count against it; 0.2 calls on both
    # QA-named positives with 1 false call in 33
    assert out["QA"]["call_threshold"] == 0.2 and out["QA"]["tpr"] == round(2 / 3, 4)
    assert out["QA"]["named"] == round(2 / 3, 4) and out["Calculator"]["call_threshold"] == 0.4
    prompts = qa_positive_prompts(128, 20)
    assert prompts and all(p.endswith(("?", " is")) for p in prompts)
