#!/usr/bin/env bash
# Session 15: the recipe from nothing after QA's reader changed (completion format, one passage: 22.5% -> 72.5% of
# the QA dev set), then the dev eval of its adapter and of the shipped one, on the same machine, in turn.
# Rule (written before any result of this run): replace the shipped adapter only if, on the dev split, math + facts
# as written (tools) > 60 and > the shipped adapter's own sum on this machine, plain calls <= 10%, facts as written
# (disabled) >= 22, and the LAMA-format facts with tools no lower than the shipped adapter's.
set -euo pipefail
python -m toolformer_app recipe --model smollm2-135m --out runs/r15
for m in runs/r15/adapter smollm2-135m-toolformer; do
  python -m toolformer_app eval --model "$m" --suites math,facts,facts_plain,plain --modes tools,disabled \
    --offset 100 --limit 100 --out "runs/r15/dev_$(basename "$m")"
done
