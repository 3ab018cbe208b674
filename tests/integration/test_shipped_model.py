"""The shipped Toolformer (`smollm2-135m-toolformer`: a LoRA adapter on the embedded default) loads offline
and calls the Calculator on a plain arithmetic question, but not on a capital-city question."""

from __future__ import annotations

import json
import time

import pytest

from toolformer_app import config, models
from toolformer_app.decoding import InferenceConfig, format_prompt, run_with_tools
from toolformer_app.tools import default_tools

pytestmark = pytest.mark.slow

NAME = "smollm2-135m-toolformer"
BAKERY = "A bakery sold 347 loaves on Monday and 289 on Tuesday. How many loaves did it sell in total?"
KENYA = "What is the capital of Kenya?"


def test_the_adapter_ships_small_with_its_card_and_data() -> None:
    path = models.shipped_adapter(NAME)
    assert path is not None, "assets/models/smollm2-135m-toolformer is missing"
    size = sum(f.stat().st_size for f in path.glob("adapter_model.*"))
    assert 0 < size <= 25 * 1024 * 1024
    card = json.loads((path / "toolformer_card.json").read_text())
    assert card["kind"] == "lora" and card["base_model"] == "smollm2-135m"
    assert json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"] == "smollm2-135m"
    assert (path / "README.md").exists() and (path / "data" / "mix.jsonl").exists()
    assert NAME in models.preset_names() and config.default_chat_model() == NAME
    from toolformer_app.evaluation.runner import base_model_name

    assert base_model_name(NAME) == "smollm2-135m"  # evaluated against its base, not against itself


@pytest.fixture(scope="module")
def shipped():
    t0 = time.perf_counter()
    pair = models.load(NAME)
    return pair, time.perf_counter() - t0


def test_the_preset_loads_offline_in_seconds_and_calls_the_calculator(shipped) -> None:
    (model, tok), seconds = shipped
    assert seconds < 60
    res = run_with_tools(model, tok, format_prompt(BAKERY), default_tools(),
                         InferenceConfig(max_new_tokens=32, top_k_call=10))
    assert res.calls and res.calls[0].tool == "Calculator" and res.calls[0].ok, res.text
    assert "347" in res.calls[0].input and "289" in res.calls[0].input


def test_a_capital_question_does_not_call_the_calculator(shipped) -> None:
    (model, tok), _ = shipped
    res = run_with_tools(model, tok, format_prompt(KENYA), default_tools(),
                         InferenceConfig(max_new_tokens=24, top_k_call=10))
    assert not any(c.tool == "Calculator" for c in res.calls), res.text
