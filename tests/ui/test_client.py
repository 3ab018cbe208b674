"""gradio_client against the launched app: the endpoints a script would use (real default model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ORCHARD = (Path(__file__).resolve().parents[2] / "assets" / "examples" / "orchard.txt").read_text().strip()
COWS = (Path(__file__).resolve().parents[2] / "assets" / "examples" / "chat" / "calculator_cows.txt").read_text()


@pytest.fixture(scope="module")
def annotated(app_url):
    """One client session that annotated the orchard text (Calculator, k=2, m=2)."""
    from gradio_client import Client

    c = Client(app_url, verbose=False)
    out = c.predict(ORCHARD, ["Calculator"], "smollm2-135m", False, 0.003, 2, 2, 1.0, api_name="/annotate")
    return c, out


def test_annotate_returns_candidates_heat_map_and_highlights(annotated):
    _, (text_pick, heat_tool, heat, marked, table, summary) = annotated
    assert table["headers"][:4] == ["text", "tool", "position", "call"]
    assert table["data"], "the orchard text must get Calculator candidates"
    assert all(row[1] == "Calculator" for row in table["data"])
    assert "".join(t["token"] for t in heat) == ORCHARD
    assert any(isinstance(t["class_or_confidence"], float) and t["class_or_confidence"] > 0.5 for t in heat)
    assert any(t["class_or_confidence"] in ("Calculator", "no result") for t in marked)
    assert "Calculator" in summary


def test_refilter_at_a_new_tau_f_changes_the_kept_count_without_a_model_pass(annotated):
    c, (*_, table, _) = annotated
    scored = sum(1 for row in table["data"] if row[6] is not None and row[6] == row[6])
    low = c.predict(-1.0, None, api_name="/refilter")
    high = c.predict(4.0, None, api_name="/refilter")
    assert f"Kept at τf = -1.00: {scored} of {scored}" in low[0]
    assert f"Kept at τf = 4.00: 0 of {scored}" in high[0]
    assert "τf = 4.00" in high[1]  # the line moved on the histogram
    path = c.predict(-1.0, api_name="/export_dataset")
    rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
    assert rows and rows[0]["original"] == ORCHARD and "[Calculator(" in rows[0]["text"]


def test_chat_streams_an_answer_with_a_calculator_call_event(client):
    with_tools, _, calls, stats, _ = client.predict(
        COWS.rstrip("\n"), [], [], "smollm2-135m", 10, 1, ["Calculator"], 48, True, "plain", False, 0, True,
        api_name="/chat")  # threshold 0: the paper's top-k (the API's default is the shipped model's card value)
    assert calls and calls[0]["kind"] == "call" and calls[0]["tool"] == "Calculator" and calls[0]["ok"]
    texts = [part["text"] for m in with_tools for part in m["content"] if part.get("type") == "text"]
    assert any('<mark class="tool-Calculator"' in t for t in texts)
    assert any((m.get("metadata") or {}).get("status") == "done" for m in with_tools)
    assert "1 call(s)" in stats


def test_two_sessions_do_not_see_each_others_runs(annotated, client):
    summary = client.predict(0.3, None, api_name="/refilter")[0]
    assert summary.startswith("No candidates yet")
