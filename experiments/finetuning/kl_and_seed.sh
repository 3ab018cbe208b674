#!/bin/bash
# The KL lever and a second seed of the recipe's finetune, on the mix shipped at commit 5014faa (the adapter shipped
# then: math 24, facts as written 36 / 36, plain calls 3% on the dev split). Ran at commit 21ed5f7.
# The rule, written before the runs:
# Lever: a KL(base || model) term on call-free tokens (tokens before a text's first call), weight 1.0, added to the
# LM loss of the recipe's finetune (LoRA r=16, 160 steps, batch 8, lr 4e-4), seeds 0 and 1.
# Judged on the dev split (`eval --model ADAPTER --suites math,facts_plain,plain --modes tools,disabled --offset 100
# --limit 100`; base: math 0, facts as written 25).
# It works against forgetting if facts as written (disabled) >= 22 (base - 3) on BOTH seeds.
# It replaces the shipped adapter only if, for the seed-0 run, math + facts as written (tools) > 60, plain calls
# <= 10%, facts as written (disabled) >= 22, and the seed-1 run also meets facts as written (disabled) >= 22.
#
# Result of seed 0, and what ran next: math 22 (calls 100%), facts as written 16 (tools) / 20 (disabled), plain
# calls 7%. 20 < 22: the lever fails its rule on seed 0, so seed 1 with KL was not run. Instead (decided after that
# result): seed 1 WITHOUT the KL term, on the same mix and settings, to measure the spread of the recipe itself
# across seeds (seed 0 is the shipped adapter: 36 / 36). Not a ship candidate unless it beats it by the same rule
# (math + facts as written (tools) > 60, plain <= 10%, facts as written (disabled) >= 22). Results: commit c0e147d,
# docs/experiments.md.
set -eu
out=runs/experiments/kl-and-seed
mkdir -p "$out"
git show 5014faa:assets/models/smollm2-135m-toolformer/data/mix.jsonl > "$out/mix.jsonl"
COMMON="--data $out/mix.jsonl --model smollm2-135m --lora --lora-r 16 --max-steps 160 --batch-size 8 --lr 0.0004"
DEV="--suites math,facts_plain,plain --modes tools,disabled --offset 100 --limit 100 --quiet"
# KL to the base on call-free tokens, seed 0 (finetune 30.7 min on 2 cores)
python -m toolformer_app finetune $COMMON --seed 0 --kl-weight 1.0 --out "$out/kl_seed0/adapter"
python -m toolformer_app eval --model "$out/kl_seed0/adapter" $DEV --out "$out/kl_seed0/eval_dev"
# no KL, seed 1 (finetune 21.3 min)
python -m toolformer_app finetune $COMMON --seed 1 --out "$out/nokl_seed1/adapter"
python -m toolformer_app eval --model "$out/nokl_seed1/adapter" $DEV --out "$out/nokl_seed1/eval_dev"
