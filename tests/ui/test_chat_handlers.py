"""Chat tab handlers: streaming events become highlighted text and tool bubbles."""

from __future__ import annotations

import gradio as gr
import pytest

from toolformer_app.decoding import CallExecuted, CallStarted, Done, GenerationStats, TextChunk
from toolformer_app.ui import chat, runtime


def _script(disabled: bool):
    """What generate_with_tools streams for " so [Calculator(48 + 17) -> 65] 65 cows." (or no call)."""
    if disabled:
        yield TextChunk(" 18 cows.")
        yield Done(" 18 cows.", [], "stop", GenerationStats(tokens_generated=4, elapsed_s=0.1))
        return
    yield TextChunk(" so")
    yield CallStarted(0, 3)
    yield TextChunk(" [Calculator(48 + 17) ->", in_call=True)
    yield TextChunk(" 65]", in_call=True)
    call = CallExecuted(0, "Calculator", "48 + 17", "65", True, "", 0.002, " [Calculator(48 + 17) -> 65]", 3, 31)
    yield call
    yield TextChunk(" 65 cows.")
    yield Done(" so [Calculator(48 + 17) -> 65] 65 cows.", [call], "stop",
               GenerationStats(tokens_generated=12, elapsed_s=0.5))


@pytest.fixture
def scripted(monkeypatch):
    import toolformer_app.decoding as decoding

    seen = []

    def fake(model, tok, prompt, tools, config):
        seen.append(config)
        return _script(config.disabled)

    monkeypatch.setattr(runtime, "get_model", lambda name: (None, None))
    monkeypatch.setattr(decoding, "generate_with_tools", fake)
    return seen


def test_a_call_is_highlighted_inline_and_shown_as_a_tool_bubble(scripted):
    outs = list(chat.respond("The farm has 48 cows and 17 more,", [], [], "smollm2-135m", 10, 1, ["Calculator"], 32,
                             True, "plain", False))
    history, plain, calls, stats, box = outs[-1]
    assert history[0]["role"] == "user" and box == ""
    answer, bubble = history[1], history[2]
    assert '<mark class="tool-Calculator" title="Calculator"> &#91;Calculator(48 + 17) -&gt; 65&#93;</mark>' \
        in answer["content"]
    assert answer["content"].endswith(" 65 cows.")
    meta = bubble["metadata"]
    assert meta["status"] == "done" and "Calculator(48 + 17)" in meta["title"] and "65" in meta["title"]
    assert meta["duration"] == pytest.approx(0.002)
    assert "48 + 17" in bubble["content"] and "65" in bubble["content"]
    assert calls[0]["tool"] == "Calculator" and calls[0]["output"] == "65"
    assert "1 call(s)" in stats and plain == []
    # while the call ran, a pending bubble was shown
    assert any(m.get("metadata", {}) and m["metadata"]["status"] == "pending" for o in outs for m in o[0])


def test_compare_answers_the_same_prompt_with_tools_disabled_side_by_side(scripted):
    outs = list(chat.respond("The farm has 48 cows and 17 more,", [], [], "smollm2-135m", 10, 1, ["Calculator"], 32,
                             True, "plain", True))
    history, plain, calls, stats, _ = outs[-1]
    assert [c.disabled for c in scripted] == [False, True]
    assert plain[0]["content"] == history[0]["content"] and "18 cows" in plain[1]["content"]
    assert "<mark" not in plain[1]["content"] and "tools disabled" in stats


def test_controls_reach_the_inference_config(scripted):
    list(chat.respond("x", [], [], "smollm2-135m", 3, 2, ["Calendar"], 16, False, "chat", False))
    cfg = scripted[0]
    assert (cfg.top_k_call, cfg.max_calls, cfg.tools, cfg.max_new_tokens) == (3, 2, ("Calendar",), 16)
    assert cfg.stop == () and cfg.chat_template is True


def test_empty_message_and_unloadable_model_are_one_line_errors():
    with pytest.raises(gr.Error, match="empty"):
        next(chat.respond("  ", [], [], "smollm2-135m", 10, 1, ["Calculator"], 32, True, "plain", False))
    with pytest.raises(gr.Error, match="no-such-model") as exc:
        next(chat.respond("hi", [], [], "no-such-model", 10, 1, ["Calculator"], 32, True, "plain", False))
    assert "\n" not in str(exc.value)


def test_model_choices_offer_the_presets_and_example_prompts_make_the_model_call():
    from toolformer_app.models import PRESETS

    assert [v for _, v in chat.model_choices()][: len(PRESETS)] == list(PRESETS)
    prompts = chat.example_prompts()
    assert prompts and all("[Calculator(" in p for p in prompts if "capital" not in p)
    assert {"What is the capital of Australia?", "The capital of Kenya is"} <= set(prompts)
    assert chat.example_label("worked lines\nThe farm has 48 cows, so") == "The farm has 48 cows, so"
    cows = next(p for p in prompts if "48 cows" in p)
    assert chat.example_label(cows).startswith("Known failure (wrong operation): The farm has 48 cows")
