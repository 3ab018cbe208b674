"""The finetune's tokens/s against the machine's limit: forward + backward of the same model and batch shape.

The finetune is the real one (``run_finetune``, the trainer path a job runs) on the shipped adapter's
mix with its card's hyperparameters, for a few steps with no evaluation or checkpoint in between; its
tokens/s is the trainer's own (real tokens over the time inside steps), after --warmup steps. It runs
padded (every text padded to the batch's longest, as before packing) and packed (the default), unless
--modes says otherwise. The limit is forward + backward of the same model (same precision, LoRA) on
batch-size x max-length real tokens, all attended: no padding, no optimizer. It is timed before and
after the finetunes and their mean is the figure, so a machine's drift weighs on both sides.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

SHIPPED = "smollm2-135m-toolformer"
MODES = ("padded", "packed")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="JSONL to train on (default: the shipped adapter's mix, data/mix.jsonl)")
    p.add_argument("--model", default=None, help="base model (default: the shipped card's)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per mode, after --warmup")
    p.add_argument("--warmup", type=int, default=1, help="first steps left out of the figure")
    p.add_argument("--batch-size", type=int, default=None, help="texts per step (default: the card's)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per row (default: the card's)")
    p.add_argument("--modes", default=",".join(MODES), help="padded, packed or both (default)")
    p.add_argument("--limit-reps", type=int, default=1, help="timed forward+backward passes, before and after")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--positions-only", action="store_true",
                   help="only count the positions an epoch computes per real token, padded and packed (no model run)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def _card() -> tuple[dict[str, Any], Path]:
    from toolformer_app import models

    path = models.SHIPPED_DIR / SHIPPED
    return json.loads((path / models.CARD_NAME).read_text()), path


def _base_config(args: argparse.Namespace, card: dict[str, Any], data: str) -> Any:
    from toolformer_app.training.options import FinetuneConfig

    hp = dict(card.get("hyperparameters", {}))
    never = 10**9  # no checkpoint inside the timed steps
    cfg = FinetuneConfig(
        data=data, model=args.model or hp.get("model", "smollm2-135m"), lora=hp.get("lora", True),
        lora_r=hp.get("lora_r", 16), lora_alpha=hp.get("lora_alpha", 32), lora_dropout=hp.get("lora_dropout", 0.05),
        learning_rate=hp.get("learning_rate"), batch_size=args.batch_size or hp.get("batch_size", 8),
        max_length=args.max_length or hp.get("max_length", 256), mask_results=hp.get("mask_results", True),
        eval_fraction=hp.get("eval_fraction", 0.1), seed=hp.get("seed", 0), precision=hp.get("precision", "auto"),
        max_steps=args.warmup + args.steps, warmup_ratio=hp.get("warmup_ratio", 0.1),
        eval_every=never, save_every=never, eval_on_start=False, memory_check=False, cpu_threads=args.threads,
    )
    return cfg


def _finetune_tok_s(cfg: Any, warmup: int, workdir: Path) -> dict[str, Any]:
    """One real run; tokens/s over the steps after ``warmup``, from its progress events."""
    from toolformer_app.training.events import EventWriter, read_event_file
    from toolformer_app.training.trainer import run_finetune

    events = workdir / "events.jsonl"
    start = time.perf_counter()
    run_finetune(cfg.replace(out_dir=str(workdir / "out")), workdir / "job", job_id=workdir.name,
                 events=EventWriter(events))
    wall = time.perf_counter() - start
    seen = read_event_file(events)
    steps = [e for e in seen if e["type"] == "progress"]
    first, last = steps[warmup - 1] if warmup else {"tokens_seen": 0, "train_s": 0.0}, steps[-1]
    tokens = last["tokens_seen"] - first["tokens_seen"]
    seconds = last["train_s"] - first["train_s"]
    packing = next((e.get("packing") for e in seen if e["type"] == "start"), None)
    return {"tok_s": round(tokens / seconds, 1), "tokens": tokens, "seconds": round(seconds, 2),
            "s_per_step": round(seconds / (len(steps) - warmup), 2), "packing": packing, "run_wall_s": round(wall, 1)}


def _slots(examples: list[dict], batch_size: int, max_length: int, seed: int) -> dict[str, Any]:
    """Token positions computed per real token over one epoch of seeded random batches, padded and packed.

    Machine-independent: the share of the forward and backward passes spent on padding.
    """
    import random

    from toolformer_app.training import data as tdata

    lengths = [len(e["input_ids"]) for e in examples]
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    real = padded = packed = 0
    for s in range(0, len(order), batch_size):
        batch = [lengths[i] for i in order[s : s + batch_size]]
        rows = tdata.pack_rows(batch, max_length)
        real += sum(batch)
        padded += len(batch) * max(batch)
        packed += len(rows) * max(sum(batch[i] for i in row) for row in rows)
    return {"real_tokens": real, "padded_positions_per_token": round(padded / real, 3),
            "packed_positions_per_token": round(packed / real, 3)}


def _limit_passes(model: Any, ids: Any, amp: dict[str, bool], reps: int) -> list[float]:
    """Seconds of each forward + backward on ``ids`` (every token real and trained)."""
    import torch

    model.train()
    dtype = torch.bfloat16 if amp.get("bf16") else torch.float16
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        with torch.autocast(device_type=ids.device.type, dtype=dtype, enabled=bool(amp)):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return times


def _full_rows(texts: list[str], tokenizer: Any, rows: int, width: int) -> Any:
    """rows x width token ids cut from the mix's own texts, end to end (no padding anywhere)."""
    import torch

    stream: list[int] = []
    for text in texts:
        stream.extend(tokenizer(text)["input_ids"])
        if len(stream) >= rows * width:
            break
    while len(stream) < rows * width:  # a tiny data file: repeat it
        stream = stream + stream
    return torch.tensor(stream[: rows * width], dtype=torch.long).view(rows, width)


