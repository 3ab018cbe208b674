"""The user's tools in the app: loaded from <data dir>/tools/ only, offered in Annotate and Chat, errors shown."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
import pytest

from toolformer_app import tools
from toolformer_app.ui import annotate, chat, user_tools

UNITS = Path(__file__).resolve().parents[2] / "examples" / "tools" / "units.py"


@pytest.fixture
def data_tools(monkeypatch):
    monkeypatch.setattr(tools, "_USER_TOOLS", {})
    folder = Path(os.environ["TOOLFORMER_DATA_DIR"]) / "tools"
    folder.mkdir(parents=True)
    (folder / "units.py").write_text(UNITS.read_text())
    (folder / "broken.py").write_text("x = 1\n\nraise ValueError('no converter table')\n")
    yield folder
    user_tools._loaded.clear()
    user_tools._errors.clear()


def test_data_dir_tools_appear_beside_the_built_in_five(data_tools):
    names, errors = user_tools.load()
    assert names == ["Units"]
    assert user_tools.choices() == [*tools.TOOL_NAMES, "Units"]
    assert errors == ["tools/broken.py:3: ValueError: no converter table"]
    note = user_tools.notice()
    assert "Units" in note and "tools/broken.py:3" in note and len(note.split("\n")) == 2

    cfg = annotate.make_config(["Units", "Calculator"], True, 0.01, 5, 5, 1.0)
    assert cfg.tools == ("Units", "Calculator")
    assert annotate.tool_defaults(["Units"])[:3] == (0.003, 5, 5)
    assert chat.make_config(10, 1, ["Units"], 32, True, "plain").tools == ("Units",)


def test_without_tool_files_only_the_five_and_no_notice(monkeypatch):
    monkeypatch.setattr(tools, "_USER_TOOLS", {})
    assert user_tools.load() == ([], [])
    assert user_tools.choices() == list(tools.TOOL_NAMES) and user_tools.notice() == ""
    with pytest.raises(gr.Error, match="at least one tool"):
        annotate.make_config(["Units"], True, 0.01, 5, 5, 1.0)  # a name typed in the browser loads nothing


def test_the_built_app_offers_the_data_dir_tool(data_tools):
    from toolformer_app.ui import build_demo

    demo = build_demo()
    config = demo.get_config_file()
    groups = [c for c in config["components"] if c.get("props", {}).get("elem_id") in ("annotate-tools",
                                                                                      "chat-tools-enabled")]
    assert len(groups) == 2
    for group in groups:
        assert [c[0] if isinstance(c, list | tuple) else c for c in group["props"]["choices"]][-1] == "Units"
