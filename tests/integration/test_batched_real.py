"""Batched decoding with tools on the real default model (smollm2-135m, float32) equals each prompt alone."""

from __future__ import annotations

import pytest

from tests.integration.helpers import SHOTS
from toolformer_app.decoding import InferenceConfig, run_with_tools
from toolformer_app.decoding.batch import generate_batch

pytestmark = pytest.mark.slow

PROMPTS = [
    SHOTS + "The farm has 48 cows and bought 17 more, so it now has",
    SHOTS + "A baker made 12 trays of 30 rolls",  # a call after a few words
    "The capital of France is",
    "Once upon a time, in a small village,",
]


def test_real_model_batch_equals_alone(fp32_model):
    from toolformer_app.tools import get_tool

    model, tok = fp32_model
    tools = {"Calculator": get_tool("Calculator")}
    configs = [InferenceConfig(max_new_tokens=20), InferenceConfig(max_new_tokens=24),
               InferenceConfig(max_new_tokens=12, stop=("\n",)), InferenceConfig(max_new_tokens=12, disabled=True)]
    alone = [run_with_tools(model, tok, p, tools, c) for p, c in zip(PROMPTS, configs, strict=True)]
    batch = generate_batch(model, tok, PROMPTS, tools, configs)
    called = [r.calls[0].token_start for r in alone if r.calls]
    assert len(called) >= 2 and len(set(called)) >= 2, [r.text for r in alone]  # calls at different steps
    for a, b in zip(alone, batch, strict=True):
        assert b.text == a.text and b.token_ids == a.token_ids and b.stop_reason == a.stop_reason
        assert [(c.tool, c.input, c.output, c.start, c.end) for c in b.calls] == \
            [(c.tool, c.input, c.output, c.start, c.end) for c in a.calls]
