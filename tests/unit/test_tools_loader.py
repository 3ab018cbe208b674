"""Bring your own tool: tool files, --tools-from on the CLI, the data dir's tools, one-line errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from toolformer_app import cli, tools
from toolformer_app.tools.loader import ToolFileError, load_data_dir_tools, load_tool_file, register_tool_files

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "examples" / "tools" / "units.py"


@pytest.fixture(autouse=True)
def _empty_registry(monkeypatch):
    monkeypatch.setattr(tools, "_USER_TOOLS", {})


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source).lstrip("\n"))
    return path


def test_example_units_tool_has_prompt_heuristic_executor_and_thresholds():
    (units,) = load_tool_file(UNITS)
    assert units.name == "Units"
    assert units.run("5 km in miles").output == "3.11 miles"
    assert units.run("212 F in C").output == "100 C"
    assert "cannot convert" in units.run("5 km in kg").reason
    assert units.selects("The trail is 8 km long.") and not units.selects("I have 3 apples.")
    assert "[Units(42.2 km in miles) -> 26.22 miles]" in units.prompt("x")
    assert units.prompt("The road is 12 miles long.").endswith("Input: The road is 12 miles long.\nOutput:")
    assert units.thresholds.tau_f == 0.3


def test_registered_tool_is_found_by_name_everywhere(capsys):
    assert register_tool_files([UNITS]) == ["Units"]
    assert tools.get_tool("units").name == "Units"
    assert tools.tool_names()[-1] == "Units" and tools.tool_names()[:5] == tools.TOOL_NAMES
    from toolformer_app.decoding.cli import load_tools
    from toolformer_app.evaluation.runner import build_tools

    assert "Units" in load_tools("Units,Calculator")
    assert "Units" in build_tools(__import__("datetime").date(2024, 1, 1))


def test_tools_from_on_the_tool_and_invoke_commands(capsys):
    assert cli.main(["tool", "--tools-from", str(UNITS), "Units", "5 km in miles"]) == 0
    assert capsys.readouterr().out.strip() == "3.11 miles"
    assert cli.main(["invoke", "--tools-from", str(UNITS), "--tools", "Units", "It is [Units(3 kg in lb)] heavy."]) == 0
    assert capsys.readouterr().out.strip() == "It is [Units(3 kg in lb) -> 6.61 lb] heavy."


@pytest.mark.parametrize("command", ["generate", "chat", "eval", "tool", "invoke"])
def test_every_tool_command_takes_tools_from(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    assert "--tools-from FILE" in capsys.readouterr().out


def test_function_and_seed_prompt_form(tmp_path):
    path = write(tmp_path, "shout.py", '''
        NAME = "Shout"
        PROMPT = """Your task is to add calls to a Shout API. You can call it by writing "[Shout(text)]".

        Input: the word was hello, in capitals
        Output: the word was hello, in capitals [Shout(hello) -> HELLO] HELLO

        Input: [input]
        Output:"""

        def TOOL(text):
            """Upper-cases its input."""
            return text.upper()
    ''')
    (tool,) = load_tool_file(path)
    assert (tool.name, tool("abc")) == ("Shout", "ABC")
    assert tool.prompt_prefix().endswith("Input: ")


def test_subclass_without_dataclass_keeps_its_class_settings(tmp_path):
    path = write(tmp_path, "echo.py", """
        from toolformer_app.tools import Thresholds, Tool, ToolResult

        class Echo(Tool):
            name = "Echo"
            instruction = "Echo things."
            thresholds = Thresholds(tau_s=0.01, k=2, m=3, tau_f=0.5)

            def run(self, input):
                return ToolResult(input)
    """)
    (tool,) = load_tool_file(path)
    assert (tool.name, tool.instruction, tool.thresholds.k, tool("x")) == ("Echo", "Echo things.", 2, "x")


@pytest.mark.parametrize(("source", "line", "message"), [
    ("import os\n\nclass Units(\n", 3, "SyntaxError"),
    ("x = 1\ny = undefined_name\n", 2, "NameError: name 'undefined_name' is not defined"),
    ("import not_a_module_anywhere\n", 1, "ModuleNotFoundError"),
    ("x = 1\n", 1, "defines no Tool subclass"),
    ("from toolformer_app.tools import Tool, ToolResult\n\n\nclass Calc(Tool):\n    name = 'Calculator'\n"
     "    def run(self, input):\n        return ToolResult(input)\n", 4, "is taken"),
    ("from toolformer_app.tools import Tool\n\nclass Lazy(Tool):\n    name = 'Lazy'\n", 3, "does not implement run"),
    ("from toolformer_app.tools import Tool, ToolResult\n\nclass Bad(Tool):\n    name = 'two words'\n"
     "    def run(self, input):\n        return ToolResult(input)\n", 3, "must be a Python identifier"),
    ("def TOOL(x):\n    return x\n", 1, "PROMPT"),
])
def test_broken_file_is_one_line_naming_file_and_line(tmp_path, source, line, message):
    path = tmp_path / "broken.py"
    path.write_text(source)
    with pytest.raises(ToolFileError) as info:
        load_tool_file(path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}:{line}: "), text
    assert message in text


def test_cli_reports_a_broken_file_in_one_line_and_exits_2(tmp_path, capsys):
    path = write(tmp_path, "broken.py", "x = 1\nraise RuntimeError('boom')\n")
    assert cli.main(["tool", "--tools-from", str(path), "Units", "1 m in cm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {path}:2: RuntimeError: boom"


def test_data_dir_tools_load_and_a_broken_one_is_reported(tmp_path):
    folder = tmp_path / "data" / "tools"
    folder.mkdir(parents=True)
    (folder / "units.py").write_text(UNITS.read_text())
    (folder / "broken.py").write_text("def oops(:\n")
    (folder / "notes.txt").write_text("not a tool")
    names, errors = load_data_dir_tools(tmp_path / "data")
    assert names == ["Units"]
    assert len(errors) == 1 and errors[0].startswith(f"{folder / 'broken.py'}:1: SyntaxError")


def test_unknown_tool_names_the_way_to_load_one():
    with pytest.raises(KeyError, match="--tools-from"):
        tools.get_tool("Units")


def test_generate_annotates_with_a_tool_from_a_file(tiny_model, tmp_path):
    import json
    import os
    import subprocess
    import sys

    model, tok = tiny_model
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The trail is 8 km long.\n\nThe bag weighs 3 kg in all.\n\nNo quantity here.")
    p = subprocess.run([sys.executable, "-m", "toolformer_app", "generate", "--tools-from", str(UNITS), "--tools",
                        "Units", "--input", str(corpus), "--model", str(tmp_path / "tiny"), "--tau-s", "0", "--k",
                        "1", "--m", "2", "--max-call-tokens", "4", "--out", str(tmp_path / "out")], cwd=REPO,
                       capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-2000:]
    units = json.loads((tmp_path / "out" / "stats.json").read_text())["per_tool"]["Units"]
    assert units["texts_selected"] == 2 and units["samples_drawn"] == 4  # the heuristic skips the third text
