"""The data-generation pipeline against a naive reference, same texts and same samples, one process.

The naive reference does what the public reimplementations do: no prompt cache, sampling that
re-encodes the whole prompt for every sample, and three full-length passes per candidate at
batch 1 (L(eps), L(e(c, eps)), L(e(c, r)) over the whole text, full logits). It replays the
pipeline's own sampled tokens, so both see the same calls, and both must keep the same ones.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from collections import Counter

TOOLS_DEFAULT = "Calculator"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=50, help="number of texts (wiki passages the tools select)")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--tools", default=TOOLS_DEFAULT)
    p.add_argument("--dtype", default="float32", help="float32 (default: exact comparison) or bfloat16")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def _texts(n: int, tool_names: list[str]) -> list[tuple[str, str]]:
    from toolformer_app.pipeline.cli import load_texts
    from toolformer_app.tools import get_tool

    tools = [get_tool(t) for t in tool_names]
    out = []
    for text_id, text in load_texts(wiki=True):
        if any(t.selects(text) for t in tools):
            out.append((text_id, text))
            if len(out) == n:
                break
    return out


def naive_reference(model, tok, items, cfg, trace) -> tuple[dict, int, float]:
    """Loss reductions keyed like the pipeline's candidates, the tokens processed, and the seconds."""
    import torch

    from toolformer_app.calls import linearize
    from toolformer_app.pipeline.scoring import loss_weights
    from toolformer_app.pipeline.steps import candidates_from_samples, encode_text, execute_calls
    from toolformer_app.tools import get_tool

    device = next(model.parameters()).device
    w = loss_weights(device)
    texts = dict(items)
    tokens = 0
    start = time.perf_counter()

    def full_logprobs(ids: list[int]) -> torch.Tensor:  # log p(ids[j] | ids[:j]) for every j >= 1
        nonlocal tokens
        tokens += len(ids)
        logits = model(torch.tensor([ids], device=device)).logits[0].float()
        return torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:], device=device)[:, None])[:, 0]

    def loss(prefix: list[int], x: list[int], i: int) -> float:
        lp = full_logprobs(prefix + x)[len(prefix) - 1 :] if prefix else torch.cat([torch.zeros(1), full_logprobs(x).cpu()])
        span = lp[i : i + 5].to(w.device)
        return float(-(span.double() * w[: len(span)]).sum())

    out = {}
    with torch.inference_mode():
        by_position: dict[tuple[str, str], list] = {}
        for text_id, tool_name, pos, samples in trace:
            by_position.setdefault((text_id, tool_name), []).append((pos, samples))
        for (text_id, tool_name), positions in by_position.items():
            tool = get_tool(tool_name)
            enc = encode_text(tok, text_id, texts[text_id])
            prompt = tok(tool.prompt_prefix().rstrip(" "), add_special_tokens=True)["input_ids"]
            body = tok(" " + enc.text + "\nOutput:", add_special_tokens=False)["input_ids"]
            full_logprobs(prompt + body + enc.x_ids)  # position scoring: one uncached pass, full logits
            for pos, samples in positions:
                context = prompt + body + enc.x_ids[:pos] + [tok(" [", add_special_tokens=False)["input_ids"][0]]
                for ids in samples.token_ids:  # replay each sample: encode the context, then decode its tokens
                    if not ids:
                        continue
                    tokens += len(context)
                    o = model(torch.tensor([context], device=device), use_cache=True)
                    cache = o.cache
                    for t in ids[:-1]:
                        o = model(torch.tensor([[t]], device=device), cache=cache, use_cache=True)
                        cache = o.cache
                        tokens += 1
                counts = Counter()
                cands = candidates_from_samples(samples, enc, tool, pos, 0.0, counts)
                execute_calls(cands, tool, counts, Counter())
                for c in cands:
                    if c.result is None:
                        continue
                    l_plain = loss([], enc.x_ids, c.token_pos)
                    z_empty = tok(linearize(c.tool, c.input, ""), add_special_tokens=False)["input_ids"]
                    z_result = tok(linearize(c.tool, c.input, c.result), add_special_tokens=False)["input_ids"]
                    l_empty = loss(z_empty, enc.x_ids, c.token_pos)
                    l_result = loss(z_result, enc.x_ids, c.token_pos)
                    out[(text_id, tool_name, c.token_pos, c.input)] = min(l_plain, l_empty) - l_result
    return out, tokens, time.perf_counter() - start


