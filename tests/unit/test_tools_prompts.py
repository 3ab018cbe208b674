"""Every tool: paper name, A.2 prompt with examples in the exact call format, thresholds, registry."""

from __future__ import annotations

import pytest

from toolformer_app.calls import find_calls, strip_calls
from toolformer_app.tools import TOOL_NAMES, Thresholds, Tool, default_tools, get_tool


@pytest.fixture(scope="module")
def tools() -> dict[str, Tool]:
    return default_tools()


def test_registry_builds_all_five_tools_under_their_paper_names(tools):
    assert list(tools) == ["Calculator", "Calendar", "WikiSearch", "QA", "MT"]
    assert tuple(tools) == TOOL_NAMES
    assert get_tool("wikisearch").name == "WikiSearch"


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_instruction_tells_how_to_call_the_tool(tools, name):
    tool = tools[name]
    assert f'"[{name}(' in tool.instruction
    assert tool.instruction.endswith("Here are some examples of API calls:")


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_examples_are_inputs_with_calls_to_this_tool_inserted(tools, name):
    tool = tools[name]
    assert 3 <= len(tool.examples) <= 5
    for text, output in tool.examples:
        calls = find_calls(output)
        assert calls and all(c.tool == name and c.result for c in calls)
        assert strip_calls(output) == text  # the calls are the only difference
        assert "[" not in text


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_prompt_ends_with_the_text_and_output_marker(tools, name):
    prompt = tools[name].prompt("Some text.")
    assert prompt.endswith("Input: Some text.\nOutput:")
    assert prompt.count("Input: ") == len(tools[name].examples) + 1


def test_thresholds_are_the_tuned_small_model_values(tools):
    assert tools["Calculator"].thresholds == Thresholds(tau_s=0.003, k=10, m=5, tau_f=0.3)
    assert tools["MT"].thresholds == Thresholds(tau_s=0.003, k=10, m=5, tau_f=0.3)
    for name in ("Calendar", "WikiSearch", "QA"):
        assert tools[name].thresholds == Thresholds(tau_s=0.005, k=5, m=5, tau_f=0.3)


def test_qa_and_wikisearch_have_no_heuristic(tools):
    for name in ("QA", "WikiSearch"):
        assert tools[name].selects("Anything at all.")
        assert tools[name].selection_reason("Anything at all.")
        assert not tools[name].selects("   ")
        assert tools[name].keeps_call("a", "b", "c")


def test_invoke_tools_executes_calls_of_every_offline_tool():
    import datetime

    from toolformer_app.calls import invoke_tools

    registry = default_tools(["Calculator", "Calendar", "WikiSearch"])
    registry["Calendar"] = get_tool("Calendar", clock=lambda: datetime.date(2023, 1, 30))
    text = 'A [Calculator(400 / 1400)] b [Calendar()] c [WikiSearch("Eiffel Tower")] d [Calculator(1/0)] e'
    out = invoke_tools(registry, text)
    calls = find_calls(out)
    assert [c.result for c in calls[:2]] == ["0.29", "Today is Monday, January 30, 2023."]
    assert "Eiffel" in calls[2].result
    assert calls[3].result is None  # policy "leave": the failing call stays as it was
