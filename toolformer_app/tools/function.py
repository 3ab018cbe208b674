"""A plain Python function as a tool, taught by a prompt in the toolformer-pytorch README's form.

    Toolformer(model=..., teach_tool_prompt=prompt, tool_id="Calendar", tool=Calendar)
    # or, in a tool file: TOOL = fn; PROMPT = "... Input: [input]"  (``tools.loader``)

The prompt's text before "[input]" is the tool's A.2 prompt prefix; the function gets literal arguments
parsed from the call's input (``calls.call_function``: never ``eval``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from toolformer_app.calls import call_function
from toolformer_app.tools.base import Thresholds, Tool, ToolResult

PLACEHOLDER = "[input]"


@dataclass
class FunctionTool(Tool):
    """A plain function as a tool, taught by a toolformer-pytorch-style prompt that ends in "Input: [input]"."""

    fn: Callable[..., Any] | None = None
    teach_prompt: str = ""
    thresholds: Thresholds = field(default_factory=lambda: Thresholds(tau_s=0.005, k=5, m=5, tau_f=0.3))

    def prompt_prefix(self) -> str:
        text = self.teach_prompt.strip("\n")
        for marker in (PLACEHOLDER, "[INPUT]", "[Input]"):
            if marker in text:
                return text.split(marker)[0]
        return text + "\n\nInput: "

    def run(self, input: str) -> ToolResult:
        try:
            value = call_function(self.fn, input)  # literal arguments only: never eval
        except Exception as exc:  # a user function's failure is a reason, not a crash
            return ToolResult(None, f"{type(exc).__name__}: {exc}")
        return ToolResult(None, "no result") if value is None or str(value) == "" else ToolResult(str(value))
