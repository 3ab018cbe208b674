"""Loss reductions & filter tab handlers: re-filtering is pure, exports are atomic C*."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pytest

from tests.ui.helpers import TEXT, candidate, run
from toolformer_app.ui import filter as loss_filter


def test_moving_tau_f_changes_kept_counts_without_a_model():
    r = run(reductions=(1.5, 0.8, 0.2, -0.3))
    low = loss_filter.counts_frame(r, 0.0).set_index("tool").loc["Calculator"]
    high = loss_filter.counts_frame(r, 1.0).set_index("tool").loc["Calculator"]
    assert (low["kept"], low["rejected"], low["no result"]) == (3, 1, 1)
    assert (high["kept"], high["rejected"]) == (1, 3)
    summary, hist, _ = loss_filter.refilter(r, 1.0)
    assert "Kept at τf = 1.00: 1 of 4" in summary and "τf = 1.00" in hist


def test_table2_counts_kept_calls_at_the_paper_thresholds():
    r = run(reductions=(2.5, 1.5, 0.7, 0.2, 1.1), tools=("Calculator", "Calendar"))
    t = loss_filter.table2_frame(r).set_index("tool")
    assert t.loc["Calculator"].tolist() == [3, 2, 1]  # 2.5, 0.7, 1.1
    assert t.loc["Calendar"].tolist() == [1, 1, 0]  # 1.5, 0.2


def test_candidate_detail_shows_three_losses_and_a_token_heat_map():
    r = run()
    choices = loss_filter.candidate_choices(r, 0.3)
    assert choices[0][0].startswith("✓") and "+1.500" in choices[0][0]
    losses, heat, tokens = loss_filter.candidate_detail(r, choices[0][1], 0.3)
    assert "L<sub>i</sub>(ε)" in losses and "L⁺" in losses and "kept" in losses
    assert len(tokens) == 5 and any(isinstance(s, float) for _, s in heat)
    assert loss_filter.candidate_detail(r, None, 0.3)[0] == ""


def test_export_writes_c_star_at_tau_f_atomically_in_the_data_dir(monkeypatch):
    from toolformer_app import config

    monkeypatch.setattr(gr, "Info", lambda *a, **k: None)
    path = Path(loss_filter.export_dataset(run(reductions=(1.5, 0.2)), 1.0))
    assert path.name == "dataset.jsonl" and config.data_dir() in path.parents
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["original"] == TEXT
    assert "[Calculator(36 * 24) -> 864]" in rows[0]["text"]
    assert not list(path.parent.glob("*.tmp"))
    with pytest.raises(gr.Error, match="No call is kept"):
        loss_filter.export_dataset(run(reductions=(0.1,)), 1.0)


def test_export_without_texts_says_what_to_load():
    with pytest.raises(gr.Error, match="records.jsonl"):
        loss_filter.export_dataset(run(with_texts=False), 0.0)


def test_loading_candidates_jsonl_reports_malformed_lines_and_uses_the_rest(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: warnings.append(msg))
    path = tmp_path / "candidates.jsonl"
    lines = [json.dumps(candidate(reduction=1.0)), "{broken", json.dumps({"foo": 1}), json.dumps(candidate(reduction=0.1))]
    path.write_text("\n".join(lines) + "\n")
    r = loss_filter.load_run_file(str(path))
    assert len(r["candidates"]) == 2 and r["texts"] == []
    assert "line 2" in warnings[0] and "line 3" in warnings[0]


def test_a_binary_candidates_upload_is_refused(tmp_path):
    path = tmp_path / "candidates.jsonl"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(gr.Error, match="binary"):
        loss_filter.load_run_file(str(path))


def test_a_saved_run_in_the_data_dir_loads_with_its_texts(monkeypatch):
    from toolformer_app import config

    out = config.data_dir() / "my-run"
    out.mkdir()
    cands = run()["candidates"]
    (out / "candidates.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cands))
    (out / "records.jsonl").write_text(json.dumps({"text_id": "1", "text": TEXT, "candidates": cands}) + "\n")
    listed = loss_filter.saved_runs()
    assert listed and listed[0][0] == "my-run"
    r = loss_filter.load_saved_run(listed[0][1])
    assert len(r["candidates"]) == len(cands) and r["texts"][0]["text"] == TEXT