def run(args: argparse.Namespace) -> int:
    import torch

    from toolformer_app import config
    from toolformer_app.training import data as tdata
    from toolformer_app.training.loading import load_training_model
    from toolformer_app.training.trainer import validate_inputs

    card, shipped = _card()
    data = args.data or str(shipped / "data" / "mix.jsonl")
    cfg = _base_config(args, card, data)
    prep = validate_inputs(cfg.replace(out_dir=""))
    if args.threads:
        torch.set_num_threads(args.threads)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        print(f"error: --modes takes {', '.join(MODES)} (got {args.modes!r})")
        return 2

    if args.positions_only:
        from transformers import AutoTokenizer

        from toolformer_app.training.loading import resolve_model

        tokenizer = AutoTokenizer.from_pretrained(resolve_model(cfg.model))
        slots = _slots(tdata.build_dataset(prep.train_texts, tokenizer, cfg), cfg.batch_size, cfg.max_length, cfg.seed)
        print(f"batch {cfg.batch_size}, max length {cfg.max_length}: positions per real token over an epoch: "
              f"padded {slots['padded_positions_per_token']}, packed {slots['packed_positions_per_token']}")
        if args.json:
            print(json.dumps(slots | {"batch_size": cfg.batch_size, "max_length": cfg.max_length, "data": data}))
        return 0
    model, tokenizer, amp = load_training_model(cfg)
    ids = _full_rows(prep.train_texts, tokenizer, cfg.batch_size, cfg.max_length)
    limit_tokens = ids.numel()
    _limit_passes(model, ids, amp, 1)  # warm-up: allocator, kernels
    before = _limit_passes(model, ids, amp, args.limit_reps)

    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-finetune-", dir=config.data_dir()) as tmp:
        # The card's training split, written out, and no held-out set: no evaluation anywhere in the runs
        train_file = Path(tmp) / "train.jsonl"
        train_file.write_text("".join(json.dumps({"text": t}) + "\n" for t in prep.train_texts), encoding="utf-8")
        run_cfg = cfg.replace(data=str(train_file), eval_fraction=0.0)
        for mode in modes:
            workdir = Path(tmp) / mode
            workdir.mkdir()
            runs[mode] = _finetune_tok_s(run_cfg.replace(packing=mode == "packed"), args.warmup, workdir)
    after = _limit_passes(model, ids, amp, args.limit_reps)
    limit_s = (sum(before) / len(before) + sum(after) / len(after)) / 2
    limit_tok_s = limit_tokens / limit_s

    main = runs.get("packed") or runs[modes[0]]
    examples = tdata.build_dataset(prep.train_texts, tokenizer, cfg)
    stats = tdata.dataset_stats(examples)
    report: dict[str, Any] = {
        "train_tok_s": main["tok_s"],
        "limit_tok_s": round(limit_tok_s, 1),
        "fraction_of_limit": round(main["tok_s"] / limit_tok_s, 3),
        "modes": runs,
        "limit_runs_s": {"before": [round(t, 2) for t in before], "after": [round(t, 2) for t in after]},
        "limit_batch": [cfg.batch_size, cfg.max_length],
        "steps": args.steps, "warmup_steps": args.warmup,
        "batch_size": cfg.batch_size, "max_length": cfg.max_length, "lora": cfg.lora,
        "mean_text_tokens": round(stats["tokens"] / max(1, stats["sequences"]), 1),
        "epoch_positions": _slots(examples, cfg.batch_size, cfg.max_length, cfg.seed),
        "threads": torch.get_num_threads(),
        "weights": str(next(model.parameters()).dtype).replace("torch.", ""),
        "data": data, "data_sha256": prep.data.sha256,
        "data_is_the_cards": prep.data.sha256 == card.get("data", {}).get("sha256"),
    }
    if "padded" in runs and "packed" in runs:
        report["packed_vs_padded"] = round(runs["packed"]["tok_s"] / runs["padded"]["tok_s"], 2)
    print(f"data {data} ({stats['sequences']} training texts, mean {report['mean_text_tokens']} tokens); "
          f"batch {cfg.batch_size}, max length {cfg.max_length}, LoRA {cfg.lora}, {report['weights']} weights, "
          f"{report['threads']} thread(s)")
    for mode, r in runs.items():
        print(f"finetune {mode:6s} {r['tok_s']:7.1f} tok/s  ({r['tokens']} tokens in {r['seconds']} s, "
              f"{r['s_per_step']} s/step)")
    print(f"limit (forward + backward, {cfg.batch_size} x {cfg.max_length} real tokens) {limit_tok_s:7.1f} tok/s  "
          f"(before {report['limit_runs_s']['before']} s, after {report['limit_runs_s']['after']} s)")
    slots = report["epoch_positions"]
    print(f"positions computed per real token over an epoch: padded {slots['padded_positions_per_token']}, "
          f"packed {slots['packed_positions_per_token']}")
    print(f"train / limit: {report['fraction_of_limit']:.0%}")
    if args.json:
        print(json.dumps(report))
    return 0
