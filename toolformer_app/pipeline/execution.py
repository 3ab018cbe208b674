"""Step 3 of the paper: execute the sampled calls.

    r = tool(input) for each candidate, or no result with its reason (the call is then never scored)

Each distinct input runs once, all of a batch's inputs in one ``Tool.run_many`` (QA and MT batch their
model); a tool that raises gives a reason, never a crash of a long run.
"""

from __future__ import annotations

from collections import Counter

from toolformer_app.pipeline.config import Candidate
from toolformer_app.tools.base import Tool, ToolResult


def execute_calls(candidates: list[Candidate], tool: Tool, counts: Counter, reasons: Counter) -> None:
    """r = tool(input) for each candidate (``run_calls``), counted (``count_results``)."""
    run_calls(candidates, tool)
    count_results(candidates, counts, reasons)


def run_calls(candidates: list[Candidate], tool: Tool) -> None:
    """Fill each candidate's result, or no result and the reason.

    Each distinct input runs once, all of them in one ``run_many`` (QA and MT batch their model).
    """
    inputs = list(dict.fromkeys(c.input for c in candidates))
    try:
        results = tool.run_many(inputs)
        if len(results) != len(inputs):
            raise ValueError(f"{tool.name}.run_many gave {len(results)} results for {len(inputs)} inputs")
    except Exception:  # a tool bug must not stop a long run: each input alone, each with its reason
        results = []
        for i in inputs:
            try:
                results.append(tool.run(i))
            except Exception as exc:
                results.append(ToolResult(None, f"{type(exc).__name__}: {exc}"))
    cache = {i: (r.output, r.reason) for i, r in zip(inputs, results, strict=True)}
    for c in candidates:
        c.result, c.reason = cache[c.input]
        if c.result is not None and c.result.strip() == "":
            c.result = None


def count_results(candidates: list[Candidate], counts: Counter, reasons: Counter) -> None:
    """Count executed calls and calls without a result (by reason); the latter are not scored."""
    for c in candidates:
        if c.result is None:
            c.reason = c.reason or "no result"
            counts["no_result"] += 1
            reasons[c.reason.split(":")[0][:60]] += 1
        else:
            counts["executed"] += 1
