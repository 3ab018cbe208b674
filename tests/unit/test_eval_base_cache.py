"""The base mode's rows are reused between evaluations of one base (evaluation/base_cache.py)."""

from __future__ import annotations

import json

import pytest
import torch

from toolformer_app.evaluation.base_cache import BaseCache, fingerprint
from toolformer_app.evaluation.config import EvalConfig
from toolformer_app.evaluation.runner import evaluate
from toolformer_app.tools.calculator import Calculator

PROMPTS = ["Maria has 12 apples and buys 7 more. How many apples does she have? The answer is",
           "A ticket costs 12.5 dollars. How much do 4 tickets cost? The answer is",
           "Omar had 58 cards, got 17 and gave away 9. How many cards does he have? The answer is"]


@pytest.fixture()
def suite(tmp_path):
    path = tmp_path / "three.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "answer": "19", "kind": "math"}) + "\n" for p in PROMPTS))
    return path


@pytest.fixture()
def other_dir(tiny_model, tmp_path):
    """The tiny model with other weights (same shapes), as a "finetune" evaluated against it."""
    model, tok = tiny_model
    other = type(model)(model.config).eval()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.01)
    other.save_pretrained(tmp_path / "other")
    tok.save_pretrained(tmp_path / "other")
    return tmp_path / "other"


def _eval(name, suite, limit=3, base_model=None, **cfg):
    config = EvalConfig(suites=("perplexity",), suite_files=(str(suite),), limit=limit, modes=("base",),
                        max_new_tokens=6, ppl_tokens=16, batch_size=2, **cfg)
    return evaluate(name, config=config, base_model=base_model, tools={"Calculator": Calculator()}, progress=False)


def test_a_second_run_reuses_the_base_rows_and_gets_the_same_results(tiny_model_dir, other_dir, suite, monkeypatch):
    monkeypatch.setenv("TOOLFORMER_DTYPE", "float32")
    first = _eval(str(other_dir), suite, limit=2, base_model=str(tiny_model_dir))
    assert first["base_cache"] == {"hits": 0, "misses": 3}  # 2 items and the perplexity of 2 texts
    again = _eval(str(other_dir), suite, limit=2, base_model=str(tiny_model_dir))
    assert again["base_cache"] == {"hits": 3, "misses": 0}
    assert again["suites"] == first["suites"]
    more = _eval(str(other_dir), suite, base_model=str(tiny_model_dir))  # a third item, perplexity of 3 texts
    assert more["base_cache"] == {"hits": 2, "misses": 2}
    fresh = _eval(str(other_dir), suite, base_model=str(tiny_model_dir), base_cache=False)
    assert "base_cache" not in fresh
    assert fresh["suites"] == more["suites"]


def test_other_weights_or_a_model_object_never_read_the_cache(tiny_model, tiny_model_dir, other_dir, suite,
                                                              monkeypatch):
    monkeypatch.setenv("TOOLFORMER_DTYPE", "float32")
    assert _eval(str(tiny_model_dir), suite)["base_cache"] == {"hits": 0, "misses": 3}  # the base alone
    assert _eval(str(other_dir), suite)["base_cache"] == {"hits": 0, "misses": 3}  # other weights
    assert _eval(str(tiny_model_dir), suite)["base_cache"] == {"hits": 3, "misses": 0}
    model, tok = tiny_model
    # a model object passed in (a scripted wrapper may decide otherwise than its weights): no cache at all
    config = EvalConfig(suites=(), suite_files=(str(suite),), modes=("base",), max_new_tokens=6)
    assert "base_cache" not in evaluate(config=config, model=model, tokenizer=tok,
                                        tools={"Calculator": Calculator()}, progress=False)


def test_fingerprint_and_store(tiny_model, tmp_path):
    model, _ = tiny_model
    assert fingerprint(model) == fingerprint(model)
    copy = type(model)(model.config).eval()
    copy.load_state_dict(model.state_dict())
    assert fingerprint(copy) == fingerprint(model)
    with torch.no_grad():
        next(copy.parameters())[0, 0] += 1e-3
    assert fingerprint(copy) != fingerprint(model)
    store = BaseCache(tmp_path / "c.sqlite", fingerprint(model))
    key = store.key("plain", "prompt", 6)
    assert key != store.key("plain", "prompt", 7) != BaseCache(tmp_path / "c.sqlite", "other").key("plain", "prompt", 6)
    store.put_many({key: {"output": " 19", "prediction": " 19", "calls": []}})
    assert BaseCache(tmp_path / "c.sqlite", fingerprint(model)).get_many([key, "missing"]) == {
        key: {"output": " 19", "prediction": " 19", "calls": []}}


def test_a_damaged_cache_file_only_turns_the_cache_off(tiny_model_dir, suite, monkeypatch, tmp_path):
    from toolformer_app import config

    monkeypatch.setenv("TOOLFORMER_DTYPE", "float32")
    clean = _eval(str(tiny_model_dir), suite)
    damaged = config.data_dir() / "eval_cache.sqlite"
    damaged.write_bytes(b"\x00not a database\xff" * 64)
    with pytest.warns(UserWarning, match="cache off for this run"):
        again = _eval(str(tiny_model_dir), suite)
    assert again["suites"] == clean["suites"] and again["base_cache"] == {"hits": 0, "misses": 3}
    assert damaged.read_bytes() == b"\x00not a database\xff" * 64  # nothing written over it
