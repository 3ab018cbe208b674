"""Chat's answer rendering: an input the decoder wrote is marked as such, an empty answer is said to be empty, and
the intro states the shipped model's measured arithmetic accuracy beside the bakery example."""

from __future__ import annotations

from toolformer_app.decoding import CallExecuted, CallStarted, Done, GenerationStats, TextChunk
from toolformer_app.ui import chat


def _answer(events) -> chat._Answer:
    answer = chat._Answer()
    for e in events:
        answer.feed(e)
    return answer


def test_a_decoder_written_input_is_marked_in_its_bubble():
    text = " [QA(What is the capital of Peru?) -> Lima]"
    call = CallExecuted(0, "QA", "What is the capital of Peru?", "Lima", True, "", 0.1, text, 0, len(text),
                        input_by="decoder")
    answer = _answer([CallStarted(0, 0), TextChunk(call.text, in_call=True), call, TextChunk(" Lima."),
                      Done(call.text + " Lima.", [call], "stop", GenerationStats())])
    bubble = answer.messages()[1]
    assert "Input (written by the decoder: the clause so far):" in bubble["content"]
    assert "What is the capital of Peru?" in bubble["content"] and chat.NO_ANSWER not in answer.markup()
    assert bubble["metadata"]["title"].endswith("→ Lima · input written by the decoder")
    model_call = CallExecuted(0, "QA", "Peru", "Lima", True, "", 0.1, " [QA(Peru) -> Lima]", 0, 19)
    assert "written by the decoder" not in chat._bubble({**model_call.to_dict(), "status": "done"})["content"]


def test_an_answer_with_nothing_outside_its_call_says_so():
    text = " [QA(The capital of Chad is) -> ]"
    call = CallExecuted(0, "QA", "The capital of Chad is", None, False, "no result", 0.1, text, 0, len(text))
    answer = _answer([CallStarted(0, 0), TextChunk(call.text, in_call=True), call,
                      Done(call.text, [call], "eos", GenerationStats())])
    assert answer.markup().endswith(chat.NO_ANSWER)
    empty = _answer([Done("", [], "eos", GenerationStats())])
    assert empty.markup() == chat.NO_ANSWER
    streaming = _answer([TextChunk("")])  # not done yet: the usual ellipsis
    assert streaming.markup() == "…"


def test_the_intro_gives_the_measured_arithmetic_accuracy_of_the_shipped_model():
    text = chat.intro("smollm2-135m-toolformer")
    acc = chat.math_accuracy("smollm2-135m-toolformer")
    assert acc and acc.endswith("of 100") and f"right on {acc} arithmetic" in text and "347 * 289" in text
    assert chat.math_accuracy("smollm2-135m") == "" and "wrong operation" not in chat.intro("smollm2-135m")
