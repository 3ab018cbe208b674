#!/usr/bin/env bash
# Does QA help facts once the decoder writes QA's input? A model trained on clause calls (the QA input is the clause
# written so far) needs to learn only *when* to ask; the decoder writes the clause after "[QA(" (InferenceConfig.
# clause_inputs, recorded in the card by `finetune --clause-inputs QA`). QA's knowledge holds one almanac passage per
# country (tools/countries.py): the Wikipedia extracts name no capital such as Canberra.
# Data: the shipped mix unchanged (the Calendar and the Calculator held exactly) + QA clause calls on statements and
# questions about countries that no evaluation item names (`generate --countries`, the first 128 texts), mixed with
# call-free texts at ratio 2; the same finetune settings, steps scaled so the epochs stay those of the shipped model.
# Rule (written before any result of this run): it replaces the shipped adapter only if, on the dev split
# (--offset 100 --limit 100), with both models evaluated by the same code: facts (tools) and facts as written
# (tools) are both above the shipped model's, math (tools) is at most 3 points below it, and plain calls <= 10%.
# Every outcome goes to docs/experiments.md ("Facts through QA").
set -euo pipefail
out=${OUT:-runs/experiments/qa-clause-inputs}
shipped=assets/models/smollm2-135m-toolformer
mkdir -p "$out"
[ -f "$out/gen/countries/dataset.jsonl" ] || python -m toolformer_app generate --countries --tools QA \
  --clause-calls QA --k 3 --m 2 --limit 128 --model smollm2-135m --seed 0 --out "$out/gen/countries"
steps=$(python - "$out" "$shipped" <<'PY'
import json, sys
from pathlib import Path
from toolformer_app.files import atomic_write_json, atomic_write_text, jsonl_text, read_jsonl
from toolformer_app.pipeline.mix import MixStats, add_mixes, build_mix
out, shipped = Path(sys.argv[1]), Path(sys.argv[2])
base = list(read_jsonl(shipped / "data/mix.jsonl"))
known = json.loads((shipped / "data/mix.stats.json").read_text())
base_stats = MixStats(**{k: v for k, v in known.items() if k in MixStats.__dataclass_fields__})
qa = build_mix([out / "gen/countries"], plain_ratio=2.0, max_calls_per_text=1, seed=0)
rows, stats = add_mixes([(base, base_stats), qa], seed=0)
atomic_write_text(out / "mix.jsonl", jsonl_text(rows))
atomic_write_json(out / "mix.stats.json", stats)
print(round(160 * len(rows) / len(base)))  # the shipped model's epochs: 160 steps over its 651 rows
PY
)
echo "finetune steps: $steps"
python -m toolformer_app finetune --data "$out/mix.jsonl" --model smollm2-135m --lora --lora-r 16 \
  --max-steps "$steps" --batch-size 8 --lr 0.0004 --seed 0 --clause-inputs QA --out "$out/adapter"
for m in "$out/adapter" smollm2-135m-toolformer; do
  python -m toolformer_app eval --model "$m" --suites math,facts,facts_plain,plain --modes tools,disabled \
    --offset 100 --limit 100 --quiet --out "$out/dev_$(basename "$m")"
done
