"""Annotate tab handlers, called directly (a tiny random model stands in for the real one)."""

from __future__ import annotations

import json

import gradio as gr
import pytest

from toolformer_app.ui import annotate, runtime


def test_empty_text_is_a_one_line_error():
    with pytest.raises(gr.Error, match="empty"):
        annotate.prepare_texts("   \n\n ")


def test_a_1mb_paste_is_cut_at_the_configured_limit_with_a_note(monkeypatch):
    monkeypatch.setenv("TOOLFORMER_MAX_TEXT_CHARS", "5000")
    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: warnings.append(msg))
    items = annotate.prepare_texts("Twelve eggs cost 3 dollars. " * 40_000)  # ~1.1 MB
    assert sum(len(t) for _, t in items) <= 5000
    assert warnings and "TOOLFORMER_MAX_TEXT_CHARS" in warnings[0]


def test_blank_lines_separate_texts_and_their_number_is_capped(monkeypatch):
    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: warnings.append(msg))
    items = annotate.prepare_texts("\n\n".join(f"Text {i} has 3 + 4 = 7." for i in range(30)))
    assert len(items) == runtime.MAX_UI_TEXTS and items[0] == ("1", "Text 0 has 3 + 4 = 7.")
    assert warnings


def test_binary_upload_is_refused_with_one_line(tmp_path):
    path = tmp_path / "blob.txt"
    path.write_bytes(b"\x00\x01\x02binary" * 100)
    with pytest.raises(gr.Error, match="binary") as exc:
        annotate.load_upload(str(path))
    assert "\n" not in str(exc.value) and str(tmp_path) not in str(exc.value)


def test_malformed_jsonl_line_is_reported_by_number_and_the_other_lines_are_used(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: warnings.append(msg))
    path = tmp_path / "texts.jsonl"
    path.write_text(json.dumps({"text": "First: 2 + 2 = 4."}) + "\n{not json\n" + json.dumps({"text": "Third."}) + "\n")
    text = annotate.load_upload(str(path))
    assert text == "First: 2 + 2 = 4.\n\nThird."
    assert len(warnings) == 1 and "line 2" in warnings[0]


def test_examples_are_shipped_and_load():
    examples = annotate.example_texts()
    assert "orchard" in examples
    assert annotate.load_example("orchard").startswith("The orchard")


def test_tool_defaults_prefill_the_advanced_settings():
    from toolformer_app.tools import get_tool

    tau_s, k, m, note = annotate.tool_defaults(["Calculator"])
    th = get_tool("Calculator").thresholds
    assert (tau_s, k, m) == (th.tau_s, th.k, th.m)
    assert "differ" in annotate.tool_defaults(["Calculator", "Calendar"])[3]


def test_no_tool_chosen_is_an_error():
    with pytest.raises(gr.Error, match="at least one tool"):
        annotate.make_config([], True, 0.01, 5, 5, 1.0)


def test_a_model_that_cannot_be_loaded_is_a_one_line_error():
    gen = annotate.run_annotation("Twelve eggs cost 3 dollars.", ["Calculator"], "no-such-model", True, 0.01, 5, 5,
                                  1.0)
    with pytest.raises(gr.Error) as exc:
        next(gen)
    assert "no-such-model" in str(exc.value) and "\n" not in str(exc.value)


def test_annotation_streams_plain_data_and_renders_every_output(tiny_model, monkeypatch):
    monkeypatch.setattr(runtime, "get_model", lambda name: tiny_model)
    text = "The orchard has 36 rows of 24 trees, so 864 trees.\n\nA box of 12 eggs, 35 boxes: 420 eggs."
    outs = list(annotate.run_annotation(text, ["Calculator"], "tiny", False, 0.0, 3, 2, 1.0))
    assert len(outs) == 2  # one update per text: the table fills in live
    run, text_pick, heat_tool, heat, marked, table, summary = outs[-1]
    json.dumps(run)  # session state is plain data
    assert [t["text_id"] for t in run["texts"]] == ["1", "2"]
    assert all(isinstance(s, float) or s is None for _, s in heat)
    first = run["texts"][0]
    assert len(first["position_scores"]["Calculator"]) == len(first["tokens"]) == len(first["char_starts"])
    assert "".join(s for s, _ in heat) == run["texts"][0]["text"]
    # a random model's sampled calls rarely parse; whatever was sampled is highlighted and tabled
    assert sum(1 for _, label in marked if label) == sum(c["text_id"] == "1" for c in run["candidates"])
    assert list(table.columns)[:3] == ["text", "tool", "position"] and len(table) == len(run["candidates"])
    assert "6 positions over τs" in summary and text_pick["visible"] is True
    heat2, marked2 = annotate.show_text(run, "2", "Calculator")
    assert "".join(s for s, _ in heat2) == run["texts"][1]["text"]


def _dated_upload(tmp_path):
    path = tmp_path / "dated.jsonl"
    rows = [{"id": "news:7", "text": "The shop opened 3 years ago.", "date": "2019-05-14"},
            {"id": "news:8", "text": "We met again last week.", "date": "2021-11-02"},
            {"text": "A text with no date."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_an_uploaded_jsonl_keeps_its_ids_and_dates_and_the_calendar_returns_them(tmp_path, monkeypatch):
    """The upload's ids and "date" fields reach the pipeline, so the Calendar answers with them."""
    import toolformer_app.pipeline as pipeline
    from toolformer_app.tools import get_tool

    text, uploaded = annotate.on_upload(str(_dated_upload(tmp_path)))
    assert text == annotate.load_upload(str(_dated_upload(tmp_path)))
    assert text == "The shop opened 3 years ago.\n\nWe met again last week.\n\nA text with no date."
    items = annotate.prepare_items(text, uploaded)
    assert [(i, m) for i, _, m in items] == [("news:7", {"date": "2019-05-14"}), ("news:8", {"date": "2021-11-02"}),
                                             ("line:3", None)]
    # the annotate handler hands these items to run_pipeline (no model: both are stood in for)
    seen = []

    class Result:
        texts: list = []

    monkeypatch.setattr(runtime, "get_model", lambda name: (None, None))
    monkeypatch.setattr(pipeline, "run_pipeline", lambda batch, *a, **k: seen.extend(batch) or Result())
    list(annotate.run_annotation(text, ["Calendar"], "tiny", True, 0.0, 1, 1, 1.0, uploaded))
    assert seen == items
    calendar = get_tool("Calendar")
    answers = [calendar.for_document(meta).run("").output for _, _, meta in seen[:2]]
    assert "May 14, 2019" in answers[0] and "November 2, 2021" in answers[1]
    # an edited box is the box's own texts, numbered as typed
    edited = annotate.prepare_items(text + " More.", uploaded)
    assert [i for i, _ in edited] == ["1", "2", "3"] and all(len(it) == 2 for it in edited)
    assert annotate.prepare_items(text, None) == [("1", items[0][1]), ("2", items[1][1]), ("3", items[2][1])]


def test_repeated_ids_in_an_upload_stay_separate_texts(tmp_path):
    path = tmp_path / "twice.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "One."}) + "\n" + json.dumps({"id": "a", "text": "Two."}) + "\n")
    text, uploaded = annotate.on_upload(str(path))
    assert [i for i, _, _ in annotate.prepare_items(text, uploaded)] == ["a", "a~2"]
