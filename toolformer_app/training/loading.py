"""The model as a finetune trains it (paper, section 4.1): its name resolved, the weights' precision (with an
fp32 master copy where the weights are bf16), the weights loaded (a LoRA result merged first), and LoRA adapters.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from toolformer_app import models
from toolformer_app.training.options import FinetuneConfig, TrainingInputError


def resolve_model(name: str) -> str:
    """models.resolve, with every failure as a one-line TrainingInputError."""
    name = (name or "").strip()
    looks_like_path = name.startswith(("/", ".", "~")) or name.count("/") > 1 or os.sep in name.replace("/", "")
    if looks_like_path and not Path(name).expanduser().exists():
        raise TrainingInputError(f"model: directory {name} does not exist")
    try:
        return models.resolve(name)
    except models.ModelLoadError as exc:
        raise TrainingInputError(f"model: {exc}") from exc
    except Exception as exc:  # e.g. huggingface_hub's id validation
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrainingInputError(f"model {name!r}: {first}") from exc



# ---------------------------------------------------------------- precision and optimizer


def amp_flags(cfg: FinetuneConfig, cuda: bool) -> tuple[Any, dict[str, bool], bool]:
    """(weight dtype, Trainer bf16/fp16 flags, master weights in the optimizer?)."""
    import torch

    if cfg.precision == "fp32":
        return torch.float32, {}, False
    if not cuda and cfg.precision == "auto":
        from toolformer_app.models import cpu_has_native_bf16

        if not cpu_has_native_bf16():  # emulated bf16: backward ran 26x slower than fp32 (4 vs 106 tok/s)
            return torch.float32, {}, False
    if not cuda:
        if cfg.precision == "fp16":
            raise TrainingInputError("fp16 needs a GPU; use --precision bf16 or fp32 on a CPU")
        # CPU autocast is several times slower than bf16 weights here, so train in bf16 and keep
        # an fp32 master copy in the optimizer (LoRA: the adapters are fp32 already).
        return torch.bfloat16, {}, not cfg.lora
    half_bf16 = cfg.precision in ("auto", "bf16") and torch.cuda.is_bf16_supported()
    if cfg.precision == "bf16" and not half_bf16:
        raise TrainingInputError("this GPU has no bf16; use --precision fp16 or fp32")
    flags = {"bf16": True} if half_bf16 else {"fp16": True}
    # Mixed precision on a GPU: fp32 weights, half activations. A frozen LoRA base can stay half.
    base = (torch.bfloat16 if half_bf16 else torch.float16) if cfg.lora else torch.float32
    return base, flags, False


def master_adamw_class() -> type:
    import torch

    class MasterWeightAdamW(torch.optim.AdamW):
        """AdamW that steps fp32 copies of low-precision (bf16) parameters and writes them back.

        With bf16 weights, an update of lr ~ 5e-5 is below half a ulp for any weight above ~0.02
        and would round away; the fp32 master copy accumulates it. The copies are part of the
        state dict, so a resumed job continues from the exact weights.
        """

        def __init__(self, params, **kwargs):
            groups = list(params)
            if groups and not isinstance(groups[0], dict):
                groups = [{"params": groups}]
            self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
            master_groups = []
            for group in groups:
                masters = []
                for p in group["params"]:
                    m = p.detach().to(torch.float32, copy=True).requires_grad_(True)
                    self._pairs.append((p, m))
                    masters.append(m)
                master_groups.append({**group, "params": masters})
            try:  # the fused kernel is ~5x faster than foreach on a CPU (0.5 s vs 2.5 s for 135M params)
                super().__init__(master_groups, **({"fused": True} | kwargs))
            except (RuntimeError, TypeError, ValueError):
                super().__init__(master_groups, **kwargs)

        @torch.no_grad()
        def step(self, closure=None):
            for p, m in self._pairs:
                m.grad = None if p.grad is None else p.grad.to(torch.float32)
            loss = super().step(closure)
            for p, m in self._pairs:
                p.copy_(m)
            return loss

        def zero_grad(self, set_to_none: bool = True) -> None:
            super().zero_grad(set_to_none=set_to_none)
            for p, _ in self._pairs:
                p.grad = None

        def state_dict(self):
            state = super().state_dict()
            state["master_weights"] = [m.detach() for _, m in self._pairs]
            return state

        def load_state_dict(self, state_dict):
            state_dict = dict(state_dict)
            masters = state_dict.pop("master_weights", None)
            super().load_state_dict(state_dict)
            with torch.no_grad():
                for i, (p, m) in enumerate(self._pairs):
                    m.copy_(masters[i] if masters is not None else p)

    return MasterWeightAdamW


def precision_label(weight_dtype: Any, amp: dict[str, bool], master: bool, lora: bool) -> str:
    """How the run computes, for its start event: "bf16 weights + fp32 master copy", ..."""
    weights = str(weight_dtype).replace("torch.", "").replace("bfloat16", "bf16").replace("float", "fp")
    label = f"{weights} weights" + (" + fp32 master copy" if master else "")
    if lora:
        label = f"{weights} frozen base + fp32 LoRA adapters"
    return label + (f" + {next(iter(amp))} autocast" if amp else "")



# ---------------------------------------------------------------- model loading


def load_model_and_tokenizer(source: str, dtype: Any) -> tuple[Any, Any]:
    """The weights at ``source`` in ``dtype`` (a LoRA result merged into its base) and the tokenizer, ready to train."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import toolformer_app.models.palm  # noqa: F401  (registers the PaLM architecture)

    adapter = Path(source) / "adapter_config.json"
    try:
        if adapter.exists():  # finetuning a LoRA result again: start from the merged weights
            from peft import PeftModel

            base_name = json.loads(adapter.read_text())["base_model_name_or_path"]
            base = AutoModelForCausalLM.from_pretrained(models.resolve(base_name), dtype=dtype)
            model = PeftModel.from_pretrained(base, source).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except models.ModelLoadError as exc:
        raise TrainingInputError(f"model: {exc}") from exc
    except OSError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrainingInputError(f"model: could not load {source!r}: {first}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.use_cache = False  # the KV cache is useless in training and costs memory
    return model, tokenizer


def apply_lora(model: Any, cfg: FinetuneConfig) -> Any:
    """``model`` with LoRA adapters (rank ``cfg.lora_r``) on every linear layer; only the adapters train."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules="all-linear", task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def load_training_model(cfg: FinetuneConfig) -> tuple[Any, Any, dict[str, bool]]:
    """The model as ``run_finetune`` trains it (its precision, LoRA applied when ``cfg.lora``), its
    tokenizer and the autocast flags; for measurements beside a run (``bench finetune``)."""
    import torch

    weight_dtype, amp, _ = amp_flags(cfg, torch.cuda.is_available())
    model, tokenizer = load_model_and_tokenizer(resolve_model(cfg.model), weight_dtype)
    return (apply_lora(model, cfg) if cfg.lora else model), tokenizer, amp


def base_model_reference(name: str, source: str) -> str:
    """What adapter_config.json records as its base: the preset or hub name when portable, else the directory."""
    if name in models.PRESETS or not Path(name).expanduser().exists():
        return name
    return str(Path(source).resolve())

