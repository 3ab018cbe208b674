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
    # the last column: kept calls (at 0.5) whose result copies their own text (none here)
    assert t.loc["Calculator"].tolist() == [3, 2, 1, 0]  # 2.5, 0.7, 1.1
    assert t.loc["Calendar"].tolist() == [1, 1, 0, 0]  # 1.5, 0.2


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


def _records_file(tmp_path, records: list[str]) -> str:
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(records) + "\n", encoding="utf-8")
    return str(path)


def test_a_lone_surrogate_in_an_uploaded_candidate_is_refused_by_line(tmp_path, monkeypatch):
    """Gradio cannot encode "\\ud800" in a response: the line is refused, named, and the rest loads."""
    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: warnings.append(msg))
    bad = json.dumps(candidate(inp="\ud800"))  # json.dumps writes the escape "\ud800"
    path = _records_file(tmp_path, [json.dumps(candidate(reduction=1.0)), bad])
    r = loss_filter.load_run_file(path)
    assert len(r["candidates"]) == 1
    assert "line 2: not valid text (a lone surrogate \\ud800" in warnings[0]
    json.dumps(loss_filter.on_new_run(r, 0.3)[0]).encode("utf-8")  # every output encodes


def test_a_lone_surrogate_in_a_text_never_reaches_export_and_leaves_no_folder(tmp_path, monkeypatch):
    from toolformer_app import config

    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: warnings.append(msg))
    monkeypatch.setattr(gr, "Info", lambda *a, **k: None)
    good = json.dumps({"text_id": "1", "text": TEXT, "candidates": [candidate()]})
    bad = json.dumps({"text_id": "2", "text": TEXT[:40] + "\ud800" + TEXT[41:], "candidates": [candidate(text_id="2")]})
    r = loss_filter.load_run_file(_records_file(tmp_path, [good, bad]))
    assert [t["text_id"] for t in r["texts"]] == ["1"] and "line 2: not valid text" in warnings[0]
    # a run that holds one anyway (state built elsewhere): one line, and no datasets/ folder is left
    r["texts"][0]["text"] = TEXT[:40] + "\ud800" + TEXT[41:]
    with pytest.raises(gr.Error, match=r"C\* not written: 1: not valid text \(a lone surrogate .+ud800\)"):
        loss_filter.export_dataset(r, 0.3)
    datasets = config.data_dir() / "datasets"
    assert not datasets.exists() or not any(datasets.iterdir())


def test_duplicate_text_ids_are_reported_and_never_merged_into_one_text(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: warnings.append(msg))
    monkeypatch.setattr(gr, "Info", lambda *a, **k: None)
    other = "Six times seven is here and long enough."
    first = json.dumps({"text_id": "t1", "text": TEXT, "candidates": [candidate(text_id="t1")]})
    second = json.dumps({"text_id": "t1", "text": other,
                         "candidates": [candidate(text_id="t1", char_pos=22, inp="6*7", result="42")]})
    again = json.dumps({"text_id": "t1", "text": TEXT, "candidates": [candidate(text_id="t1")]})
    r = loss_filter.load_run_file(_records_file(tmp_path, [first, second, again]))
    assert len(r["texts"]) == 1 and len(r["candidates"]) == 1
    assert warnings and "line 2: text_id 't1' already holds another text (line 1); skipped" in warnings[0]
    assert "line 3" not in warnings[0]  # the same text again (a resumed log): dropped silently
    rows = [json.loads(line) for line in Path(loss_filter.export_dataset(r, 0.3)).read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["original"] == TEXT and "6*7" not in rows[0]["text"]


def test_deeply_nested_json_in_an_upload_is_one_line_per_line(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(gr, "Warning", lambda msg, *a, **k: warnings.append(msg))
    r = loss_filter.load_run_file(_records_file(tmp_path, ["[" * 100_000 + "]" * 100_000,
                                                           json.dumps(candidate())]))
    assert len(r["candidates"]) == 1 and "line 1: not valid JSON (nested too deeply)" in warnings[0]
    with pytest.raises(gr.Error, match=r"no candidates found \(line 1: not valid JSON \(nested too deeply\)\)"):
        loss_filter.load_run_file(_records_file(tmp_path, ["[" * 100_000 + "]" * 100_000]))
