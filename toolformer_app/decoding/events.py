"""What decoding with tools streams (events), and what a decoding coroutine asks of its driver (requests)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class _Event:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TextChunk(_Event):
    """Newly decoded text; ``in_call`` for the text of a call (including injected results)."""

    text: str
    in_call: bool = False
    kind: str = field(default="text", init=False)


@dataclass
class CallStarted(_Event):
    """" [" was produced: a call begins at character ``offset`` of the generated text."""

    index: int
    offset: int
    kind: str = field(default="call_started", init=False)


@dataclass
class CallExecuted(_Event):
    """A call ended. ``text`` is its span as it stands in the output, at [start, end)."""

    index: int
    tool: str
    input: str
    output: str | None
    ok: bool
    reason: str = ""
    duration_s: float = 0.0
    text: str = ""
    start: int = -1
    end: int = -1
    token_start: int = -1  # the span in Done.token_ids
    token_end: int = -1
    input_by: str = "model"  # "decoder": the decoder wrote the input (``InferenceConfig.clause_inputs``)
    kind: str = field(default="call", init=False)


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    tokens_generated: int = 0  # chosen by the model (what max_new_tokens counts)
    tokens_injected: int = 0  # tool results and closing brackets, fed without sampling
    forward_passes: int = 0
    tokens_fed: int = 0  # every token passed to the model, prompt included
    prefix_tokens_reencoded: int = 0  # 0: calls resume from the cache
    elapsed_s: float = 0.0
    tool_time_s: float = 0.0
    lookahead_tokens: int = 0  # " [" + name tokens fed to read a declined call's name, then cropped
    calls_declined: int = 0  # the model preferred a disabled tool: no call written there

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_generated / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens_per_s": self.tokens_per_s}


@dataclass
class Done(_Event):
    """The end: the full generated text (calls inline), the calls, why it stopped, statistics."""

    text: str
    calls: list[CallExecuted]
    stop_reason: str  # "eos", "max_new_tokens" or "stop"
    stats: GenerationStats
    token_ids: list[int] = field(default_factory=list)  # generated ids, injected ones included
    kind: str = field(default="done", init=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "calls": [c.to_dict() for c in self.calls],
                "stop_reason": self.stop_reason, "stats": self.stats.to_dict(), "token_ids": self.token_ids}


Event = TextChunk | CallStarted | CallExecuted | Done


@dataclass
class Result:
    """What ``run_with_tools`` returns."""

    text: str
    calls: list[CallExecuted]
    events: list[Event]
    stop_reason: str
    stats: GenerationStats
    token_ids: list[int]


# -- requests a decoding coroutine makes of its driver ---------------------------------------------------
@dataclass
class Feed:
    """A decoder's request to its driver: feed ``ids`` after its cache; the reply is the next-token logits
    (fp32, shape (vocab,)) after them."""

    ids: list[int]


@dataclass
class Crop:
    """A decoder's request: remove its last ``n`` cached tokens. The reply is True, or False when the
    cache could not roll back (the driver then dropped it, and the decoder feeds everything again)."""

    n: int


@dataclass
class RunTool:
    """A decoder's request: run ``fn`` (a tool call, never raising); the reply is what it returns,
    (output or None, reason). A batch driver may run it in a thread while the other rows decode."""

    fn: Callable[[], tuple[str | None, str]]


# What a decoding coroutine yields: requests for its driver, and events for the caller.
Steps = Generator["Feed | Crop | RunTool | Event", Any, None]
