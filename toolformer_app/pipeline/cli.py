"""`generate`: run the pipeline over a corpus into a resumable output directory.

Under ``accelerate launch`` (or torchrun) each rank takes every WORLD_SIZE-th text, writes its own
work log, and rank 0 merges them into candidates.jsonl, dataset.jsonl and stats.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from toolformer_app.pipeline import corpus
from toolformer_app.pipeline.config import PipelineConfig
from toolformer_app.pipeline.corpus import load_texts  # re-exported: the bench and older code read texts here

__all__ = ["load_texts", "main", "register"]


def add_dataset_arguments(parser: argparse.ArgumentParser, sources: argparse._MutuallyExclusiveGroup) -> None:
    """--dataset (one of generate's sources), --split, --text-field, --id-field, --streaming."""
    sources.add_argument("--dataset", metavar="PATH_OR_ID",
                         help="a `datasets` corpus: a .parquet/.arrow/.jsonl/.csv file, a folder of them, a "
                              "save_to_disk folder, or a hub id (online only)")
    parser.add_argument("--split", default="train", help="--dataset: the split to read (default: train)")
    parser.add_argument("--text-field", default="text", help="--dataset: the column holding the text (default: text)")
    parser.add_argument("--id-field", default="id",
                        help="--dataset: a column of text ids, used when present (default: id; else row:N)")
    parser.add_argument("--streaming", action="store_true",
                        help="--dataset: read rows lazily (corpora larger than memory)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="annotate a corpus with API calls, filter them and write C*",
        description="Sample API calls at the positions the model wants them, execute them, keep those that "
        "lower the weighted loss by at least tau_f, and write candidates.jsonl, dataset.jsonl and stats.json "
        "to --out. Rerunning with the same --out resumes. Under `accelerate launch` the corpus is sharded by rank.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="a .txt (paragraphs or lines) or .jsonl (field \"text\") file")
    src.add_argument("--wiki", action="store_true", help="the shipped English Wikipedia extracts")
    src.add_argument("--arithmetic", action="store_true",
                     help="a seeded corpus of texts that state computed numbers (1000 unless --limit)")
    src.add_argument("--arithmetic-steps", action="store_true",
                     help="a seeded corpus of statements whose operation is carried by words (each, per, more, "
                     "left, percent off) and of two- and three-step calculations")
    src.add_argument("--dated", action="store_true",
                     help="a seeded corpus of dated notices, diaries and logs; the Calendar returns each one's date")
    src.add_argument("--foreign", action="store_true",
                     help="English paragraphs quoting a French or Spanish sentence (the MT corpus)")
    src.add_argument("--countries", action="store_true",
                     help="statements and questions about the capitals and languages of countries that no evaluation "
                     "item names (QA's clause calls)")
    add_dataset_arguments(p, src)
    p.add_argument("--tools", default="Calculator,Calendar", help="comma-separated tool names")
    p.add_argument("--limit", type=int, default=None, help="read at most N texts")
    p.add_argument("--out", required=True, help="output directory (resumable)")
    p.add_argument("--model", default=None, help="preset, hub id or local directory (default: smollm2-135m)")
    p.add_argument("--tau-s", type=float, default=None, help="position threshold (default: per tool)")
    p.add_argument("--k", type=int, default=None, help="positions per text (default: per tool)")
    p.add_argument("--m", type=int, default=None, help="calls sampled per position (default: per tool)")
    p.add_argument("--tau-f", type=float, default=None, help="filter threshold (default: per tool)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--max-call-tokens", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=PipelineConfig.batch_size,
                   help="texts annotated together; their positions sample together (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-prefill", action="store_true",
                   help="let the model write the tool name itself (the paper; small models rarely manage)")
    p.add_argument("--sample-memory-mb", type=int, default=PipelineConfig.sample_memory_mb,
                   help="memory for the sampling batch (calls' keys, attention scores); sets how many rows decode "
                   "together, never the samples (default: %(default)s)")
    p.add_argument("--placebo", action="store_true",
                   help="placebo control: L- also takes the loss with an unrelated call's result (not the paper)")
    p.add_argument("--clause-calls", default="",
                   help="tools that also get, at each chosen position, a call whose input is the clause written "
                   "so far, e.g. QA (not the paper: a small model's own QA inputs are mostly noise)")
    p.set_defaults(func=main)


def _out_refusal(out: Path, run_key: dict) -> str | None:
    """Why ``--out`` cannot take this run (it holds something else, or a run with other settings), or None.
    Like finetune: never write into a directory that holds something else (dot files are our temp files)."""
    saved = out / "config.json"
    if out.exists() and (not out.is_dir() or (not saved.exists() and any(not p.name.startswith(".")
                                                                         for p in out.iterdir()))):
        return f"{out} is not empty and holds no previous `generate` run; use a new --out"
    if not saved.exists():
        return None
    try:  # a setting added since that run was written counts as its default
        previous = {**PipelineConfig().to_dict(), **json.loads(saved.read_text(encoding="utf-8"))}
        for speed_only in ("sample_memory_mb", "batch_size"):
            previous.pop(speed_only, None)
    except (OSError, ValueError):
        previous = None
    return None if previous == run_key else f"{out} holds a run with other settings; use a new --out"


def _cut_long_texts(items: list[tuple]) -> list[tuple]:
    """Texts cut at TOOLFORMER_MAX_TEXT_CHARS, with one warning each: the pipeline scores a text's first
    tokens only, and tokenizing a 100 MB line whole would take gigabytes."""
    from toolformer_app import config

    limit = config.max_text_chars()
    out = []
    for item in items:
        text_id, text = item[0], item[1]
        if len(text) > limit:
            print(f"warning: text {text_id} is {len(text):,} characters; only the first {limit:,} are used "
                  "(TOOLFORMER_MAX_TEXT_CHARS)", file=sys.stderr)
            item = (text_id, text[:limit], *item[2:])
        out.append(item)
    return out


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from toolformer_app import models
    from toolformer_app.pipeline import run as pr
    from toolformer_app.pipeline.filtering import throughput_line
    from toolformer_app.tools import get_tool

    cfg = PipelineConfig(
        tools=tuple(t.strip() for t in args.tools.split(",") if t.strip()), tau_s=args.tau_s, k=args.k, m=args.m,
        tau_f=args.tau_f, temperature=args.temperature, max_call_tokens=args.max_call_tokens,
        batch_size=args.batch_size, seed=args.seed, prefill_tool_name=not args.no_prefill, placebo=args.placebo,
        sample_memory_mb=args.sample_memory_mb,
        clause_calls=tuple(t.strip() for t in args.clause_calls.split(",") if t.strip()),
    )
    try:
        cfg.validate()
        for name in cfg.tools:
            get_tool(name)
        errors: list[str] = []
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {args.limit}")
        metas: dict[str, dict] = {}
        if args.dataset:  # already this rank's own rows
            items = corpus.load_dataset_texts(args.dataset, args.split, args.text_field, args.id_field,
                                              args.streaming, args.limit, *corpus.rank_and_world(), errors)
        else:
            items = load_texts(args.input, args.wiki, args.limit, errors, args.arithmetic, args.dated, args.foreign,
                               metas, steps=args.arithmetic_steps, countries=args.countries)
    except (ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for e in errors[:5]:
        print(f"warning: skipped {e}", file=sys.stderr)

    # accelerate launch / torchrun set RANK and WORLD_SIZE; on CPUs accelerate's own state reports a
    # single process, so the ranks meet through a gloo process group of our own.
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    dist = None
    if world > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    out = Path(args.out)
    source = args.dataset or args.input or next(n for n in ("arithmetic", "arithmetic_steps", "dated", "foreign", "countries",
                                                             "wiki")
                                                   if getattr(args, n))
    run_key = {**cfg.to_dict(), "model": args.model or models.model_id(), "source": source}
    for speed_only in ("sample_memory_mb", "batch_size"):  # a resumed run may use other values
        run_key.pop(speed_only)
    refusal = _out_refusal(out, run_key)
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot write {out} ({exc.strerror or type(exc).__name__}); use another --out", file=sys.stderr)
        return 2
    try:  # before the run's config is written: a model that fails leaves no run behind to refuse the next one
        model, tok = models.load(args.model)
    except models.ModelLoadError as exc:
        if created and not any(out.iterdir()):
            out.rmdir()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if rank == 0 and not (out / "config.json").exists():
        pr.save_config(out, cfg, {k: run_key[k] for k in ("model", "source")})
    items = _cut_long_texts(items)
    done = pr.done_ids(out)
    mine = [(*it, metas.get(it[0])) for n, it in enumerate(items)
            if (args.dataset or n % world == rank) and it[0] not in done]
    log = pr.records_path(out, rank, world)
    tools = [get_tool(n) for n in cfg.tools]
    bar = tqdm(total=len(mine), desc=f"generate[{rank}]" if world > 1 else "generate", unit="text",
               disable=None)
    if done:
        print(f"resuming: {len(done)} texts already done", file=sys.stderr)
    for s in range(0, len(mine), cfg.batch_size):
        batch = pr.annotate_batch(model, tok, mine[s : s + cfg.batch_size], tools, cfg)
        pr.append_records(log, batch)
        bar.update(len(batch))
        bar.set_postfix(candidates=sum(len(r.candidates) for r in batch))
    bar.close()
    if dist is not None:
        dist.barrier()  # every rank's work log is complete before rank 0 merges them
    if rank == 0:
        stats = pr.finalize(out, cfg)
        print(json.dumps({k: stats[k] for k in ("texts_seen", "texts_kept", "kept_at_tau_f", "kept_table")}))
        print(f"wrote {out}/candidates.jsonl, dataset.jsonl, stats.json")
        print(throughput_line(stats))
    if dist is not None:
        dist.barrier()
        dist.destroy_process_group()
    return 0
