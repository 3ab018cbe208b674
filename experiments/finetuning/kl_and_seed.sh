#!/bin/bash
# Session 13: the KL lever and a second seed of the shipped recipe (README, "The shipped Toolformer").
# The rule, written before the runs:
# # KL lever (session 13), rule written before any run
# Lever: a KL(base || model) term on call-free tokens (tokens before a text's first call), weight 1.0, added to the
# LM loss of the shipped recipe's finetune (the shipped mix assets/models/smollm2-135m-toolformer/data/mix.jsonl,
# LoRA r=16, 160 steps, batch 8, lr 4e-4), seeds 0 and 1.
# Judged on the dev split (`eval --model ADAPTER --suites math,facts_plain,plain --modes tools,disabled --offset 100 --limit 100`;
# base: math 0, facts as written 25; shipped r11: math 24, facts as written 36 / 36, plain calls 3%).
# It works against forgetting if facts as written (disabled) >= 22 (base - 3) on BOTH seeds.
# It replaces the shipped adapter only if, for the seed-0 run, math + facts as written (tools) > 60, plain calls
# <= 10%, facts as written (disabled) >= 22, and the seed-1 run also meets facts as written (disabled) >= 22.
# 
# ## Result of seed 0 (15:24), and what runs next
# KL seed 0 on the dev split: math 22 (calls 100%), facts as written 16 (tools) / 20 (disabled), plain calls 7%.
# 20 < 22: the lever fails its rule on seed 0, so seed 1 with KL is not run. Instead (decided now, after the
# result): seed 1 WITHOUT the KL term, on the same mix and settings, to measure the spread of the shipped recipe
# itself across seeds (r11 = seed 0: 36 / 36). Not a ship candidate unless it beats r11 by the same rule as r12
# (math + facts as written (tools) > 60, plain <= 10%, facts as written (disabled) >= 22).
set -eu
MIX=assets/models/smollm2-135m-toolformer/data/mix.jsonl
COMMON="--data $MIX --model smollm2-135m --lora --lora-r 16 --max-steps 160 --batch-size 8 --lr 0.0004"
DEV="--suites math,facts_plain,plain --modes tools,disabled --offset 100 --limit 100 --quiet"
# KL to the base on call-free tokens, seed 0 (finetune 30.7 min on 2 cores)
python -m toolformer_app finetune $COMMON --seed 0 --kl-weight 1.0 --out runs/kl/s0/adapter
python -m toolformer_app eval --model runs/kl/s0/adapter $DEV --out runs/kl/s0/eval_dev
# no KL, seed 1 (finetune 21.3 min)
python -m toolformer_app finetune $COMMON --seed 1 --out runs/kl/nokl_s1/adapter
python -m toolformer_app eval --model runs/kl/nokl_s1/adapter $DEV --out runs/kl/nokl_s1/eval_dev
