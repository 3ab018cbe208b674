"""The API-call text format: linearise, find, strip, invoke; robust to what a sampling LM writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from toolformer_app.calls import (
    ApiCall,
    find_calls,
    find_open_call,
    insert_calls,
    invoke_tools,
    linearize,
    sanitize,
    strip_calls,
)


def test_the_papers_three_forms():
    assert linearize("Calculator", "400 / 1400") == " [Calculator(400 / 1400)]"
    assert linearize("Calculator", "400 / 1400", "0.29") == " [Calculator(400 / 1400) -> 0.29]"
    assert linearize("Calendar", "", "") == " [Calendar() -> ]"  # e(c, eps): the arrow stays


def test_invoke_tools_as_in_the_toolformer_pytorch_readme():
    text = "Make the following API calls: [inc(1)] and [dec(2)] and [ignored(3)]"
    out = invoke_tools({"inc": lambda i: i + 1, "dec": lambda i: i - 1}, text)
    assert out == "Make the following API calls: [inc(1) -> 2] and [dec(2) -> 1] and [ignored(3)]"


def test_calls_with_results_are_not_run_again():
    seen = []
    out = invoke_tools({"inc": lambda i: seen.append(i) or i + 1}, "a [inc(1) -> 5] b")
    assert out == "a [inc(1) -> 5] b" and not seen


def test_error_policies_for_a_tool_that_raises_or_returns_nothing():
    def boom(_):
        raise ValueError("bad input")

    registry = {"boom": boom, "none": lambda _: None}
    text = "x [boom(1)] y [none(2)] z"
    assert invoke_tools(registry, text) == text
    assert invoke_tools(registry, text, policy="drop") == "x y z"
    assert invoke_tools(registry, text, policy="error") == (
        "x [boom(1) -> Error: ValueError: bad input] y [none(2) -> Error: no result] z"
    )


def test_quotes_commas_nested_parentheses_and_unicode_in_inputs():
    text = 'A [QA("Who wrote \'Faust\', then?")] B [Calculator((1 + 2) * (3 - 4))] C [MT(è vero, 日本)]'
    calls = find_calls(text)
    assert [c.input for c in calls] == ['"Who wrote \'Faust\', then?"', "(1 + 2) * (3 - 4)", "è vero, 日本"]
    assert [text[c.start : c.end] for c in calls][1] == " [Calculator((1 + 2) * (3 - 4))]"


def test_bracket_and_arrow_in_a_result_never_end_the_call_early():
    call = linearize("WikiSearch", "x", "a] b -> c [d")
    assert call == " [WikiSearch(x) -> a) b → c (d]"
    (found,) = find_calls("before" + call + " after")
    assert found.result == "a) b → c (d" and found.end == len("before" + call)


def test_a_call_that_is_never_closed_is_not_a_call():
    assert find_calls("text [Calculator(1 + 2 and more") == []
    assert find_calls("text [Calculator(1 + 2) -> 3 and more") == []
    assert strip_calls("keep [Calculator(1 + 2") == "keep [Calculator(1 + 2"


def test_find_open_call_pauses_at_the_arrow():
    assert find_open_call("so [Calculator(400 / 1400) ->") == ("Calculator", "400 / 1400")
    assert find_open_call("so [Calculator(400 / 1400)]") is None
    assert find_open_call("no call here") is None


inputs = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)


@given(tool=names, inp=inputs, result=st.one_of(st.none(), inputs))
def test_linearize_then_parse_gives_back_the_call(tool, inp, result):
    text = "Some text." + linearize(tool, inp, result) + " More text."
    (call,) = find_calls(text)
    assert call.tool == tool
    assert call.input == sanitize(inp)
    expected = None if result is None else sanitize(result).strip()
    assert call.result == expected


@given(text=st.text(st.characters(exclude_categories=("Cs",), exclude_characters="["), max_size=60),
       offsets=st.lists(st.integers(min_value=0, max_value=60), max_size=4), inp=inputs, result=inputs)
def test_inserting_then_stripping_calls_is_byte_identical(text, offsets, inp, result):
    calls = [(min(o, len(text)), ApiCall("Calculator", inp, result)) for o in offsets]
    augmented = insert_calls(text, calls)
    assert len(find_calls(augmented)) == len(calls)
    assert strip_calls(augmented) == text


def test_find_calls_is_linear_on_a_megabyte_of_unclosed_calls():
    import time

    for pattern in ("x [a(", "x [a() -> ", "y [Calculator(1)] x [a("):
        text = pattern * (1_000_000 // len(pattern))
        t0 = time.perf_counter()
        found = find_calls(text)
        elapsed = time.perf_counter() - t0
        assert elapsed < 3.0, f"{pattern!r}: {elapsed:.1f} s for 1 MB (was quadratic: minutes)"
        assert len(found) == (text.count("[Calculator(1)]") if "Calculator" in pattern else 0)
        assert strip_calls(text) == text.replace(" [Calculator(1)]", "")


def test_insert_calls_refuses_positions_outside_the_text_and_names_that_do_not_parse():
    import pytest

    text = "The orchard has 36 rows, so 864 trees."
    call = ApiCall("Calculator", "36 * 24", "864")
    for pos in (-5, len(text) + 1, 3.0, True):
        with pytest.raises(ValueError, match="outside the text"):
            insert_calls(text, [(pos, call)])
    for name in ("<img src=x onerror=alert(1)>", "Calc ulator", "", "9lives"):
        with pytest.raises(ValueError, match="not an identifier"):
            insert_calls(text, [(27, ApiCall(name, "1", "1"))])
    merged = insert_calls(text, [(len(text), call), (0, call), (27, call)])
    assert strip_calls(merged) == text  # byte-identical around the calls
    assert [c.tool for c in find_calls(merged)] == ["Calculator"] * 3
