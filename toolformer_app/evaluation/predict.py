"""The predictions of one suite item in one mode (paper, section 4): plain greedy for the base model, decoding
with tools for "tools" and "disabled", one item at a time or many rows together (``decoding.BatchDecoder``).

Decoding stops as soon as ``stop(text)`` says the score is decided, or after ``max_new_tokens`` tokens:
stopping early never changes a score, and keeps CPU runs short.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolformer_app.decoding import Steps


def plain_greedy_steps(tok: Any, prompt: str, max_new_tokens: int, eos: Sequence[int],
                       stop: Callable[[str], bool] | None = None) -> Steps:
    """Plain greedy continuation as a decoding coroutine (no tools, no mask): ``Feed`` requests, then one
    TextChunk with the whole text. Stops at eos, after ``max_new_tokens`` tokens, or once ``stop(text)``."""
    from toolformer_app.decoding import Feed, TextChunk

    feed: list[int] = tok.encode(prompt)
    out: list[int] = []
    for _ in range(max_new_tokens):
        logits = yield Feed(feed)
        nxt = int(logits.argmax())
        if nxt in eos:
            break
        out.append(nxt)
        feed = [nxt]
        if stop is not None and stop(tok.decode(out, skip_special_tokens=True)):
            break
    yield TextChunk(tok.decode(out, skip_special_tokens=True))


def plain_greedy(model: Any, tok: Any, prompt: str, max_new_tokens: int,
                 stop: Callable[[str], bool] | None = None) -> str:
    """Plain greedy continuation (the base model: no tools, no mask), with the KV cache.

    Stops at eos, after ``max_new_tokens`` tokens, or once ``stop(text so far)`` holds.
    """
    from toolformer_app.decoding import drive, eos_token_ids

    steps = plain_greedy_steps(tok, prompt, max_new_tokens, eos_token_ids(model, tok), stop)
    return "".join(event.text for event in drive(model, steps))


@dataclass
class Prediction:
    """One example in one mode: the text as generated (calls inline), without calls, and the calls."""

    output: str
    prediction: str
    calls: list[dict[str, Any]] = field(default_factory=list)


class _Collector:
    """Builds a Prediction from a generation's events; ``add`` says when the score is decided (stop there)."""

    def __init__(self, stop: Callable[[str], bool] | None = None):
        self.stop = stop
        self.parts: list[str] = []
        self.plain: list[str] = []
        self.calls: list[dict[str, Any]] = []

    def add(self, event: Any) -> bool:
        from toolformer_app.decoding import CallExecuted, TextChunk

        if isinstance(event, TextChunk):
            self.parts.append(event.text)
            if not event.in_call:
                self.plain.append(event.text)
                return self.stop is not None and self.stop("".join(self.plain))
        elif isinstance(event, CallExecuted):
            self.calls.append({"tool": event.tool, "input": event.input, "output": event.output, "ok": event.ok,
                               "reason": event.reason, "text": event.text})
        return False

    def prediction(self) -> Prediction:
        return Prediction("".join(self.parts), "".join(self.plain), self.calls)


def predict_with_tools(model: Any, tok: Any, prompt: str, tools: Mapping[str, Any], config: Any,
                       stop: Callable[[str], bool] | None = None) -> Prediction:
    """Decode with ``decoding.generate_with_tools``; the prediction is the text outside calls."""
    from toolformer_app.decoding import generate_with_tools

    collector = _Collector(stop)
    events = generate_with_tools(model, tok, prompt, tools, config)
    try:
        for event in events:
            if collector.add(event):
                break
    finally:
        events.close()  # type: ignore[attr-defined]  # a generator: stopping early is fine
    return collector.prediction()


def predict_batch(jobs: Sequence[tuple[Any, ...]], model: Any, tok: Any, batch_size: int,
                  on_done: Callable[[int, Prediction], None] | None = None) -> list[Prediction]:
    """Decode many items together (``decoding.BatchDecoder``), ``batch_size`` rows at a time.

    A job is ``("plain", prompt, max_new_tokens, stop)`` (``plain_greedy``) or ``("tools", prompt, tools,
    InferenceConfig, stop)`` (``predict_with_tools``); each gives what its batch-1 function gives (float32).
    ``on_done(index, prediction)`` is called as each item ends, in the order they end.
    """
    from toolformer_app.decoding import eos_token_ids
    from toolformer_app.decoding.batch import BatchDecoder

    decoder = BatchDecoder(model, tok, max_rows=batch_size)
    eos = eos_token_ids(model, tok)
    collectors: dict[int, _Collector] = {}
    index: dict[int, int] = {}
    for i, job in enumerate(jobs):
        if job[0] == "plain":
            _, prompt, max_new_tokens, stop = job
            collector = _Collector()  # the coroutine stops itself; its one chunk is the whole text
            rid = decoder.submit_steps(plain_greedy_steps(tok, prompt, max_new_tokens, eos, stop), collector.add)
        else:
            _, prompt, tools, config, stop = job
            collector = _Collector(stop)
            rid = decoder.submit(prompt, tools, config, sink=collector.add)
        collectors[rid], index[rid] = collector, i
    out: list[Prediction | None] = [None] * len(jobs)
    pending = set(collectors)
    while pending:
        decoder.step()
        for rid in sorted(r for r in pending if r not in decoder.by_id):
            pending.discard(rid)
            out[index[rid]] = collectors[rid].prediction()
            if on_done is not None:
                on_done(index[rid], out[index[rid]])  # type: ignore[arg-type]
    return out  # type: ignore[return-value]

