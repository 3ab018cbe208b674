"""Perplexity on held-out wiki extracts (paper, section 4.3 and Table 8): does finetuning on C* keep the
language model? The base model is measured plainly, the finetuned one with " [" masked ("disabled": its
probability set to 0 and the rest renormalised), each on the first ``ppl_tokens`` tokens of every extract.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from toolformer_app.evaluation.base_cache import BaseCache
from toolformer_app.evaluation.config import EvalConfig, Progress
from toolformer_app.evaluation.report import TOOL_COLUMNS


def perplexity(model: Any, tok: Any, texts: Sequence[str], max_tokens: int = 128, batch_size: int = 8,
               masked_token_id: int | None = None, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Token perplexity of ``texts`` (each cut to its first ``max_tokens`` tokens; the first token unscored).

    With ``masked_token_id`` (the " [" token) it also gives the perplexity with that token's probability
    set to 0 and the rest renormalised, "Toolformer (disabled)"; where the text itself holds that token,
    the unmasked probability is used so the perplexity stays finite.
    """
    import torch

    from toolformer_app.models.forward import logits as _logits

    device = getattr(model, "device", None) or next(model.parameters()).device
    encoded = [ids[:max_tokens] for ids in (tok.encode(t) for t in texts)]
    encoded = [ids for ids in encoded if len(ids) >= 2]
    nll = nll_masked = 0.0
    count = 0
    with torch.inference_mode():
        for s in range(0, len(encoded), batch_size):
            batch = encoded[s : s + batch_size]
            width = max(len(ids) for ids in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for b, seq in enumerate(batch):  # right padding, mask from lengths (SmolLM2's pad is its eos)
                ids[b, : len(seq)] = torch.tensor(seq)
                mask[b, : len(seq)] = 1
            logits = _logits(model, ids.to(device), mask.to(device)).float()[:, :-1]
            target = ids[:, 1:].to(logits.device)
            valid = mask[:, 1:].bool().to(logits.device)
            logp = torch.log_softmax(logits, -1)
            lp = logp.gather(-1, target[..., None])[..., 0]
            nll -= float(lp[valid].double().sum())
            if masked_token_id is not None:
                # log p'(x) = log p(x) - log(1 - p(" [")) for x != " ["
                p_api = logp[..., masked_token_id].exp().clamp(max=1 - 1e-6)
                lp_masked = torch.where(target == masked_token_id, lp, lp - torch.log1p(-p_api))
                nll_masked -= float(lp_masked[valid].double().sum())
            count += int(valid.sum())
            if progress is not None:
                progress(len(batch))
    result: dict[str, Any] = {"texts": len(encoded), "tokens": count,
                              "perplexity": math.exp(nll / count) if count else None}
    if masked_token_id is not None:
        result["perplexity_masked"] = math.exp(nll_masked / count) if count else None
    return result


def perplexity_entries(cfg: EvalConfig, texts: list[str], tuned: tuple[Any, Any], base: tuple[Any, Any],
                       api_id: int, bars: bool, callback: Progress | None,
                       timing: dict[str, float], cache: BaseCache | None = None) -> dict[str, Any]:
    """The results' ``perplexity`` suite: an entry per mode in ``cfg.modes`` (none in "tools", as in Table 8).

    ``tuned`` and ``base`` are (model, tokenizer); when they are one model it is measured once. The base's
    measure is reused from ``cache`` where it holds it; each measure's seconds go into ``timing``.
    """
    from tqdm import tqdm

    def measure(pair: tuple[Any, Any], task: str, masked: bool) -> dict[str, Any]:
        t0 = time.perf_counter()
        bar = tqdm(total=len(texts), desc=task, unit="text", disable=None if bars else True, leave=False)
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            bar.update(n)
            if callback:
                callback(task, done, len(texts))

        res = perplexity(pair[0], pair[1], texts, cfg.ppl_tokens, cfg.ppl_batch_size,
                         api_id if masked else None, step)
        bar.close()
        timing[task] = round(time.perf_counter() - t0, 2)
        return res

    def entry(n: int, ppl: float | None, extra: dict[str, Any]) -> dict[str, Any]:
        return {"n": n, "correct": None, "accuracy": None, "ci_low": None, "ci_high": None,
                "call_rate": {t: 0.0 for t in (*TOOL_COLUMNS, "other", "any")}, "perplexity": ppl, **extra}

    def measure_base() -> dict[str, Any]:
        key = cache.key("perplexity", texts, cfg.ppl_tokens, cfg.ppl_batch_size) if cache is not None else ""
        kept = cache.get_many([key]) if cache is not None else {}
        if key in kept:
            timing["perplexity/base"] = 0.0
            return kept[key]
        res = measure(base, "perplexity/base", masked=False)
        if cache is not None:
            cache.put_many({key: res})
        return res

    same = base[0] is tuned[0]
    tuned_res = measure(tuned, "perplexity/disabled", masked=True) if "disabled" in cfg.modes or same else None
    base_res = tuned_res if same and tuned_res else (measure_base() if "base" in cfg.modes else None)
    out: dict[str, Any] = {}
    if "base" in cfg.modes and base_res:
        out["base"] = entry(base_res["texts"], base_res["perplexity"], {"tokens": base_res["tokens"]})
    if "tools" in cfg.modes:  # as in the paper's Table 8: perplexity is measured with tools disabled
        out["tools"] = entry(len(texts), None, {"note": "not defined with tools; see disabled"})
    if "disabled" in cfg.modes and tuned_res:
        out["disabled"] = entry(tuned_res["texts"], tuned_res["perplexity_masked"],
                                {"tokens": tuned_res["tokens"], "perplexity_unmasked": tuned_res["perplexity"]})
    return out
