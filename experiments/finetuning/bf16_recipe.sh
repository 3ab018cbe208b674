#!/usr/bin/env bash
# Session 14: the recipe from nothing on a machine with native bf16 (AVX512-BF16), then the dev eval of its
# adapter and of the shipped one, on the same machine, in turn.
# Rule (written after the generate stages, before any other result): replace the shipped adapter only if, on the
# dev split, math + facts as written (tools) > 60 and > the shipped adapter's own sum on this machine, plain calls
# <= 10% and facts as written (disabled) >= 22. Outcome: 27 + 30 = 57, plain 13%: not shipped (README, session 14).
set -euo pipefail
python -m toolformer_app recipe --model smollm2-135m --out runs/r14
for m in runs/r14/adapter smollm2-135m-toolformer; do
  python -m toolformer_app eval --model "$m" --suites math,facts_plain,plain --modes tools,disabled --offset 100 \
    --limit 100 --out "runs/r14/dev_$(basename "$m")"
done
