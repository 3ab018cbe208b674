"""A model's forward pass as the pipeline and the evaluation use it: logits, or only the rows needed.

``split_head`` separates a plain decoder from its LM head, so that only the positions that are scored
go through the head, a few hundred rows at a time, never the (batch, seq, vocab) block.
"""

from __future__ import annotations

import torch


def logits(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, keep: int = 0):
    """(batch, seq or keep, vocab) logits from an HF model or any module that returns logits."""
    kwargs = {}
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask
    if keep:
        kwargs["logits_to_keep"] = keep
    try:
        out = model(input_ids, **kwargs)
    except TypeError:  # plain nn.Module (``compat``'s PaLM): no mask or logits_to_keep arguments
        out = model(input_ids)
        if keep:
            out = out[:, -keep:] if isinstance(out, torch.Tensor) else out
    return out.logits if hasattr(out, "logits") else out


def contiguous_head(model: torch.nn.Module) -> torch.nn.Module:
    """Make the LM head's input contiguous (once per model; a no-op on contiguous input).

    ``logits_to_keep=1`` hands the head ``hidden[:, -1:]``, a strided view when batch > 1 and more than one
    position is fed; on a bf16 CPU that linear made a (16, 2) pass of the shipped model take 1,182 ms against 137 ms
    with a contiguous copy (`experiments/decoding/strided_lm_head.py`), so every batched pass that fed more
    than one token (prefills, a tool's result) cost about a second.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if isinstance(head, torch.nn.Module) and not getattr(head, "_toolformer_contiguous", False):
        head.register_forward_pre_hook(lambda _module, args: (args[0].contiguous(), *args[1:]))
        head._toolformer_contiguous = True
    return model


# Decoders whose logits are exactly lm_head(last hidden state): no soft-capping, scaling or bias.
_PLAIN_HEAD = {"llama", "mistral", "qwen2", "qwen3"}
HEAD_ROWS = 256  # hidden states sent through the LM head at once: bounds the (rows, vocab) float32 logits


def split_head(model: torch.nn.Module):
    """(decoder, lm_head) when logits = lm_head(decoder(...).last_hidden_state), else None.

    Then only the positions that are needed go through the LM head, and their logits are made a
    few hundred rows at a time, never the (batch, seq, vocab) block.
    """
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in _PLAIN_HEAD or not hasattr(model, "get_decoder"):
        return None
    head = model.get_output_embeddings()
    if head is None or getattr(head, "bias", None) is not None:
        return None
    return model.get_decoder(), head


def head_logprobs(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) for each row of ``hidden`` (rows, dim): float32 log-softmax, HEAD_ROWS rows at a time."""
    out = []
    for s in range(0, hidden.shape[0], HEAD_ROWS):
        logits = head(hidden[s : s + HEAD_ROWS]).float()  # (rows, vocab)
        picked = logits.gather(-1, targets[s : s + HEAD_ROWS, None].to(logits.device))[:, 0]
        out.append(picked - torch.logsumexp(logits, -1))
    return torch.cat(out) if out else hidden.new_zeros(0, dtype=torch.float32)
