"""How long a finetune step takes on this CPU: one measured forward + backward, scaled to the settings.

The Finetune tab shows the estimate before a launch; it is measured here, once per model, on a fresh
copy in the CPU training dtype (bf16), so the figure is this machine's and not a table's.
"""

from __future__ import annotations

import threading

PROBE_TOKENS = 128  # the probe: one forward + backward of 1 x 128 tokens, scaled to the settings

_probe: dict[str, float] = {}
_probe_lock = threading.Lock()


def measured_probe(model_name: str) -> float | None:
    """The probe's seconds if ``model_name`` was measured already in this process, else None."""
    return _probe.get(model_name)


def measure_cpu_step(model_name: str) -> float:
    """Seconds for one forward + backward of PROBE_TOKENS tokens on a fresh copy of the model (cached)."""
    with _probe_lock:
        if model_name in _probe:
            return _probe[model_name]
        from transformers import AutoModelForCausalLM

        from toolformer_app import models
        from toolformer_app.training import FinetuneConfig
        from toolformer_app.training.checks import memory_check
        from toolformer_app.training.loading import amp_flags

        source = models.resolve(models.check_allowed(model_name))
        cfg = FinetuneConfig(batch_size=1, max_length=PROBE_TOKENS)
        # the dtype a CPU finetune trains in (float32 where bf16 is emulated, which ran ~5x slower: the probe
        # then overstated every step and took a minute and a half before the tab showed anything)
        dtype, _, _ = amp_flags(cfg, cuda=False)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
        ids = list(range(100, 100 + PROBE_TOKENS))
        examples = [{"input_ids": ids, "labels": ids}]
        memory_check(model, examples, cfg, "cpu", {})  # warm-up: allocator, kernels
        seconds = min(memory_check(model, examples, cfg, "cpu", {}) for _ in range(2))
        del model
        _probe[model_name] = seconds
        return seconds


def step_estimate(seconds_per_probe: float, batch_size: float, max_length: float, grad_accum: float,
                  lora: bool) -> float:
    """A step costs about (tokens per step / probe tokens) probes; the optimizer adds ~20 % (less with LoRA)."""
    tokens = max(1, int(batch_size)) * max(16, int(max_length)) * max(1, int(grad_accum))
    return seconds_per_probe * tokens / PROBE_TOKENS * (1.05 if lora else 1.2)