def _raw_forward_tok_s(model, batch: int, length: int, repeats: int = 3) -> float:
    import torch

    device = next(model.parameters()).device
    ids = torch.randint(100, 10_000, (batch, length), device=device)
    with torch.inference_mode():
        model(ids)
        start = time.perf_counter()
        for _ in range(repeats):
            model(ids)
    return batch * length * repeats / (time.perf_counter() - start)


def run(args: argparse.Namespace) -> int:
    import torch

    from toolformer_app import models
    from toolformer_app.pipeline import PipelineConfig, run_pipeline
    from toolformer_app.pipeline.run import tau_f_per_tool

    tool_names = [t.strip() for t in args.tools.split(",") if t.strip()]
    model, tok = models.load(args.model, dtype=args.dtype)
    items = _texts(args.n, tool_names)
    cfg = PipelineConfig(tools=tuple(tool_names), batch_size=args.batch_size, seed=args.seed)
    print(f"{len(items)} texts, tools {tool_names}, model {args.model} ({args.dtype}), {models.pick_device()}")

    trace: list = []
    run_pipeline(items[:1], cfg, model, tok)  # warm-up (prompt prefix cache, allocator)
    start = time.perf_counter()
    result = run_pipeline(items, cfg, model, tok, trace=trace)
    pipeline_s = time.perf_counter() - start
    ours = {(c.text_id, c.tool, c.token_pos, c.input): c.loss_reduction
            for c in result.candidates if c.loss_reduction is not None}
    naive, naive_tokens, naive_s = naive_reference(model, tok, items, cfg, trace)

    tau_f = tau_f_per_tool(cfg)
    kept_ours = {k for k, v in ours.items() if v >= tau_f[k[1]]}
    kept_naive = {k for k, v in naive.items() if v >= tau_f[k[1]]}
    common = set(ours) & set(naive)
    max_diff = max((abs(ours[k] - naive[k]) for k in common), default=0.0)
    n_cand = max(len(ours), 1)
    secs = result.tokens.seconds
    scoring_tok_s = result.tokens.scoring / max(secs.get("scoring", 1e-9), 1e-9)
    lengths = [len(tok(" " + t, add_special_tokens=False)["input_ids"]) for _, t in items]
    shape_len = max(8, min(512, int(sum(lengths) / max(len(lengths), 1) * 0.6) + 12))
    raw_tok_s = _raw_forward_tok_s(model, cfg.batch_size * 4, shape_len)
    report = {
        "naive_s": round(naive_s, 2),
        "pipeline_s": round(pipeline_s, 2),
        "speedup": round(naive_s / pipeline_s, 2),
        "same_kept": kept_ours == kept_naive and set(ours) == set(naive),
        "max_abs_diff": float(f"{max_diff:.3g}"),
        "candidates_scored": len(ours),
        "kept": len(kept_ours),
        "tokens_per_candidate_naive": round(naive_tokens / n_cand, 1),
        "tokens_per_candidate_pipeline": round(result.tokens.total / n_cand, 1),
        "pipeline_stage_s": {k: round(v, 2) for k, v in secs.items()},
        "scoring_tok_s": round(scoring_tok_s, 1),
        "raw_forward_tok_s": round(raw_tok_s, 1),
        "scoring_vs_raw": round(scoring_tok_s / raw_tok_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "device": models.pick_device() if not torch.cuda.is_available() else torch.cuda.get_device_name(0),
        "cpu": platform.processor() or platform.machine(),
        "dtype": args.dtype,
        "model": args.model,
        "texts": len(items),
    }
    print(f"naive reference : {report['naive_s']:8.2f} s  ({report['tokens_per_candidate_naive']} tokens/candidate)")
    print(f"pipeline        : {report['pipeline_s']:8.2f} s  ({report['tokens_per_candidate_pipeline']} tokens/candidate)")
    print(f"speedup         : {report['speedup']:.2f}x")
    print(f"same kept set   : {report['same_kept']} ({len(kept_ours)} kept of {len(ours)} scored), "
          f"max |diff| {report['max_abs_diff']}")
    print(f"scoring         : {report['scoring_tok_s']} tok/s vs raw forward {report['raw_forward_tok_s']} tok/s "
          f"({report['scoring_vs_raw']:.0%})")
    print(f"peak RSS        : {report['peak_rss_mb']} MB")
    if args.json:
        print(json.dumps(report))
    return 0
