"""The reproduction's accuracy targets checked against an `eval` results.json (the README's target table).

    python -m toolformer_app.evaluation.targets runs/recipe/eval/results.json \
        --calibrated runs/recipe/eval_calibrated/results.json

Each row says the figure, the target and whether it is met, or by how many points it is missed. When the
run's predictions.jsonl lies beside its results.json, a second table splits the math suite by the number of
operations its items need, since a one-operation Calculator call cannot answer a two-step problem.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from toolformer_app.evaluation.report import WRONG_TOOLS, wrong_tool_rate


def _acc(res: dict[str, Any], suite: str, mode: str) -> float | None:
    e = (res.get(suite) or {}).get(mode) or {}
    return None if e.get("accuracy") is None else 100 * e["accuracy"]


def _row(name: str, figure: str, gap: float | None) -> dict[str, Any]:
    """``gap`` >= 0 means met; < 0 is the shortfall in the target's unit."""
    if gap is None:
        return {"target": name, "result": figure, "verdict": "not measured"}
    verdict = "met" if gap >= 0 else f"**missed by {-gap:.1f}**"
    return {"target": name, "result": figure, "verdict": verdict}


def check(results: dict[str, Any], calibrated: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows {target, result, verdict} for the reproduction's targets (accuracies in points)."""
    res = results["suites"]
    rows = []

    base, tools = _acc(res, "math", "base"), _acc(res, "math", "tools")
    if base is not None and tools is not None:
        rows.append(_row("math with tools >= base + 35", f"{base:.0f}% -> {tools:.0f}%", tools - base - 35))
    diag = ((res.get("math") or {}).get("tools") or {}).get("diagnostics") or {}
    n = ((res.get("math") or {}).get("tools") or {}).get("n") or 0
    if n:
        right = 100 * diag.get("call_result_correct", 0) / n
        rows.append(_row("Calculator result right on >= 50% of math items", f"{right:.0f}%", right - 50))
    if tools is not None:
        rows.append(_row("math with tools >= 22", f"{tools:.0f}%", tools - 22))
    qa_calls = qa_right = 0
    for suite in ("facts", "facts_plain"):
        base, tools, off = (_acc(res, suite, m) for m in ("base", "tools", "disabled"))
        if base is None:
            continue
        rows.append(_row(f"{suite} with tools >= base + 10 (moonshot + 15)", f"{base:.0f}% -> {tools:.0f}%",
                         None if tools is None else tools - base - 10))
        rows.append(_row(f"{suite} with tools disabled >= base - 3", f"{base:.0f}% -> {off:.0f}%",
                         None if off is None else off - base + 3))
        entry = (res.get(suite) or {}).get("tools") or {}
        if (entry.get("call_rate") or {}).get("QA"):  # QA's result right where it is the call (QA only on facts)
            d = entry.get("diagnostics") or {}
            qa_calls += d.get("with_call", 0)
            qa_right += d.get("call_result_correct", 0)
    if qa_calls:
        right = 100 * qa_right / qa_calls
        rows.append(_row("the call's result right on >= 60% of the facts items with a call (QA is their tool)",
                         f"{qa_right} of {qa_calls} ({right:.0f}%)", right - 60))
    for suite in WRONG_TOOLS:
        rate = wrong_tool_rate(suite, (res.get(suite) or {}).get("tools"))
        if rate is not None:
            rows.append(_row(f"wrong-tool rate on {suite} <= 5%", f"{100 * rate:.0f}%", 5 - 100 * rate))
    base, tools = _acc(res, "dates", "base"), _acc(res, "dates", "tools")
    if base is not None and tools is not None:
        rows.append(_row("dates with tools >= base + 10", f"{base:.0f}% -> {tools:.0f}%", tools - base - 10))
    ppl = res.get("perplexity") or {}
    b, d = ((ppl.get(m) or {}).get("perplexity") for m in ("base", "disabled"))
    if b and d:
        rows.append(_row("perplexity (disabled) <= base x 1.05", f"{b:.2f} -> {d:.2f}",
                         100 * (1.05 * b - d) / b))
    if calibrated is not None:
        cal = calibrated["suites"]
        plain = ((cal.get("plain") or {}).get("tools") or {}).get("call_rate", {}).get("any")
        math_ = ((cal.get("math") or {}).get("tools") or {}).get("call_rate", {}).get("any")
        if plain is not None:
            rows.append(_row("calibrated: calls on <= 10% of plain", f"{100 * plain:.0f}%", 10 - 100 * plain))
        if math_ is not None:
            rows.append(_row("calibrated: calls on >= 80% of math", f"{100 * math_:.0f}%", 100 * math_ - 80))
    return rows


_OPERATOR = re.compile(r"(?<=[\d)])\s*[-+*/]\s*(?=[\d(])")  # a binary operator between operands


def operations(expression: str) -> int:
    """Binary operations in a suite item's expression: "(26 * 6) + 28" -> 2."""
    return len(_OPERATOR.findall(expression))


def math_by_operations(predictions: list[dict[str, Any]], expressions: dict[str, str]) -> list[dict[str, Any]]:
    """Per number of operations: math items, tools-mode accuracy and Calculator results right (counts)."""
    groups: dict[int, dict[str, Any]] = {}
    for row in predictions:
        if row.get("suite") != "math" or row.get("mode") != "tools" or row.get("id") not in expressions:
            continue
        ops = operations(expressions[row["id"]])
        g = groups.setdefault(ops, {"operations": ops, "items": 0, "correct": 0, "call_result_right": 0})
        g["items"] += 1
        g["correct"] += bool(row.get("correct"))
        g["call_result_right"] += bool(row.get("call_result_correct"))
    return [groups[k] for k in sorted(groups)]


def operations_markdown(groups: list[dict[str, Any]]) -> str:
    lines = ["| operations the item needs | items | correct with tools | Calculator result right |", "|---|---|---|---|"]
    lines += [f"| {g['operations']} | {g['items']} | {g['correct']} | {g['call_result_right']} |" for g in groups]
    return "\n".join(lines)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| target | result | |", "|---|---|---|"]
    lines += [f"| {r['target']} | {r['result']} | {r['verdict']} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m toolformer_app.evaluation.targets", description=__doc__.split("\n")[0])
    p.add_argument("results", help="an eval results.json (paper mode, k = 10)")
    p.add_argument("--calibrated", default=None, help="results.json of the eval with the card's call threshold")
    args = p.parse_args(argv)
    try:
        results = json.loads(Path(args.results).read_text(encoding="utf-8"))
        calibrated = json.loads(Path(args.calibrated).read_text(encoding="utf-8")) if args.calibrated else None
    except (OSError, ValueError) as e:
        p.exit(2, f"error: cannot read results: {e}\n")
    print(markdown(check(results, calibrated)))
    predictions = Path(args.results).with_name("predictions.jsonl")
    if predictions.exists():
        from toolformer_app.evaluation import suites

        rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines() if line.strip()]
        expressions = {it.id: it.meta["expression"] for it in suites.load_suite("math") if "expression" in it.meta}
        groups = math_by_operations(rows, expressions)
        if groups:
            print()
            print(operations_markdown(groups))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
