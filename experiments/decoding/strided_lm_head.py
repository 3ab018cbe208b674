"""Why batched passes that feed more than one token were slow in bf16 on CPU.

    python experiments/decoding/strided_lm_head.py

One pass of 16 rows x 2 new tokens over a 100-token cache, with and without ``logits_to_keep=1``, before
and after ``contiguous_head`` (models.load applies it; here it is taken off first). ``logits_to_keep=1``
hands the LM head ``hidden[:, -1:]``, a strided view when batch > 1 and L > 1. Measured at commit 9753742 (bf16,
AVX512-BF16): the shipped model 1,182 ms strided against 137 ms contiguous; the base model was not slowed
(114 ms) in that run, for a reason not found (both heads are the tied, contiguous embedding matrix).
"""
from __future__ import annotations

import time

import torch

from toolformer_app import models
from toolformer_app.models.forward import contiguous_head


def timed(model, cache, **kw) -> float:
    ts = []
    for _ in range(5):
        x = torch.randint(100, 5000, (16, 2))
        t0 = time.perf_counter()
        model(input_ids=x, cache=cache, use_cache=True, **kw)
        ts.append(time.perf_counter() - t0)
        cache.crop(-2)
    return 1000 * sorted(ts)[2]  # median, ms


def main() -> None:
    for name in ("smollm2-135m-toolformer", "smollm2-135m"):
        one(name)


def one(name: str) -> None:
    model, _ = models.load(name)
    head = model.get_output_embeddings()
    head._forward_pre_hooks.clear()  # as before the fix
    head._toolformer_contiguous = False
    print(f"{name}: dtype {next(model.parameters()).dtype}, {torch.get_num_threads()} threads")
    with torch.inference_mode():
        cache = model(input_ids=torch.randint(100, 5000, (16, 100)), use_cache=True).cache
        print(f"all logits (16 x 2 x vocab):            {timed(model, cache):7.1f} ms")
        print(f"logits_to_keep=1, strided head input:   {timed(model, cache, logits_to_keep=1):7.1f} ms")
        contiguous_head(model)
        print(f"logits_to_keep=1, contiguous_head:      {timed(model, cache, logits_to_keep=1):7.1f} ms")


if __name__ == "__main__":
    main()
