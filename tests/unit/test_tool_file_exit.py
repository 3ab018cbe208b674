"""A tool file that calls exit while it loads is a broken file: one line naming it, rc 2; the app goes on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolformer_app.tools.loader import ToolFileError, load_data_dir_tools, load_tool_file

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("code", ["import sys\nsys.exit(3)\n", "import sys\nsys.exit(0)\n", "raise SystemExit\n",
                                  "from toolformer_app.tools import Tool\nclass Quit(Tool):\n"
                                  "    name = 'Quit'\n    def __init__(self):\n        raise SystemExit(1)\n"])
def test_exit_while_loading_is_a_tool_file_error(tmp_path, code):
    path = tmp_path / "quits.py"
    path.write_text(code)
    with pytest.raises(ToolFileError, match="quits.py:"):
        load_tool_file(path)


def test_the_cli_names_the_file_and_exits_2(tmp_path):
    path = tmp_path / "quits.py"
    path.write_text("import sys\nsys.exit(0)\n")
    proc = subprocess.run([sys.executable, "-m", "toolformer_app", "tool", "--tools-from", str(path), "Calculator",
                           "1 + 1"], cwd=REPO, env={**os.environ, "TOOLFORMER_DATA_DIR": str(tmp_path / "d")},
                          capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "quits.py:2:" in lines[0] and "exit" in lines[0], proc.stderr


def test_the_app_loads_the_other_tool_files(tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "a_quits.py").write_text("raise SystemExit(4)\n")
    (tools / "b_good.py").write_text(
        "def shout(text):\n    return text.upper()\n\nTOOL = shout\nNAME = 'ShoutExit'\n"
        "PROMPT = 'Shout: [input]'\n")
    names, errors = load_data_dir_tools(tmp_path)
    assert names == ["ShoutExit"] and len(errors) == 1 and "a_quits.py:1" in errors[0]
