"""The LM head gets a contiguous input when only the last position's logits are kept (batched passes)."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from toolformer_app.models.forward import contiguous_head


def _tiny() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM(cfg).eval()


def test_the_head_sees_a_contiguous_input_and_the_logits_do_not_change():
    model = _tiny()
    ids = torch.randint(0, 97, (3, 4))  # batch > 1 and several positions: hidden[:, -1:] is a strided view
    with torch.inference_mode():
        before = model(ids, logits_to_keep=1).logits
        contiguous_head(model)
        contiguous_head(model)  # once per model
        head = model.get_output_embeddings()
        assert len(head._forward_pre_hooks) == 1
        seen = []
        head.register_forward_pre_hook(lambda _m, args: seen.append(args[0].is_contiguous()))
        after = model(ids, logits_to_keep=1).logits
    assert seen == [True]
    assert torch.equal(before, after)
    assert after.shape == (3, 1, 97)


def test_loaded_models_have_it(real_model):
    assert real_model[0].get_output_embeddings()._toolformer_contiguous
