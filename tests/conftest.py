"""Shared fixtures. The environment is made offline before anything imports gradio or transformers."""

from __future__ import annotations

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The converted default model is cached once in the repo's runs/models, shared by every test.
REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TOOLFORMER_MODEL_CACHE", str(REPO / "runs" / "models"))

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Properties are checked for what they assert, not for speed: a 2-core machine busy with a finetune
# misses hypothesis' 200 ms deadline on a correct example, which is a flaky failure, not a finding.
settings.register_profile("toolformer", deadline=None)
settings.load_profile("toolformer")


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    """Each test writes to its own data dir (job store, datasets); the model cache stays shared."""
    monkeypatch.setenv("TOOLFORMER_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="session")
def real_model():
    """The embedded default model (smollm2-135m), loaded once per pytest run, bf16 on CPU."""
    from toolformer_app import models

    return models.load("smollm2-135m")


@pytest.fixture(scope="session")
def real_tokenizer(real_model):
    return real_model[1]


@pytest.fixture(scope="session")
def tiny_model(real_tokenizer):
    """A tiny randomly initialised llama with the real tokenizer, fp32: for exact maths."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(real_tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(cfg).eval()
    return model, real_tokenizer


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model, tmp_path_factory):
    """The tiny llama saved to a directory, for commands that load a model by path."""
    path = tmp_path_factory.mktemp("tiny")
    model, tok = tiny_model
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
