#!/usr/bin/env bash
# The clause-call data (the recipe's generate runs + QA clause calls, experiments/qa/clause_calls.sh) with the
# Calendar held at the shipped mix's 32 call texts (max_tool_share 0.273 of 118), so that QA's 26 texts are the one
# change from the shipped mix. The clause-call run, whose cap let the Calendar keep 46, never called QA on the dev
# facts and called the Calendar on 19% of them. Same finetune and dev eval as both.
# Rule (written before any result of this run): it replaces the shipped adapter only if, on the dev split, QA is
# called on >= 5% of facts items (tools), math + facts as written (tools) >= 62, facts (tools) >= 54, plain calls
# <= 10%, facts as written (disabled) >= 22 and the wrong-tool rate on facts <= 5%. Else the shipped adapter stays,
# and the row goes to docs/experiments.md either way. Outcome (commit a35df4c): QA called on 46% of dev facts, but
# math + facts as written 50 and plain calls 24%: not shipped.
# Needs runs/recipe/gen/* (`make toolformer`) and runs/experiments/qa-clause-calls/gen/qa (clause_calls.sh).
set -euo pipefail
out=runs/experiments/qa-calendar-held
mkdir -p "$out"
python - "$out" <<'PY'
import json, sys
from toolformer_app.pipeline.mix import write_mix
out = sys.argv[1]
gens = ([f"runs/recipe/gen/{s}" for s in ("calendar", "calculator", "mt", "wiki")]
        + ["runs/experiments/qa-clause-calls/gen/qa"])
print(json.dumps(write_mix(f"{out}/mix.jsonl", gens, plain_ratio=6.0, max_calls_per_text=1, seed=0,
                           max_tool_share=0.273).to_dict()))
PY
python -m toolformer_app finetune --data "$out/mix.jsonl" --model smollm2-135m --lora --lora-r 16 --max-steps 160 \
  --batch-size 8 --lr 0.0004 --seed 0 --out "$out/adapter"
python -m toolformer_app eval --model "$out/adapter" --suites math,facts,facts_plain,plain --modes tools,disabled \
  --offset 100 --limit 100 --out "$out/dev_adapter"
