"""Which operations the model's Calculator calls use on the math suite, against those in its C*.

    python experiments/calculator/call_operations.py runs/recipe/eval/predictions.jsonl \
        assets/models/smollm2-135m-toolformer/data/mix.jsonl

Counts calls by their operators (a call with two or more operators counts as "several"); reads the eval's
predictions (tools mode, math suite; the recipe's eval stage writes them: `make toolformer`) and the training
mix's Calculator calls.
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter

OPS = {"*": "multiply", "/": "divide", "+": "add", "-": "subtract"}
CALL = re.compile(r"\[Calculator\(([^)\]]*)\)")


def kind(expr: str) -> str:
    ops = [c for c in re.sub(r"(?<![\d).])-", "", expr.replace(" ", "")) if c in OPS]  # a leading minus is a sign
    return "several" if len(ops) > 1 else OPS[ops[0]] if ops else "none"


def main(predictions: str, mix: str) -> None:
    model = Counter()
    for line in open(predictions, encoding="utf-8"):
        r = json.loads(line)
        if r["suite"] == "math" and r["mode"] == "tools":
            model.update(kind(c["input"]) for c in r["calls"] if c.get("tool") == "Calculator")
    cstar = Counter()
    for line in open(mix, encoding="utf-8"):
        cstar.update(kind(m) for m in CALL.findall(json.loads(line)["text"]))
    for name, c in (("model's calls on math (tools)", model), ("Calculator calls in C*", cstar)):
        print(f"{name}: {sum(c.values())} — " + ", ".join(f"{k} {v}" for k, v in c.most_common()))


if __name__ == "__main__":
    main(*sys.argv[1:3])
