#!/usr/bin/env bash
# The recipe from nothing after QA's reader changed (completion format, one passage: 22.5% -> 72.5% of the QA dev
# set, `python experiments/qa/reader_formats.py`), then the dev eval of its adapter and of the adapter shipped before
# it (commit 5014faa), on the same machine, in turn. Its adapter is the one shipped since commit 257a648.
# Rule (written before any result of this run): replace the shipped adapter only if, on the dev split, math + facts
# as written (tools) > 60 and > the shipped adapter's own sum on this machine, plain calls <= 10%, facts as written
# (disabled) >= 22, and the LAMA-format facts with tools no lower than the shipped adapter's.
# Writes the recipe's own output, runs/recipe (what `make toolformer` makes), which the other QA scripts read.
set -euo pipefail
out=runs/experiments/qa-reader-recipe
mkdir -p "$out/before"
git archive 5014faa assets/models/smollm2-135m-toolformer | tar -x -C "$out/before"
python -m toolformer_app recipe --model smollm2-135m --out runs/recipe
dev="--suites math,facts,facts_plain,plain --modes tools,disabled --offset 100 --limit 100"
python -m toolformer_app eval --model runs/recipe/adapter $dev --out "$out/dev_recipe"
python -m toolformer_app eval --model "$out/before/assets/models/smollm2-135m-toolformer" $dev --out "$out/dev_before"
