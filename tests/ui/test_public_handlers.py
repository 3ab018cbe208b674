"""Handlers hardened for a public Space: Stop ends an evaluation, bounded inputs, validated uploads."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import gradio as gr
import pytest

from toolformer_app.ui import runtime


@pytest.fixture
def warnings(monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: seen.append(msg))
    monkeypatch.setattr(gr, "Info", lambda msg, *a, **k: None)
    return seen


@pytest.fixture
def slow_evaluation(monkeypatch):
    """runner.evaluate stand-in: 0.05 s per item, calling progress after each, as the real one does."""
    from toolformer_app.evaluation import runner

    calls: dict = {"items": 0, "limit": None, "finished": False}

    def fake(name, *, config, out_dir, progress):
        calls["limit"] = config.limit
        for i in range(config.limit):
            time.sleep(0.05)
            calls["items"] += 1
            progress("math/base", i + 1, config.limit)
        calls["finished"] = True
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "results.json").write_text("{}")
        return {"suites": {}, "timing_s": {"total": 1.0}}

    monkeypatch.setattr(runtime, "get_model", lambda name: (None, None))
    monkeypatch.setattr(runner, "evaluate", fake)
    monkeypatch.setattr(runner, "format_table", lambda results: "table")
    return calls


def test_stopping_an_evaluation_stops_it_between_items(slow_evaluation, monkeypatch, warnings):
    from toolformer_app.ui import evaluate

    monkeypatch.setenv("TOOLFORMER_MAX_EVAL_ITEMS", "1000")
    gen = evaluate.run_evaluation("smollm2-135m", ["math"], ["base"], 1000, 10)
    next(gen)  # running: the first update after a second
    gen.close()  # what Stop and a client's cancel do
    at_close = slow_evaluation["items"]
    time.sleep(0.5)
    assert slow_evaluation["items"] <= at_close + 1, "the worker went on after Stop"
    assert not slow_evaluation["finished"]
    assert not any(t.name == "toolformer-eval" and t.is_alive() for t in threading.enumerate())
    assert not list((Path(os.environ["TOOLFORMER_DATA_DIR"]) / "evals").rglob("results.json"))


def test_items_per_suite_are_capped_by_the_setting(slow_evaluation, monkeypatch, warnings):
    from toolformer_app.ui import evaluate

    monkeypatch.setenv("TOOLFORMER_MAX_EVAL_ITEMS", "3")
    *_, (table, path) = list(evaluate.run_evaluation("smollm2-135m", ["math"], ["base"], 1_000_000, 10))
    assert slow_evaluation["limit"] == 3 and Path(path).name == "results.json"
    assert warnings and "TOOLFORMER_MAX_EVAL_ITEMS" in warnings[0]


def test_on_a_space_the_model_field_gives_one_message_for_every_refused_path(tmp_path, monkeypatch):
    from toolformer_app import models
    from toolformer_app.ui import annotate, chat, evaluate

    monkeypatch.setenv("SPACE_ID", "someone/toolformer")
    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("a refused model must not be loaded"))
    (tmp_path / "exists").mkdir()
    (tmp_path / "exists" / "config.json").write_text("{}")
    messages = set()
    for name in (str(tmp_path / "exists"), str(tmp_path), str(tmp_path / "missing"), "/etc", "/nonexistent/x"):
        for run in (lambda n: next(annotate.run_annotation("2 + 2 = 4.", ["Calculator"], n, True, 0.0, 1, 1, 1.0)),
                    lambda n: next(evaluate.run_evaluation(n, ["math"], ["base"], 1, 10)),
                    lambda n: list(chat.respond("1 + 1 =", [], [], n, 10, 1, ["Calculator"], 8, False, "plain",
                                                False))):
            with pytest.raises(gr.Error) as err:
                run(name)
            messages.add(str(err.value.message if hasattr(err.value, "message") else err.value))
        assert name not in runtime.status_line()
    assert len(messages) == 1 and "not available here" in messages.pop()


def _candidate_line(**changes) -> str:
    from tests.ui.helpers import candidate

    return json.dumps({**candidate(), **changes})


def test_filter_upload_reports_every_bad_field_by_line_and_the_tab_still_renders(tmp_path, warnings):
    from toolformer_app.ui import filter as loss_filter

    lines = [
        _candidate_line(),
        _candidate_line(loss_reduction="NaN"),
        _candidate_line().replace('"loss_reduction": 1.0', '"loss_reduction": NaN'),
        _candidate_line().replace('"loss_reduction": 1.0', '"loss_reduction": Infinity'),
        _candidate_line(p_i=None),
        _candidate_line(char_pos=-5),
        _candidate_line(tool="<img src=x onerror=alert(1)>"),
        _candidate_line(logprobs_result=[-0.3, "x"]),
        _candidate_line(token_pos=True),
    ]
    path = tmp_path / "candidates.jsonl"
    path.write_text("\n".join(lines) + "\n")
    run = loss_filter.load_run_file(str(path))
    assert len(run["candidates"]) == 1
    for n in range(2, 10):
        assert f"line {n}" in warnings[0] or "and 5 more" in warnings[0]
    assert "loss_reduction must be a finite number" in warnings[0]
    outputs = loss_filter.on_new_run(run, 0.3)  # the histogram and the tables render
    assert "Kept at τf = 0.30: 1 of 1" in outputs[0]


def test_export_refuses_candidates_outside_their_text_and_keeps_text_byte_identical(tmp_path, warnings):
    from tests.ui.helpers import TEXT, candidate
    from toolformer_app.calls import strip_calls
    from toolformer_app.ui import filter as loss_filter

    bad = [candidate(char_pos=-5), candidate(char_pos=len(TEXT) + 3), candidate(tool="<img src=x onerror=alert(1)>")]
    good = candidate()
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"text_id": "1", "text": TEXT, "candidates": [*bad, good]}) + "\n")
    run = loss_filter.load_run_file(str(path))
    assert len(run["candidates"]) == 1 and "past the end" in warnings[0]
    out = Path(loss_filter.export_dataset(run, 0.3))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["text"].count("[Calculator(") == 1
    assert strip_calls(rows[0]["text"]) == TEXT
    run["candidates"].append({**good, "char_pos": -5, "loss_reduction": 2.0})  # a run that skipped the checks
    with pytest.raises(gr.Error, match="outside the text"):
        loss_filter.export_dataset(run, 0.3)


def test_jsonl_line_numbers_count_file_lines_in_the_annotate_warning(tmp_path, warnings):
    from toolformer_app.pipeline.corpus import load_texts
    from toolformer_app.ui import annotate

    rows = [{"text": "one"}, {"text": "two"}, {"text": ""}, {"text": "four"}, {"text": "five"}, {}, {"text": " "},
            {"text": "eight"}]
    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    errors: list[str] = []
    items = load_texts(str(path), errors=errors)
    assert [i for i, _ in items] == ["line:1", "line:2", "line:4", "line:5", "line:8"]
    assert errors == [f'line {n}: no non-empty "text" field' for n in (3, 6, 7)]
    annotate.load_upload(str(path))
    assert "line 3" in warnings[0] and "line 6" in warnings[0] and "line 7" in warnings[0]


def test_uploads_are_checked_whole_and_extensions_match_in_any_case(tmp_path, warnings):
    import random

    from toolformer_app.ui import annotate, finetune
    from toolformer_app.ui import filter as loss_filter

    rng = random.Random(0)
    junk = b"A" * 5000 + bytes(rng.randrange(256) for _ in range(4000))
    for name, load in (("junk.txt", annotate.load_upload), ("junk.jsonl", loss_filter.load_run_file),
                       ("junk.jsonl", finetune.upload_dataset)):
        path = tmp_path / name
        path.write_bytes(junk)
        with pytest.raises(gr.Error, match="binary") as err:
            load(str(path))
        assert "\n" not in str(err.value) and str(tmp_path) not in str(err.value)
    upper = tmp_path / "upper.JSONL"
    upper.write_text(json.dumps({"text": "First: 2 + 2 = 4."}) + "\n" + json.dumps({"text": "Second."}) + "\n")
    assert annotate.load_upload(str(upper)) == "First: 2 + 2 = 4.\n\nSecond."  # parsed as JSONL, not as text


def test_a_refused_launch_writes_nothing(monkeypatch):
    from tests.ui.helpers import run as make_run
    from toolformer_app import config, training
    from toolformer_app.training import FinetuneConfig
    from toolformer_app.training.jobs import create_job, jobs_root
    from toolformer_app.ui import finetune

    monkeypatch.delenv("TOOLFORMER_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    data = str(finetune.EXAMPLE_DATASET)
    running = create_job(FinetuneConfig(data=data))  # queued: counts as active
    with pytest.raises(gr.Error, match="Only one finetune runs at a time"):
        finetune.launch("", "smollm2-135m", finetune.CURRENT, make_run(), 0.3, False, 0, 2, 1, 1, 2, 32, 2, 0.1)
    with pytest.raises(training.JobConflictError):
        create_job(FinetuneConfig(data=data), job_id="ft-refused-1")
    with pytest.raises(training.JobConflictError):
        training.start_job(FinetuneConfig(data=data), job_id="ft-refused-2")
    assert [p.name for p in jobs_root().iterdir()] == [running.id]
    assert not (config.data_dir() / "datasets").exists()  # the current run was not exported either


def test_annotate_summary_does_not_advise_a_lower_tau_s_when_no_heuristic_selected_the_text():
    from toolformer_app.ui import annotate

    def run_with(counts):
        text = {"text_id": "1", "text": "No numbers here.", "tokens": ["No"], "char_starts": [0],
                "position_scores": {}, "counts": {"Calculator": counts}}
        return {**annotate.empty_run(), "texts": [text], "tools": ["Calculator"], "model": "m"}

    skipped = annotate.summary_markdown(run_with({"texts_seen": 1, "texts_selected": 0}))
    assert "lower τs" not in skipped and "try a" not in skipped and "heuristic" in skipped
    scored = annotate.summary_markdown(run_with({"texts_seen": 1, "texts_selected": 1, "positions_over_tau_s": 0}))
    assert "try a lower τs" in scored


def test_a_megabyte_of_unclosed_calls_in_a_finetune_upload_is_handled_in_bounded_time(tmp_path, warnings):
    from toolformer_app.ui import finetune

    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps({"text": "x [a(" * 10_000}) + "\n" for _ in range(20)))  # ~1 MB
    t0 = time.perf_counter()
    with pytest.raises(gr.Error, match="API call"):
        finetune.upload_dataset(str(path))
    assert time.perf_counter() - t0 < 5.0  # was 33 s: the parser rescanned the text from every "["


def test_with_the_allow_list_only_allowed_presets_are_offered(monkeypatch):
    """gemma3-270m was in the model Literal of /finetune and /evaluate, then refused when chosen."""
    from toolformer_app.ui.blocks import Shared

    monkeypatch.setenv("SPACE_ID", "someone/toolformer")
    monkeypatch.setenv("TOOLFORMER_ALLOWED_MODELS", "smollm2-135m")
    values = [v for _, v in Shared.model_choices(include_checkpoints=True)]
    assert "smollm2-135m" in values and "gemma3-270m" not in values
    monkeypatch.delenv("TOOLFORMER_ALLOWED_MODELS")
    assert "gemma3-270m" in [v for _, v in Shared.model_choices()]  # no allow-list: every preset
