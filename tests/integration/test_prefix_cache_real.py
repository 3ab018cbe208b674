"""Shared-prefix KV on the real default model (smollm2-135m, float32): prompts that start with the same
few-shot examples give the same text and calls with the prefix cache as without it, and as each alone."""

from __future__ import annotations

import pytest

from tests.integration.helpers import SHOTS
from toolformer_app.decoding import Done, InferenceConfig, run_with_tools
from toolformer_app.decoding.batch import BatchDecoder

pytestmark = pytest.mark.slow

PROMPTS = [
    SHOTS + "The farm has 48 cows and bought 17 more, so it now has",
    SHOTS + "A baker made 12 trays of 30 rolls",
    SHOTS + "Once upon a time, in a small village,",
    SHOTS + "A box holds 12 eggs, so 35 boxes hold",  # joins later: it finds the entry made for the others
]
CONFIGS = [InferenceConfig(max_new_tokens=20), InferenceConfig(max_new_tokens=24),
           InferenceConfig(max_new_tokens=12, stop=("\n",)), InferenceConfig(max_new_tokens=16)]


def _decode(model, tok, tools, prefix_cache: bool) -> tuple[BatchDecoder, list[Done | None]]:
    decoder = BatchDecoder(model, tok, max_rows=8, prefix_cache=prefix_cache)
    order: list[int] = []
    done: dict[int, Done] = {}
    for wave in (slice(0, 3), slice(3, None)):
        order += [decoder.submit(p, tools, c) for p, c in zip(PROMPTS[wave], CONFIGS[wave], strict=True)]
        done.update((rid, e) for rid, e in decoder.run() if isinstance(e, Done))
    return decoder, [done.get(rid) for rid in order]


def _calls(calls) -> list[tuple]:
    return [(c.tool, c.input, c.output, c.ok, c.start, c.end) for c in calls]


def test_prefix_cache_keeps_text_and_calls(fp32_model):
    from toolformer_app.tools import get_tool

    model, tok = fp32_model
    tools = {"Calculator": get_tool("Calculator")}
    alone = [run_with_tools(model, tok, p, tools, c) for p, c in zip(PROMPTS, CONFIGS, strict=True)]
    assert sum(bool(r.calls) for r in alone) >= 2, [r.text for r in alone]
    on, cached = _decode(model, tok, tools, True)
    off, plain = _decode(model, tok, tools, False)
    for a, b, c in zip(alone, cached, plain, strict=True):
        assert b.text == c.text == a.text and b.token_ids == c.token_ids == a.token_ids
        assert b.stop_reason == c.stop_reason == a.stop_reason
        assert _calls(b.calls) == _calls(c.calls) == _calls(a.calls)
    assert on.stats.prefix_entries == 1 and on.stats.prefix_hits == len(PROMPTS)
    assert on.stats.prefix_tokens >= len(PROMPTS) * 85  # the ~90 tokens of the two examples, per row
    assert on.stats.tokens < off.stats.tokens - 2 * 85 and off.stats.prefix_hits == 0
