#!/usr/bin/env bash
# More Calculator texts, with the operations the model never writes. The shipped adapter's 100 test-split math calls
# are 65 multiply, 32 subtract, 1 divide: division items get "88 * 8", additions "83 * 7", "times as much"
# "50 - 0.5" (experiments/calculator/call_operations.py); its C* held 52 Calculator texts (25 multiply).
# The steps corpus at 160 texts (38 call texts, mostly divide and add) moved math by -1 to +5 (docs/experiments.md).
# This run scales it 3x: the recipe's generate runs + `generate --arithmetic-steps --limit 480`, the Calendar held at
# the shipped mix's 32 (tool_limits; the share cap trims only the largest tool, now the Calculator, so it is off),
# ratio 6, and 240 steps instead of 160 so the passes over the call texts stay near the shipped run's.
# Rule (written before any result of this run): it replaces the shipped adapter only if, on the dev split (items
# 100-199), math + facts as written (tools) >= 62 (shipped: 27 + 35), facts (tools) >= 54, plain calls <= 10%,
# facts as written (disabled) >= 22 and the wrong-tool rate on facts <= 5%. Else the shipped adapter stays; the row
# goes to docs/experiments.md either way. Outcome (commit 2f5951b): facts (tools) 52 < 54: not shipped.
# Needs runs/recipe/gen/* (the recipe's generate stages: `make toolformer`).
set -euo pipefail
out=runs/experiments/calculator-steps-x3
mkdir -p "$out"
[ -f "$out/gen/steps/stats.json" ] || python -m toolformer_app generate --arithmetic-steps --tools Calculator \
  --limit 480 --model smollm2-135m --seed 0 --out "$out/gen/steps"
python - "$out" <<'PY'
import json, sys
from toolformer_app.pipeline.mix import write_mix
out = sys.argv[1]
gens = [f"runs/recipe/gen/{s}" for s in ("calendar", "calculator", "mt", "wiki")] + [f"{out}/gen/steps"]
print(json.dumps(write_mix(f"{out}/mix.jsonl", gens, plain_ratio=6.0, max_calls_per_text=1, seed=0,
                           max_tool_share=1.0, tool_limits={"Calendar": 32}).to_dict()))
PY
python -m toolformer_app finetune --data "$out/mix.jsonl" --model smollm2-135m --lora --lora-r 16 --max-steps 240 \
  --batch-size 8 --lr 0.0004 --seed 0 --out "$out/adapter"
python -m toolformer_app eval --model "$out/adapter" --suites math,facts,facts_plain,plain --modes tools,disabled \
  --offset 100 --limit 100 --out "$out/dev_adapter"
