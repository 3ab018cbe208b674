"""Batched evaluation vs one item at a time: the `eval` suites and modes, both ways, in one process.

Each (suite, mode) task is decoded with ``--batch-size`` rows and with one item at a time, back to back
(alternating which goes first, so drift on a shared machine evens out), on the same loaded models and
tools; model loading is not timed. Wall seconds and this process's CPU seconds are both reported: on a
shared machine the CPU seconds are the steadier measure of the work done. It counts the predictions.jsonl rows that differ: none in float32
(the identity the tests check); in bf16, a batched pass may round differently from a batch-1 one, so
a near-tie can flip a token. The last line (--json) is one JSON object:
{"one_at_a_time_s", "batched_s", "speedup", "cpu_speedup", "items", "rows_differing", "tasks": [...]}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="preset, hub id or directory (default: Chat's default model)")
    parser.add_argument("--suites", default="math,facts,dates,plain")
    parser.add_argument("--modes", default="base,tools,disabled")
    parser.add_argument("--limit", type=int, default=20, help="items per suite")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--dtype", default=None, help="float32 or bfloat16 (default: the machine's, as `eval`)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def run(args: argparse.Namespace) -> int:
    from toolformer_app import config, models
    from toolformer_app.evaluation import suites as suite_lib
    from toolformer_app.evaluation.config import EvalConfig
    from toolformer_app.evaluation.runner import base_model_name, build_tools, evaluate

    name = args.model or config.default_chat_model()
    model, tok = models.load(name, dtype=args.dtype)
    base_name = base_model_name(name) or name
    base = models.load(base_name, dtype=args.dtype) if base_name != name else (model, tok)
    tools = build_tools(suite_lib.CLOCK, base_name)
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    totals = {"batched": 0.0, "one": 0.0}
    cpu_totals = {"batched": 0.0, "one": 0.0}
    tasks: list[dict[str, Any]] = []
    differing = items = 0
    with tempfile.TemporaryDirectory() as tmp:
        n = 0
        for suite in suites:
            for mode in modes:
                if suite == suite_lib.PLAIN and mode == "base":
                    continue  # eval skips it too
                rows: dict[str, list[str]] = {}
                seconds: dict[str, float] = {}
                cpu: dict[str, float] = {}
                for side in (("batched", "one") if n % 2 == 0 else ("one", "batched")):
                    cfg = EvalConfig(suites=(suite,), modes=(mode,), limit=args.limit, max_new_tokens=args.max_new_tokens,
                                     batch_size=args.batch_size if side == "batched" else 1)
                    out = Path(tmp) / f"{suite}-{mode}-{side}"
                    t0, c0 = time.perf_counter(), time.process_time()
                    evaluate(name, config=cfg, model=model, tokenizer=tok, base=base, base_model=base_name,
                             tools=tools, out_dir=out, progress=False)
                    seconds[side], cpu[side] = time.perf_counter() - t0, time.process_time() - c0
                    rows[side] = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
                n += 1
                diff = sum(a != b for a, b in zip(rows["batched"], rows["one"], strict=True))
                differing += diff
                items += len(rows["one"])
                for side in totals:
                    totals[side] += seconds[side]
                    cpu_totals[side] += cpu[side]
                task = {"task": f"{suite}/{mode}", "items": len(rows["one"]), "one_at_a_time_s": round(seconds["one"], 2),
                        "batched_s": round(seconds["batched"], 2), "one_at_a_time_cpu_s": round(cpu["one"], 2),
                        "batched_cpu_s": round(cpu["batched"], 2), "rows_differing": diff}
                tasks.append(task)
                print(f"{task['task']:>16}: one at a time {seconds['one']:7.1f} s, batched {seconds['batched']:6.1f} s "
                      f"({seconds['one'] / seconds['batched']:.1f}x), {diff}/{len(rows['one'])} rows differ")
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    report = {"one_at_a_time_s": round(totals["one"], 1), "batched_s": round(totals["batched"], 1),
              "speedup": round(totals["one"] / totals["batched"], 2),
              "one_at_a_time_cpu_s": round(cpu_totals["one"], 1), "batched_cpu_s": round(cpu_totals["batched"], 1),
              "cpu_speedup": round(cpu_totals["one"] / max(cpu_totals["batched"], 1e-9), 2), "items": items, "rows_differing": differing,
              "batch_size": args.batch_size, "limit": args.limit, "model": name, "dtype": dtype, "tasks": tasks}
    print(f"one at a time {report['one_at_a_time_s']} s, batched {report['batched_s']} s: {report['speedup']}x "
          f"(CPU seconds {report['one_at_a_time_cpu_s']} vs {report['batched_cpu_s']}: {report['cpu_speedup']}x); "
          f"{differing}/{items} prediction rows differ ({dtype})")
    if args.json:
        print(json.dumps(report))
    return 0
