"""Tool-augmented decoding vs plain model.generate: tokens/s, batch 1, greedy, same prompts and lengths.

The prompts are few-shot Calculator texts that end where a call helps, so every tool run makes a
call; its result is appended to the KV cache (prefix_tokens_reencoded must stay 0). Both sides
produce exactly --max-new-tokens model-chosen tokens (eos ignored / min_new_tokens); runs are
interleaved per prompt after a warm-up, so a noisy machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

SHOTS = (
    "The orchard has 36 rows of 24 apple trees, so it holds [Calculator(36 * 24) -> 864] 864 trees in all.\n"
    "Of the 250 students who sat the exam, 215 passed, a pass rate of [Calculator(215 / 250) -> 0.86] 86%.\n"
)
QUESTIONS = (
    "The farm has 48 cows and bought 17 more, so it now has",
    "A box holds 12 eggs, so 35 boxes hold",
    "The tank held 900 liters and 275 liters were used, leaving",
    "Each of the 14 buses carries 52 passengers, so together they carry",
    "The school has 640 pupils in 16 classes, an average of",
    "A bike costs 380 dollars and a helmet 45 dollars, so both cost",
    "The town had 12,400 people in 2000 and 15,100 in 2020, a rise of",
    "There are 7 days in a week, so 23 weeks have",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from toolformer_app.decoding import InferenceConfig  # the paper's k = 10 is its default

    parser.add_argument("--model", default=None, help="preset, hub id or directory (default: the app's default)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: auto)")
    parser.add_argument("--n", type=int, default=4, help=f"prompts (at most {len(QUESTIONS)})")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--top-k", type=int, default=InferenceConfig().top_k_call,
                        help="top_k_call of the tool run (default %(default)s, the paper's)")
    parser.add_argument("--repeat", type=int, default=1, help="timed passes over the prompts")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default); 1 is steadier on a shared machine")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def run(args: argparse.Namespace) -> int:
    import torch

    from toolformer_app import models
    from toolformer_app.decoding import InferenceConfig, run_with_tools

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model, tok = models.load(args.model, device=args.device)
    device = str(next(model.parameters()).device)
    from toolformer_app.tools import get_tool

    tools = {"Calculator": get_tool("Calculator")}
    prompts = [SHOTS + q for q in QUESTIONS[: max(1, min(args.n, len(QUESTIONS)))]]
    n_new = args.max_new_tokens
    cfg = InferenceConfig(max_new_tokens=n_new, top_k_call=args.top_k, max_calls=1, ignore_eos=True)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def tool_run(prompt: str) -> tuple[float, Any]:
        sync()
        t0 = time.perf_counter()
        res = run_with_tools(model, tok, prompt, tools, cfg)
        sync()
        return time.perf_counter() - t0, res

    def plain_run(prompt: str) -> tuple[float, int]:
        sync()
        t0 = time.perf_counter()
        ids = torch.tensor([tok.encode(prompt)], device=device)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new,
                                 min_new_tokens=n_new, do_sample=False, pad_token_id=tok.pad_token_id)
        sync()
        return time.perf_counter() - t0, out.shape[1] - ids.shape[1]

    tool_run(prompts[0])  # warm-up: allocator, kernels, lazy imports
    plain_run(prompts[0])

    tool_s = plain_s = 0.0
    tool_tokens = plain_tokens = calls = reencoded = 0
    rows = []
    for _ in range(max(1, args.repeat)):
        for i, prompt in enumerate(prompts):
            # alternate which side goes first, so drift on a shared machine evens out
            if i % 2:
                ps, pn = plain_run(prompt)
                ts, res = tool_run(prompt)
            else:
                ts, res = tool_run(prompt)
                ps, pn = plain_run(prompt)
            tool_s += ts
            plain_s += ps
            tool_tokens += res.stats.tokens_generated
            plain_tokens += pn
            calls += sum(c.ok for c in res.calls)
            reencoded += res.stats.prefix_tokens_reencoded
            rows.append((i, ts, ps, res))

    tool_tok_s = tool_tokens / tool_s
    plain_tok_s = plain_tokens / plain_s
    report = {
        "tool_tok_s": round(tool_tok_s, 2),
        "plain_tok_s": round(plain_tok_s, 2),
        "speed_ratio": round(tool_tok_s / plain_tok_s, 3),
        "calls_made": calls,
        "prefix_tokens_reencoded": reencoded,
        "runs": len(rows),
        "max_new_tokens": n_new,
        "device": device,
        "threads": torch.get_num_threads(),
        "model": models.model_id(args.model),
    }
    for i, ts, ps, res in rows:
        call = res.calls[0].text.strip() if res.calls else "(no call)"
        print(f"prompt {i}: tools {n_new / ts:6.1f} tok/s  plain {n_new / ps:6.1f} tok/s  {call}")
    print(f"tool-augmented: {tool_tok_s:.1f} tok/s   plain generate: {plain_tok_s:.1f} tok/s   "
          f"ratio {tool_tok_s / plain_tok_s:.3f}")
    print(f"calls made: {calls}/{len(rows)}   prefix tokens re-encoded: {reencoded}   device: {device}")
    if args.json:
        print(json.dumps(report))
    return 0
