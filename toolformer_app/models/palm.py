"""A small PaLM-style decoder (toolformer-pytorch's README example model), as a Hugging Face causal LM.

Parallel attention + feed-forward blocks, rotary position embeddings, tied input/output
embeddings. Being a ``PreTrainedModel`` with a KV cache, it runs everywhere an HF model does:
the pipeline, the finetune job (after ``save_pretrained``), and decoding with tools.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    DynamicCache,
    GenerationMixin,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import CausalLMOutputWithPast


class PaLMConfig(PretrainedConfig):
    model_type = "toolformer-palm"

    def __init__(self, dim: int = 512, num_tokens: int = 49152, depth: int = 2, heads: int = 8, dim_head: int = 64,
                 ff_mult: int = 4, **kwargs):
        self.dim, self.num_tokens, self.depth = dim, num_tokens, depth
        self.heads, self.dim_head, self.ff_mult = heads, dim_head, ff_mult
        kwargs.setdefault("tie_word_embeddings", True)
        super().__init__(**kwargs)
        self.vocab_size = num_tokens
        self.hidden_size = dim
        self.num_hidden_layers = depth
        self.num_attention_heads = heads


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class ParallelBlock(nn.Module):
    """y = x + attn(norm(x)) + ff(norm(x)), as in PaLM."""

    def __init__(self, cfg: PaLMConfig, layer_idx: int):
        super().__init__()
        inner, ff = cfg.heads * cfg.dim_head, cfg.dim * cfg.ff_mult
        self.layer_idx, self.heads, self.dim_head = layer_idx, cfg.heads, cfg.dim_head
        self.norm = nn.LayerNorm(cfg.dim, bias=False)
        self.fused = nn.Linear(cfg.dim, 3 * inner + 2 * ff, bias=False)  # q, k, v, and SwiGLU's two halves
        self.attn_out = nn.Linear(inner, cfg.dim, bias=False)
        self.ff_out = nn.Linear(ff, cfg.dim, bias=False)
        self.splits = (inner, inner, inner, ff, ff)

    def forward(self, x, cos, sin, mask, cache):
        b, t, _ = x.shape
        q, k, v, gate, up = self.fused(self.norm(x)).split(self.splits, dim=-1)
        q, k, v = (z.view(b, t, self.heads, self.dim_head).transpose(1, 2) for z in (q, k, v))  # (b, h, t, d)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # (b, h, s, d) with the past
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        attn = attn.transpose(1, 2).reshape(b, t, -1)
        return x + self.attn_out(attn) + self.ff_out(F.silu(gate) * up)


class PaLM(PreTrainedModel, GenerationMixin):
    """``PaLM(dim=512, num_tokens=49152, depth=2, heads=8, dim_head=64)``: forward(ids) -> logits (b, t, vocab).

    The default vocabulary matches SmolLM2's tokenizer, so the default tokenizer can drive it.
    """

    config_class = PaLMConfig
    base_model_prefix = "palm"
    _tied_weights_keys = {"to_logits.weight": "embed.weight"}

    def __init__(self, config: PaLMConfig | None = None, **kwargs):
        config = config if config is not None else PaLMConfig(**kwargs)
        super().__init__(config)
        self.embed = nn.Embedding(config.num_tokens, config.dim)
        self.layers = nn.ModuleList(ParallelBlock(config, i) for i in range(config.depth))
        self.norm = nn.LayerNorm(config.dim, bias=False)
        self.to_logits = nn.Linear(config.dim, config.num_tokens, bias=False)
        inv = 1.0 / (10000 ** (torch.arange(0, config.dim_head, 2).float() / config.dim_head))
        self.register_buffer("inv_freq", inv, persistent=False)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def get_input_embeddings(self):
        return self.embed

    def get_output_embeddings(self):
        return self.to_logits

    def cuda(self, *args, **kwargs):
        """toolformer-pytorch's example calls ``.cuda()``; without a GPU the model stays on the CPU instead of failing."""
        if not torch.cuda.is_available():
            warnings.warn("no GPU: PaLM stays on the CPU", stacklevel=2)
            return self
        return super().cuda(*args, **kwargs)

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, use_cache=None,
                labels=None, logits_to_keep: int = 0, **_):
        # ``cache`` is the KV cache, named as transformers >= 5.24 names it (``past_key_values`` before).
        b, t = input_ids.shape
        if use_cache and cache is None:
            cache = DynamicCache()
        past = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + t, device=input_ids.device)[None].expand(b, t)
        freqs = position_ids[..., None].float() * self.inv_freq  # (b, t, d/2)
        emb = torch.cat((freqs, freqs), -1)[:, None]  # (b, 1, t, d)
        x = self.embed(input_ids)
        cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        # (b, 1, t, s) boolean mask: causal over absolute positions, and no attention to pads
        s = past + t
        causal = torch.arange(s, device=x.device)[None, :] <= torch.arange(past, s, device=x.device)[:, None]
        mask = causal[None, None].expand(b, 1, t, s)
        if attention_mask is not None:
            mask = mask & attention_mask[:, None, None, -s:].bool()
        for layer in self.layers:
            x = layer(x, cos, sin, mask, cache)
        x = self.norm(x)
        if logits_to_keep:
            x = x[:, -logits_to_keep:]
        logits = self.to_logits(x)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache if use_cache else None)


def register() -> None:
    """Let AutoModelForCausalLM load saved PaLM checkpoints (finetune subprocesses, models.load)."""
    try:
        AutoConfig.register(PaLMConfig.model_type, PaLMConfig)
        AutoModelForCausalLM.register(PaLMConfig, PaLM)
    except ValueError:  # already registered
        pass


register()
