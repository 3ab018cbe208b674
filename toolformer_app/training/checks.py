"""Checks on the loaded model before a finetune starts: one batch of the longest texts fits in memory (with advice
when it does not), and packing keeps this model's texts apart (else the run trains padded).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from toolformer_app.training import data as tdata
from toolformer_app.training.options import FinetuneConfig, TrainingInputError


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is running out of memory, on a GPU or a CPU."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


def oom_advice(cfg: FinetuneConfig, width: int) -> str:
    """One line: what ran out of memory, and the settings that would make it fit."""
    tips = [f"lower --batch-size (now {cfg.batch_size}; raise --grad-accum to keep the effective batch)",
            f"lower --max-length (now {cfg.max_length})"]
    if not cfg.lora:
        tips.append("or use --lora")
    return f"out of memory on one batch of {cfg.batch_size} x {width} tokens: " + ", ".join(tips)


def memory_check(model: Any, examples: list[dict], cfg: FinetuneConfig, device: Any, amp: dict[str, bool],
                 collator: Callable[[list[dict]], dict] | None = None) -> float:
    """One real forward+backward on the longest batch (as ``collator`` lays it out; padded by default);
    raises TrainingInputError with advice on OOM.

    Returns the probe's seconds (a first estimate of the step time).
    """
    import torch

    batch = sorted(examples, key=lambda e: len(e["input_ids"]), reverse=True)[: cfg.batch_size]
    inputs = (collator or tdata.PadCollator(0))(batch)
    inputs.pop(tdata.KL_MASK, None)
    width = inputs["input_ids"].shape[1]
    inputs = {k: v.to(device) for k, v in inputs.items()}
    model.to(device)
    model.train()
    dtype = torch.bfloat16 if amp.get("bf16") else torch.float16
    start = time.perf_counter()
    try:
        with torch.autocast(device_type=torch.device(device).type, dtype=dtype, enabled=bool(amp)):
            loss = model(**inputs).loss
        loss.backward()
    except Exception as exc:
        if is_oom(exc):
            raise TrainingInputError(oom_advice(cfg, width)) from exc
        raise
    finally:
        model.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if not math.isfinite(float(loss.detach().float())):
        raise TrainingInputError("the loss on the first batch is not finite; try --precision fp32")
    return time.perf_counter() - start


# ---------------------------------------------------------------- packing


def packing_is_exact(model: Any, examples: list[dict], pad_token_id: int, n: int = 4) -> tuple[bool, float]:
    """Whether this model keeps packed texts apart: the ``n`` shortest texts, packed into one row, must
    give each text the summed loss it gets padded (a model that ignores position ids, or attends across
    the row, fails). Returns (exact, largest relative difference). Runs in eval mode (no dropout).
    """
    import torch

    batch = sorted(examples, key=lambda e: len(e["input_ids"]))[:n]
    if len(batch) < 2:
        return True, 0.0
    was_training = model.training
    model.eval()
    try:
        padded = tdata.text_losses(model, batch, pad_token_id)
        packed = tdata.text_losses(model, batch, pad_token_id, max_length=sum(len(e["input_ids"]) for e in batch))
    finally:
        model.train(was_training)
    worst = max(abs(a - b) / max(1.0, abs(a)) for a, b in zip(padded, packed, strict=True))
    # fp32 agrees to ~1e-6; bf16 matmuls of different shapes round differently, a few parts in 1e3
    tol = 1e-4 if next(model.parameters()).dtype == torch.float32 else 2e-2
    return worst <= tol, worst

