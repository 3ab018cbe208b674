#!/usr/bin/env bash
# The recipe from nothing on a machine with native bf16 (AVX512-BF16), then the dev eval of its adapter and of the
# adapter shipped then (commit 5014faa, trained in float32), on the same machine, in turn. Ran at commit 9d0e168.
# Rule (written after the generate stages, before any other result): replace the shipped adapter only if, on the
# dev split, math + facts as written (tools) > 60 and > the shipped adapter's own sum on this machine, plain calls
# <= 10% and facts as written (disabled) >= 22. Outcome: 27 + 30 = 57, plain 13%: not shipped (docs/experiments.md).
set -euo pipefail
out=runs/experiments/bf16-recipe
mkdir -p "$out/before"
git archive 5014faa assets/models/smollm2-135m-toolformer | tar -x -C "$out/before"
python -m toolformer_app recipe --model smollm2-135m --out "$out"
dev="--suites math,facts_plain,plain --modes tools,disabled --offset 100 --limit 100"
python -m toolformer_app eval --model "$out/adapter" $dev --out "$out/dev_bf16"
python -m toolformer_app eval --model "$out/before/assets/models/smollm2-135m-toolformer" $dev --out "$out/dev_before"
