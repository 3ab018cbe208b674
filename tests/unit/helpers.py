"""Helpers shared by the unit tests."""

from __future__ import annotations

import json
from pathlib import Path


def stats_without_timings(path: Path) -> str:
    """stats.json's text with its throughput section (seconds, which no two runs repeat) removed."""
    stats = json.loads(path.read_text())
    stats.pop("throughput")
    return json.dumps(stats, sort_keys=True)


def save_tiny_llama(path: Path) -> str:
    """A tiny random llama (float32, seeded) saved with the default model's tokenizer: a model dir like any other."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from toolformer_app import models

    tok = AutoTokenizer.from_pretrained(models.resolve("smollm2-135m"))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def default_tokenizer():
    """Only the default model's tokenizer (no weights): SmolLM2, where pad == eos."""
    from transformers import AutoTokenizer

    from toolformer_app import models

    tok = AutoTokenizer.from_pretrained(models.resolve("smollm2-135m"))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok
