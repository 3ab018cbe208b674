#!/usr/bin/env bash
# Session 16: r15q's data (r15's generate runs + QA clause calls, experiments/qa/clause_calls.sh) with
# the Calendar held at r15's 32 call texts (max_tool_share 0.273 of 118), so that QA's 26 texts are the one change
# from r15. r15q, whose cap let the Calendar keep 46, never called QA on the dev facts and called the Calendar on
# 19% of them. Same finetune and dev eval as r15 and r15q.
# Rule (written before any result of this run): it replaces r15 (shipped) only if, on the dev split, QA is called
# on >= 5% of facts items (tools), math + facts as written (tools) >= 62, facts (tools) >= 54, plain calls <= 10%,
# facts as written (disabled) >= 22 and the wrong-tool rate on facts <= 5%. Else r15 stays, and the row goes to the
# card's Experiments either way. Needs runs/r15/gen/* and runs/r15q/gen/qa (rerun the two scripts above if gone).
set -euo pipefail
out=runs/r16qa
mkdir -p "$out"
python - "$out" <<'PY'
import json, sys
from toolformer_app.pipeline.mix import write_mix
out = sys.argv[1]
gens = [f"runs/r15/gen/{s}" for s in ("calendar", "calculator", "mt", "wiki")] + ["runs/r15q/gen/qa"]
print(json.dumps(write_mix(f"{out}/mix.jsonl", gens, plain_ratio=6.0, max_calls_per_text=1, seed=0,
                           max_tool_share=0.273).to_dict()))
PY
python -m toolformer_app finetune --data "$out/mix.jsonl" --model smollm2-135m --lora --lora-r 16 --max-steps 160 \
  --batch-size 8 --lr 0.0004 --seed 0 --out "$out/adapter"
python -m toolformer_app eval --model "$out/adapter" --suites math,facts,facts_plain,plain --modes tools,disabled \
  --offset 100 --limit 100 --out "$out/dev_adapter"
