"""The LM-backed tools (QA, MT) executing a batch of calls: one call at a time vs ``run_many``.

In ``generate``, a batch's distinct calls of a tool run together (``pipeline.steps.run_calls``):
QA reads its BM25 passages and MT translates with the LM, so ``run_many`` decodes all of their
greedy completions in batches instead of once per call. The inputs are QA questions about wiki
titles and the foreign chunks of the MT corpus; the one-at-a-time runs bracket the batched run
(their mean is the baseline), and the outputs of both are compared.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=16, help="calls per tool")
    p.add_argument("--tools", default="QA,MT")
    p.add_argument("--model", default=None, help="the tools' LM (default: the app's default model)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def _inputs(tool: str, n: int) -> list[str]:
    if tool == "QA":
        from toolformer_app.tools.corpus import wiki_titles

        titles = sorted(wiki_titles())
        return [f"What is {t} known for?" for t in random.Random(0).sample(titles, min(n, len(titles)))]
    from toolformer_app.pipeline.foreign import foreign_texts

    chunks = [m.group(1) for _, text in foreign_texts(4 * n) for m in [re.search(r'"([^"]+)"', text)] if m]
    return chunks[:n]


def run(args: argparse.Namespace) -> int:
    from toolformer_app import config, models
    from toolformer_app.tools import get_tool

    name = args.model or config.default_model()
    models.load(name)  # loaded once, outside the timings
    reports = {}
    for tool_name in [t.strip() for t in args.tools.split(",") if t.strip()]:
        tool = get_tool(tool_name)
        if hasattr(tool, "model_name"):
            tool.model_name = name
        inputs = _inputs(tool_name, args.n)
        tool.run(inputs[0])  # warm-up: retrieval index, language ID, stop-string tables

        def alone() -> tuple[list, float]:
            start = time.perf_counter()
            out = [tool.run(i) for i in inputs]  # noqa: B023 - called right here
            return out, time.perf_counter() - start

        first, first_s = alone()
        start = time.perf_counter()
        batched = tool.run_many(inputs)
        batched_s = time.perf_counter() - start
        _, second_s = alone()
        alone_s = (first_s + second_s) / 2
        reports[tool_name] = {
            "calls": len(inputs),
            "alone_s": round(alone_s, 2),
            "alone_runs_s": [round(first_s, 2), round(second_s, 2)],
            "batched_s": round(batched_s, 2),
            "speedup": round(alone_s / batched_s, 2),
            "same_outputs": sum(a.output == b.output for a, b in zip(first, batched, strict=True)),
            "with_result": sum(b.ok for b in batched),
        }
    print(f"model {name}; {args.n} calls per tool; one at a time (mean of the runs before and after) vs run_many")
    for tool_name, r in reports.items():
        print(f"{tool_name:4s} alone {r['alone_s']:7.2f} s ({r['alone_runs_s'][0]} / {r['alone_runs_s'][1]})  "
              f"batched {r['batched_s']:6.2f} s  speedup {r['speedup']:.2f}x  "
              f"same outputs {r['same_outputs']}/{r['calls']}  with a result {r['with_result']}")
    if args.json:
        print(json.dumps({"model": name, "reports": reports}))
    return 0
