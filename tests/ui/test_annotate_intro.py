"""The Annotate tab opens with an example selected and one line on what Annotate does and how long it takes."""

from __future__ import annotations

import json

from toolformer_app import config
from toolformer_app.ui import annotate, annotate_intro


def _component(demo, elem_id: str) -> dict:
    return next(c for c in demo.get_config_file()["components"] if c.get("props", {}).get("elem_id") == elem_id)


def test_tab_opens_with_an_example_text_and_the_line_on_time():
    from toolformer_app.ui import build_demo

    demo = build_demo()
    orchard = annotate.example_texts()[annotate.DEFAULT_EXAMPLE]
    assert _component(demo, "annotate-text")["props"]["value"] == orchard
    assert _component(demo, "annotate-example")["props"]["value"] == annotate.DEFAULT_EXAMPLE
    line = _component(demo, "annotate-intro")["props"]["value"]
    assert "\n" not in line and "s per text" in line and "on this machine (" in line
    assert "Calculator and Calendar" in line


def test_estimate_comes_from_the_last_run_on_this_machine_once_there_is_one():
    model = config.default_model()
    assert "estimated)" in annotate_intro.intro_line(["Calculator"], model) or \
        "a few seconds" in annotate_intro.intro_line(["Calculator"], model)
    annotate_intro.record(42.0, 2, ["Calculator", "Calendar"], model)  # 10.5 s per text and tool
    saved = json.loads((config.data_dir() / annotate_intro.TIMING_FILE).read_text())
    assert saved["seconds_per_text_tool"] == 10.5
    assert "about 21 s per text on this machine" in annotate_intro.intro_line(
        ["Calculator", "Calendar"], model)
    assert "timed on the last run" in annotate_intro.intro_line(["Calculator"], model)
    assert "last run" not in annotate_intro.intro_line(["Calculator"], "another-model")
    annotate_intro.record(0.0, 0, [], model)  # nothing to learn from: the file stays
    assert json.loads((config.data_dir() / annotate_intro.TIMING_FILE).read_text()) == saved


def test_on_a_public_deployment_a_visitor_s_run_is_never_written(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "test/toolformer-studio")
    monkeypatch.setattr(annotate_intro, "_in_memory", {})
    model = config.default_model()
    annotate_intro.record(600.0, 1, ["Calculator"], model)  # a visitor's slow run
    assert not (config.data_dir() / annotate_intro.TIMING_FILE).exists()
    assert "about 600 s" in annotate_intro.intro_line(["Calculator"], model)  # this process only
    monkeypatch.setattr(annotate_intro, "_in_memory", {})  # the next start
    assert "last run" not in annotate_intro.intro_line(["Calculator"], model)
