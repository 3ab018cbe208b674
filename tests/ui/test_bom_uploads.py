"""A UTF-8 BOM (what some editors write first) costs no line and no character, in every reader."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pytest

from toolformer_app.training.data import load_texts
from toolformer_app.ui import annotate, finetune
from toolformer_app.ui import filter as loss_filter

BOM = "\ufeff"
CALC = "Out of 1400 participants, 400 [Calculator(400 / 1400) -> 0.29] 29% passed the test."


@pytest.fixture
def said(monkeypatch):
    out: list[str] = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: out.append(msg))
    monkeypatch.setattr(gr, "Info", lambda msg, *a, **k: out.append(msg))
    return out


def _bom_file(path: Path, rows: list[dict]) -> Path:
    path.write_text(BOM + "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_finetune_data_keeps_its_first_line(tmp_path, said):
    data = _bom_file(tmp_path / "data.jsonl", [{"text": CALC}, {"text": CALC + " Again."}])
    loaded = load_texts(data)
    assert loaded.lines == 2 and not loaded.skipped_malformed and len(loaded.texts) == 2
    finetune.upload_dataset(str(data), None)  # the Finetune tab's upload: no warning about line 1
    assert not [m for m in said if "line" in m.lower() and "1" in m], said


def test_a_filter_upload_keeps_its_first_candidate(tmp_path, said):
    cand = {"text_id": "1", "tool": "Calculator", "token_pos": 3, "char_pos": 5, "p_i": 0.4, "input": "1 + 1",
            "loss_reduction": 0.5}
    run = loss_filter.load_run_file(str(_bom_file(tmp_path / "candidates.jsonl", [cand, {**cand, "char_pos": 9}])))
    assert len(run["candidates"]) == 2 and not [m for m in said if "line 1" in m], said


def test_annotate_uploads_and_pastes_hold_no_bom(tmp_path):
    txt = tmp_path / "texts.txt"
    txt.write_text(BOM + "First text.\n\nSecond text.\n", encoding="utf-8")
    jsonl = _bom_file(tmp_path / "texts.jsonl", [{"text": "First text."}, {"text": "Second text."}])
    for path in (txt, jsonl):
        upload = annotate.read_upload(str(path))
        assert upload["text"].startswith("First text.") and all(BOM not in d["text"] for d in upload["items"])
    from toolformer_app.ui import runtime

    assert runtime.checked_input(BOM + "A pasted text.", "empty") == "A pasted text."
