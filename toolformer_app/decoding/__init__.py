"""Decoding with tools (paper, section 4.2): decode, pause at "->", run the tool, resume from the KV cache.

The rooms:
- ``config``: ``InferenceConfig``, the decoding settings (the paper's k = 10, one call per input);
- ``prompts``: the paper's zero-shot formats and the stop strings that end an answer;
- ``events``: what a generation streams (``TextChunk``, ``CallStarted``, ``CallExecuted``, ``Done``) and what a
  decoding coroutine asks of its driver (``Feed``, ``Crop``, ``RunTool``);
- ``row``: one generation as a coroutine (``RowDecoder``), driven at batch 1 (``generate_with_tools``);
- ``batch``: many rows in one forward pass (``BatchDecoder``), with the very same decisions;
- ``server``: Chat's decoding server (continuous batching across sessions);
- ``prefix_cache``: the KV of shared prompt starts, computed once;
- ``threads``: one OpenMP team alive at a time;
- ``cli``: the ``chat`` command.

The names below are imported lazily, so that ``import toolformer_app.decoding.prompts`` needs no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "InferenceConfig": "config",
    **dict.fromkeys(("PROMPT_STYLES", "PAPER_QUESTION_SUFFIX", "LAMA_PREFIX", "QA_PREFIX", "format_prompt",
                     "answer_stops"), "prompts"),
    **dict.fromkeys(("TextChunk", "CallStarted", "CallExecuted", "GenerationStats", "Done", "Event", "Result",
                     "Feed", "Crop", "RunTool", "Steps"), "events"),
    **dict.fromkeys(("RowDecoder", "drive", "generate_with_tools", "run_with_tools", "execute_tool",
                     "eos_token_ids", "model_keeps_last"), "row"),
    **dict.fromkeys(("BatchDecoder", "generate_batch"), "batch"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'toolformer_app.decoding' has no attribute {name!r}")
    return getattr(importlib.import_module(f"toolformer_app.decoding.{_EXPORTS[name]}"), name)
