"""Chat tab: stream a completion with tools, each call highlighted inline and shown as a tool bubble.

Library calls: ``server.serve`` (the shared decoding server: the answers of all sessions are decoded
together, each as ``decoding.generate_with_tools`` would alone; events TextChunk / CallStarted /
CallExecuted / Done), ``decoding.InferenceConfig`` (top-k for starting a call, max calls, enabled
tools, ``disabled`` for the comparison), ``tools.default_tools``; models via ``runtime.get_model``.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from toolformer_app import config
from toolformer_app.tools import TOOL_NAMES
from toolformer_app.ui import render, runtime, user_tools

PROMPTS_DIR = render.ASSETS / "examples" / "chat"
CHAT_SESSIONS = 8  # chat requests let through at once: the decoding server batches them (its rows)


def _stream(model: Any, tok: Any, prompt: str, registry: dict[str, Any], cfg: Any) -> Iterator[Any]:
    """The events of one answer, through the shared decoding server (batched with the other sessions'
    answers). At batch 1 where no server can run: on ZeroGPU the GPU exists only inside the call itself."""
    from toolformer_app import decoding
    from toolformer_app.decoding import server

    if os.environ.get("SPACES_ZERO_GPU") or not hasattr(model, "parameters"):
        yield from decoding.generate_with_tools(model, tok, prompt, registry, cfg)
        return
    try:
        ticket = server.serve(model, tok, prompt, registry, cfg,
                               server.Limits(max_rows=CHAT_SESSIONS, max_prompt_tokens=8192))
    except server.Refused as exc:
        raise gr.Error(str(exc)) from None
    done = False
    try:
        for event in ticket.events(timeout=600):
            done = event.kind == "done"
            yield event
    except (RuntimeError, TimeoutError) as exc:
        raise gr.Error(render.one_line(exc)) from None
    finally:
        if not done:  # Stop (the generator is closed) or an error: free the row for the others
            ticket.cancel()
        runtime.release_memory()


def example_prompts() -> list[str]:
    return [p.read_text(encoding="utf-8").rstrip("\n") for p in sorted(PROMPTS_DIR.glob("*.txt"))]


# Examples kept because they show a known failure of the shipped model, said beside them (its card's math figure
# is in the tab's intro): the rest are answered right with the default settings (a browser test checks them).
KNOWN_FAILURES = {"The farm has 48 cows and bought 17 more, so it now has":
                  "wrong operation: the model often multiplies where it should add"}


def example_label(prompt: str) -> str:
    """The last line of a few-shot prompt: the question the model completes (and a known failure, said so)."""
    last = prompt.strip().splitlines()[-1] if prompt.strip() else ""
    label = (last[:70] + "…") if len(last) > 70 else last
    # the note first: Gradio cuts a long label at about 60 characters
    return f"Known failure ({KNOWN_FAILURES[last].split(':')[0]}): {label}" if last in KNOWN_FAILURES else label


NO_ANSWER = "<em>(no answer: the model stopped without writing one)</em>"


class _Answer:
    """One streamed answer as plain data: text segments (calls marked) and one bubble per call."""

    def __init__(self) -> None:
        self.segments: list[list[Any]] = []  # [text, tool or None, ok]
        self.calls: list[dict[str, Any]] = []
        self.done: dict[str, Any] | None = None

    def feed(self, event) -> None:
        kind = event.kind
        if kind == "text":
            last = self.segments[-1] if self.segments else None
            if event.in_call:
                if last is not None and last[1] is not None and not last[3]:
                    last[0] += event.text
                else:
                    self.segments.append([event.text, "call", True, False])
            elif last is not None and last[1] is None:
                last[0] += event.text
            else:
                self.segments.append([event.text, None, True, True])
        elif kind == "call_started":
            self.segments.append(["", "call", True, False])  # [text, tool, ok, closed]
            self.calls.append({"index": event.index, "status": "pending"})
        elif kind == "call":
            for seg in reversed(self.segments):
                if seg[1] is not None and not seg[3]:
                    seg[1], seg[2], seg[3] = event.tool or "call", event.ok, True
                    break
            info = {**event.to_dict(), "status": "done"}
            if self.calls and self.calls[-1].get("status") == "pending":
                self.calls[-1] = info
            else:
                self.calls.append(info)
        elif kind == "done":
            self.done = event.to_dict()
            self._rebuild(event.text, event.calls)

    def _rebuild(self, text: str, calls) -> None:
        """The final markup from Done: exact call spans, whatever the streaming split was."""
        segs: list[list[Any]] = []
        last = 0
        for c in sorted(calls, key=lambda c: c.start):
            if c.start < last or c.start < 0:
                continue
            if c.start > last:
                segs.append([text[last:c.start], None, True, True])
            segs.append([text[c.start:c.end], c.tool or "call", c.ok, True])
            last = c.end
        if last < len(text):
            segs.append([text[last:], None, True, True])
        self.segments = segs

    def markup(self) -> str:
        body = render.chat_markup([(s[0], s[1], s[2]) for s in self.segments if s[0]])
        if self.done is not None and not "".join(s[0] for s in self.segments if s[1] is None).strip():
            # nothing outside calls: say so, never an empty bubble
            return (body + " " if body else "") + NO_ANSWER
        return body or "…"

    def messages(self) -> list[dict[str, Any]]:
        out = [{"role": "assistant", "content": self.markup()}]
        for c in self.calls:
            out.append(_bubble(c))
        return out


def _bubble(c: dict[str, Any]) -> dict[str, Any]:
    """A collapsible tool message: the tool, its input, its output (or why none) and the time taken."""
    if c.get("status") == "pending":
        return {"role": "assistant", "content": "running…",
                "metadata": {"title": "Calling a tool…", "status": "pending"}}
    tool = c.get("tool") or "call"
    out = c.get("output")
    title = f"{tool}({c.get('input', '')})" + (f" → {out}" if out is not None else " → no result")
    by = " (written by the decoder: the clause so far)" if c.get("input_by") == "decoder" else ""
    body = (f"**Tool:** {html.escape(tool)}  \n**Input{by}:** <code>{html.escape(str(c.get('input', '')))}</code>  \n"
            + (f"**Output:** <code>{html.escape(str(out))}</code>" if out is not None
               else f"**No result:** {html.escape(c.get('reason') or 'unknown')}"))
    title += " · input written by the decoder" if by else ""
    meta = {"title": "Tool call: " + render.escape_chat(title), "status": "done",
            "duration": round(float(c.get("duration_s") or 0), 4),
            "log": "tool answered" if out is not None else "no result"}
    return {"role": "assistant", "content": body, "metadata": meta}


PROMPT_STYLES = [("the paper's zero-shot formats (math, QA and LAMA)", "paper"),
                 ("plain completion", "plain"), ("the model's chat template", "chat")]


def _paper_k() -> int:
    from toolformer_app.decoding import InferenceConfig  # the paper's k = 10, defined there once

    return InferenceConfig().top_k_call


def make_config(top_k: float, max_calls: float, tools: list[str] | None, max_new_tokens: float,
                stop_at_newline: bool, style: str, disabled: bool = False, call_threshold: float = 0.0,
                constrain: bool = True, card: dict[str, Any] | None = None):
    """The decoding settings of the tab. ``call_threshold`` > 0 calls when p(" [") reaches it (the model
    card's calibrated value is the default), with the card's per-tool thresholds, else top-k; ``constrain``: only
    enabled tools can be written. ``card``: ``models.card_inference`` of the model (clause-input tools)."""
    from toolformer_app.decoding import PROMPT_STYLES as STYLES
    from toolformer_app.decoding import InferenceConfig, answer_stops

    if style not in STYLES:
        raise gr.Error(f"Unknown prompt style {render.one_line(str(style))!r}: choose {', '.join(STYLES)}.")

    enabled = tuple(user_tools.known(tools))
    card = card or {}
    threshold = float(call_threshold) if call_threshold and float(call_threshold) > 0 else None
    return InferenceConfig(
        max_new_tokens=int(max_new_tokens), top_k_call=int(top_k), max_calls=int(max_calls),
        disabled=disabled or not enabled, tools=enabled, stop=answer_stops(style) if stop_at_newline else (),
        chat_template=style == "chat", constrain_names=bool(constrain),
        call_threshold=threshold, tool_thresholds=card.get("tool_thresholds") if threshold else None,
        clause_inputs=tuple(card.get("clause_inputs") or ()),
    )


def _stats_line(done: dict[str, Any] | None, label: str) -> str:
    if not done:
        return ""
    s = done["stats"]
    return (f"{label}: {s['tokens_generated']} tokens in {s['elapsed_s']:.1f} s "
            f"({s['tokens_per_s']:.1f} tokens/s), {len(done['calls'])} call(s), stopped by {done['stop_reason']}")


@runtime.gpu_bound
def respond(message: str, history: list | None, history_plain: list | None, model_name: str, top_k: float,
            max_calls: float, tools: list[str] | None, max_new_tokens: float, stop_at_newline: bool,
            style: str, compare: bool, call_threshold: float = 0.0, constrain: bool = True):
    """Generator: (chat with tools, chat without tools, calls JSON, stats, cleared textbox)."""
    from toolformer_app.decoding import format_prompt
    from toolformer_app.models import ModelLoadError
    from toolformer_app.tools import default_tools

    message = runtime.checked_input(message, "The message is empty: type a prompt or pick an example.")
    try:
        model, tok = runtime.get_model(model_name)
    except ModelLoadError as exc:
        raise gr.Error(f"Model: {render.one_line(exc)}") from None
    card = card_settings(model_name)
    cfg = make_config(top_k, max_calls, tools, max_new_tokens, stop_at_newline, style,
                      call_threshold=call_threshold, constrain=constrain, card=card)
    prompt = format_prompt(message, style)
    if cfg.disabled and not compare:
        gr.Warning("No tool is enabled: the model answers without tools.")
    registry = default_tools(list(cfg.tools) or list(TOOL_NAMES))
    user = {"role": "user", "content": render.escape_chat(message)}
    history = [*(history or []), user]
    history_plain = [*(history_plain or []), user] if compare else list(history_plain or [])

    answer = _Answer()
    for event in _stream(model, tok, prompt, registry, cfg):
        answer.feed(event)
        yield history + answer.messages(), history_plain, answer.calls, "", ""
    history = history + answer.messages()
    stats = _stats_line(answer.done, "with tools")
    yield history, history_plain, answer.calls, stats, ""
    if not compare:
        return
    plain = _Answer()
    off = make_config(top_k, max_calls, tools, max_new_tokens, stop_at_newline, style, disabled=True,
                      constrain=constrain, card=card)
    for event in _stream(model, tok, prompt, registry, off):
        plain.feed(event)
        if event.kind == "text":
            yield history, history_plain + plain.messages(), answer.calls, stats, ""
    history_plain = history_plain + plain.messages()
    yield history, history_plain, answer.calls, stats + "  \n" + _stats_line(plain.done, "tools disabled"), ""


def card_settings(model_name: str | None) -> dict[str, Any]:
    """The decoding settings the (loaded) model's card sets; {} for a model without a card."""
    from toolformer_app.models import card_inference

    try:
        return card_inference(model_name)
    except Exception:  # a name that is no model: the paper's decoding
        return {}


def threshold_default(model_name: str | None) -> float:
    """The call threshold in the model's card (calibrated on its training sources), else 0 (top-k)."""
    from toolformer_app.models import call_threshold

    try:
        return call_threshold(model_name) or 0.0
    except Exception:  # a name that is no model: top-k
        return 0.0


def model_choices(include_checkpoints: bool = True) -> list[tuple[str, str]]:
    """Presets (base models, then shipped adapters), then finished finetunes from the job store (newest first)."""
    from toolformer_app.models import ADAPTER_PRESETS, finetune_dir, preset_names

    out = [(f"{name} ({'shipped Toolformer' if name in ADAPTER_PRESETS else 'preset'})", name)
           for name in preset_names()]
    if include_checkpoints:
        try:
            from toolformer_app import training

            for j in training.list_jobs(limit=50):
                if j.status == "succeeded" and j.out_dir and Path(j.out_dir).exists():
                    # by job id, never the server path (values show in the API and every page)
                    value = j.id if finetune_dir(j.id) is not None else j.out_dir
                    if value != j.id and config.public():
                        continue  # a finetune written outside the data dir (CLI --out): not loadable there
                    out.append((f"finetune {j.id}" + (" (LoRA)" if j.config.get("lora") else ""), value))
        except Exception:  # a broken job store must not break the model list
            pass
    from toolformer_app.ui.runtime import offered_models

    return offered_models(out)  # on a public deployment, only what the allow-list loads


def refresh_models(current: str | None):
    choices = model_choices()
    return gr.update(choices=choices, value=current or config.default_chat_model())


def on_compare(compare: bool):
    return gr.update(visible=bool(compare))


def math_accuracy(model_name: str | None) -> str:
    """The model's measured accuracy on arithmetic word problems with tools (its card's eval results), or ""."""
    from toolformer_app.models import ADAPTER_PRESETS, shipped_adapter

    try:
        if model_name not in ADAPTER_PRESETS:
            return ""
        import json

        results = json.loads((shipped_adapter(model_name) / "data" / "eval_results.json").read_text(encoding="utf-8"))
        entry = results["suites"]["math"]["tools"]
        return f"{100 * entry['accuracy']:.0f}% of {entry['n']}"
    except Exception:  # no card results: say nothing rather than guess
        return ""


def intro(model_name: str | None) -> str:
    acc = math_accuracy(model_name)
    known = (f" The shipped model often writes the wrong operation on such questions (right on {acc} arithmetic "
             "word problems of the test split), e.g. `347 * 289` for the bakery's total: a known limit of a "
             "135M model." if acc else "")
    return ("Each message is completed on its own (no chat memory). The model starts a call when \" [\" is among "
            "its top-k next tokens (or p(\" [\") reaches the card's calibrated threshold); the tool runs at \"->\" "
            "and the text goes on. Ask a question (\"What is the capital of Australia?\", \"A bakery sold 347 loaves "
            "on Monday and 289 on Tuesday. How many loaves did it sell in total?\") or pick an example." + known)


def build(shared) -> None:
    gr.Markdown(intro(config.default_chat_model()), elem_id="chat-intro")
    with gr.Row():
        model = gr.Dropdown(model_choices(), value=config.default_chat_model(), allow_custom_value=True,
                            label="Model (preset, finished finetune, hub id or directory)", scale=3,
                            elem_id="chat-model")
        refresh = gr.Button("↻", size="sm", scale=0, min_width=40)
        compare = gr.Checkbox(False, label="Compare with tools disabled", scale=1, elem_id="chat-compare")
    with gr.Row():
        chat = gr.Chatbot(label="With tools", height=420, elem_id="chat-tools", latex_delimiters=[],
                          feedback_options=None, group_consecutive_messages=True)
        chat_plain = gr.Chatbot(label="Tools disabled (p(\" [\") = 0)", height=420, visible=False,
                                elem_id="chat-plain", latex_delimiters=[], feedback_options=None)
    with gr.Row():
        msg = gr.Textbox(label="Prompt", lines=3, scale=5, elem_id="chat-input",
                         placeholder="A prompt to complete; the examples below make the model use the Calculator.")
        with gr.Column(scale=1, min_width=120):
            send = gr.Button("Send", variant="primary", elem_id="chat-send")
            stop = gr.Button("Stop", variant="stop", elem_id="chat-stop")
            clear = gr.Button("Clear", elem_id="chat-clear")
    stats = gr.Markdown(elem_id="chat-stats")
    with gr.Accordion("Controls", open=True):
        with gr.Row():
            top_k = gr.Slider(0, 50, value=_paper_k(), step=1, label="top-k: call when \" [\" is among the k likeliest tokens",
                              elem_id="chat-topk")
            max_calls = gr.Slider(0, 5, value=1, step=1, label="max calls per answer")
            max_new = gr.Slider(8, 256, value=48, step=8, label="max new tokens")
        with gr.Row():
            tools = gr.CheckboxGroup(user_tools.choices(), value=list(TOOL_NAMES), label="Enabled tools",
                                     elem_id="chat-tools-enabled")
            stop_nl = gr.Checkbox(True, label="Stop at the end of the answer (line; first sentence in the paper's style)")
            constrain = gr.Checkbox(True, label="Only enabled tools can be written (name trie)",
                                    elem_id="chat-constrain")
        with gr.Row():
            threshold = gr.Slider(0, 0.5, value=threshold_default(config.default_chat_model()), step=0.001,
                                  label="Call threshold on p(\" [\") (0: use top-k; default: the model card's "
                                        "calibrated value)", elem_id="chat-threshold")
        template = gr.Radio(PROMPT_STYLES, value="paper", label="Prompt style", elem_id="chat-style")
    with gr.Accordion("Calls (JSON)", open=False):
        calls = gr.JSON(label="Tool calls of the last answer", elem_id="chat-calls")
    prompts = example_prompts()
    gr.Examples(prompts, inputs=msg, label="Example prompts (Calculator: two worked lines, then this question; QA: "
                                           "a question or a statement to complete)",
                example_labels=[example_label(p) for p in prompts], cache_examples=False)

    event = send.click(respond, [msg, chat, chat_plain, model, top_k, max_calls, tools, max_new, stop_nl, template,
                                 compare, threshold, constrain], [chat, chat_plain, calls, stats, msg], api_name="chat",
                       concurrency_id="chat", concurrency_limit=CHAT_SESSIONS)
    submit = msg.submit(respond, [msg, chat, chat_plain, model, top_k, max_calls, tools, max_new, stop_nl, template,
                                  compare, threshold, constrain], [chat, chat_plain, calls, stats, msg],
                        api_visibility="private", concurrency_id="chat", concurrency_limit=CHAT_SESSIONS)
    stop.click(None, None, None, cancels=[event, submit], api_visibility="private")
    clear.click(lambda: ([], [], None, ""), None, [chat, chat_plain, calls, stats], api_visibility="private")
    compare.change(on_compare, compare, chat_plain, api_visibility="private")
    refresh.click(refresh_models, model, model, api_visibility="private")
    model.change(threshold_default, model, threshold, api_visibility="private")
    shared.chat_model = model
