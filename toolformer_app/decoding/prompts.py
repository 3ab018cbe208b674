"""Prompts and stop strings: the paper's zero-shot formats (section 4) for a message typed by a person."""

from __future__ import annotations

PROMPT_STYLES = ("paper", "plain", "chat")
PAPER_QUESTION_SUFFIX = " The answer is"  # the paper's zero-shot format for questions (section 4)
LAMA_PREFIX = "Please complete the following text so that it is factually correct: "  # section 4.2.1
QA_PREFIX = "Answer the following question: "  # section 4.2.3


def format_prompt(message: str, style: str = "paper") -> str:
    """The text the model continues, for a message typed by a person.

    ``paper``: the paper's zero-shot formats (section 4): a question with a number in it gets
    " The answer is" after it (its math format), any other question gets "Answer the following
    question:" before it (its QA format), a statement to complete gets the LAMA instruction before it
    (a message that already ends in "The answer is", or holds several lines, e.g. a few-shot prompt,
    is left as it is). ``plain``: the message
    unchanged. ``chat``: unchanged here; ``InferenceConfig.chat_template`` wraps it in the
    tokenizer's chat template.
    """
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r} (expected {', '.join(PROMPT_STYLES)})")
    text = message.strip()
    if style != "paper" or not text or "\n" in text or text.endswith(PAPER_QUESTION_SUFFIX.strip()):
        return message if style != "paper" else text
    if text.startswith((LAMA_PREFIX, QA_PREFIX)):
        return text
    if text.endswith("?"):
        return text + PAPER_QUESTION_SUFFIX if any(ch.isdigit() for ch in text) else QA_PREFIX + text
    return LAMA_PREFIX + text.rstrip(".")


def answer_stops(style: str = "paper") -> tuple[str, ...]:
    """Stop strings that end the answer in the paper's formats: the end of the line, and the end of the
    first sentence (". "), so "… The answer is 636." stops there instead of repeating "The answer is"."""
    return ("\n", ". ") if style == "paper" else ("\n",)
