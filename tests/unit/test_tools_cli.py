"""The `tool` and `invoke` commands: in process (fast) and through `python -m toolformer_app` (slow)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolformer_app.tools import cli as tools_cli

REPO = Path(__file__).resolve().parents[2]


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="t")
    tools_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_tool_prints_the_result(capsys):
    assert run_cli(["tool", "Calculator", "400 / 1400"]) == 0
    assert capsys.readouterr().out == "0.29\n"


def test_tool_failure_prints_the_reason_on_stderr_and_exits_1(capsys):
    assert run_cli(["tool", "Calculator", "1 / 0"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "division by zero" in err


def test_unknown_tool_exits_2(capsys):
    assert run_cli(["tool", "Teleporter", "x"]) == 2
    assert "unknown tool" in capsys.readouterr().err


def test_calendar_takes_a_date(capsys):
    assert run_cli(["tool", "calendar", "--date", "2023-01-30"]) == 0
    assert capsys.readouterr().out == "Today is Monday, January 30, 2023.\n"


def test_a_bad_date_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli(["tool", "Calendar", "--date", "30/01/2023"])
    assert exc.value.code == 2 and "YYYY-MM-DD" in capsys.readouterr().err


def test_wikisearch_with_a_user_corpus(capsys, tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("Brask has two bakeries.\nGlimmerfish glow.\n", encoding="utf-8")
    assert run_cli(["tool", "WikiSearch", "bakeries", "--corpus", str(path)]) == 0
    assert capsys.readouterr().out == "Brask has two bakeries.\n"


def test_invoke_executes_the_calls_in_the_text(capsys):
    text = "Of 1400 people, 400 [Calculator(400 / 1400)] 29% passed [Calendar()] today."
    assert run_cli(["invoke", text, "--date", "2023-01-30"]) == 0
    assert capsys.readouterr().out == (
        "Of 1400 people, 400 [Calculator(400 / 1400) -> 0.29] 29% passed "
        "[Calendar() -> Today is Monday, January 30, 2023.] today.\n"
    )


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("leave", "a [Calculator(1/0)] b [Other(1)]\n"),
        ("drop", "a b [Other(1)]\n"),
        ("error", "a [Calculator(1/0) -> Error: ToolError: division by zero] b [Other(1)]\n"),
    ],
)
def test_invoke_policy_decides_what_happens_to_failing_calls(capsys, policy, expected):
    assert run_cli(["invoke", "a [Calculator(1/0)] b [Other(1)]", "--policy", policy]) == 0
    assert capsys.readouterr().out == expected


def test_invoke_reads_stdin_and_can_limit_the_tools(capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("x [Calculator(2 + 3)] y [Calendar()]"))
    assert run_cli(["invoke", "-", "--tools", "Calculator"]) == 0
    assert capsys.readouterr().out == "x [Calculator(2 + 3) -> 5] y [Calendar()]\n"


def test_help_texts_describe_the_commands(capsys):
    with pytest.raises(SystemExit):
        run_cli(["tool", "--help"])
    out = capsys.readouterr().out
    assert "Calculator, Calendar, WikiSearch, QA, MT" in out and "--date" in out
    with pytest.raises(SystemExit):
        run_cli(["invoke", "--help"])
    assert "--policy" in capsys.readouterr().out


# -- the real entry point ---------------------------------------------------------------------------
def _main(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "toolformer_app", *argv], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_module_entry_point_runs_the_calculator():
    proc = _main("tool", "Calculator", "400 / 1400")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "0.29\n"


@pytest.mark.slow
def test_module_entry_point_exits_1_on_a_failing_input():
    proc = _main("tool", "Calculator", "9**9**9")
    assert proc.returncode == 1
    assert proc.stdout == "" and "only + - × ÷" in proc.stderr


@pytest.mark.slow
def test_module_entry_point_invokes_calls():
    proc = _main("invoke", "It is [Calendar()] now.", "--date", "2023-01-30")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "It is [Calendar() -> Today is Monday, January 30, 2023.] now.\n"
