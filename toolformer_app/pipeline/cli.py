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

from toolformer_app.pipeline import datasets_source
from toolformer_app.pipeline.config import PipelineConfig

MAX_PASSAGE_WORDS = 120


def _split_passage(text: str, max_words: int = MAX_PASSAGE_WORDS) -> list[str]:
    """Split a long extract into passages of whole sentences, each at most ~max_words words."""
    import re

    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    out, cur = [], []
    for s in sentences:
        if cur and len(" ".join(cur + [s]).split()) > max_words:
            out.append(" ".join(cur))
            cur = []
        cur.append(s)
    if cur:
        out.append(" ".join(cur))
    return [p for p in out if p.strip()]


def load_texts(input_path: str | None = None, wiki: bool = False, limit: int | None = None,
               errors: list[str] | None = None, arithmetic: bool = False) -> list[tuple[str, str]]:
    """(id, text) pairs from a .txt (paragraphs split by blank lines, else one per line), a .jsonl
    (field "text"), the shipped wiki extracts split into passages, or the seeded arithmetic corpus."""
    from toolformer_app.files import read_jsonl

    items: list[tuple[str, str]] = []
    if arithmetic:
        from toolformer_app.pipeline.arithmetic import arithmetic_texts

        return arithmetic_texts(limit or 1000)
    if wiki:
        from toolformer_app.tools.corpus import wiki_passages

        for n, extract in enumerate(wiki_passages()):
            for j, passage in enumerate(_split_passage(extract)):
                items.append((f"wiki:{n}.{j}" if j else f"wiki:{n}", passage))
                if limit and len(items) >= limit:
                    return items
        return items
    if not input_path:
        raise ValueError("give --input FILE, --wiki or --arithmetic")
    path = Path(input_path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise ValueError(f"{path} looks binary; give a .txt or .jsonl file")
    if path.suffix == ".jsonl":
        for n, row in enumerate(read_jsonl(path, errors), 1):
            text = row.get("text")
            if isinstance(text, str) and text.strip():
                items.append((str(row.get("id", f"line:{n}")), text))
            elif errors is not None:
                errors.append(f"row {n}: no non-empty \"text\" field")
    else:
        content = raw.decode("utf-8", errors="replace")
        blocks = [b for b in content.split("\n\n") if b.strip()] if "\n\n" in content else content.splitlines()
        items = [(f"line:{n}", b.strip()) for n, b in enumerate(blocks, 1) if b.strip()]
    if not items:
        raise ValueError(f"{path} holds no text")
    return items[:limit] if limit else items


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
    datasets_source.add_arguments(p, src)
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
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-prefill", action="store_true",
                   help="let the model write the tool name itself (the paper; small models rarely manage)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from toolformer_app import models
    from toolformer_app.pipeline import run as pr
    from toolformer_app.tools import get_tool

    cfg = PipelineConfig(
        tools=tuple(t.strip() for t in args.tools.split(",") if t.strip()), tau_s=args.tau_s, k=args.k, m=args.m,
        tau_f=args.tau_f, temperature=args.temperature, max_call_tokens=args.max_call_tokens,
        batch_size=args.batch_size, seed=args.seed, prefill_tool_name=not args.no_prefill,
    )
    try:
        cfg.validate()
        for name in cfg.tools:
            get_tool(name)
        errors: list[str] = []
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {args.limit}")
        if args.dataset:  # already this rank's own rows
            items = datasets_source.load_dataset_texts(args.dataset, args.split, args.text_field, args.id_field,
                                                       args.streaming, args.limit, *datasets_source.rank_and_world(),
                                                       errors)
        else:
            items = load_texts(args.input, args.wiki, args.limit, errors, args.arithmetic)
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
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.json"
    source = args.dataset or args.input or ("arithmetic" if args.arithmetic else "wiki")
    run_key = {**cfg.to_dict(), "model": args.model or models.model_id(), "source": source}
    if saved.exists():
        previous = json.loads(saved.read_text())
        if previous != run_key:
            print(f"error: {out} holds a run with other settings; use a new --out", file=sys.stderr)
            return 2
    elif rank == 0:
        pr.save_config(out, cfg, {k: run_key[k] for k in ("model", "source")})

    done = pr.done_ids(out)
    mine = [it for n, it in enumerate(items) if (args.dataset or n % world == rank) and it[0] not in done]
    try:
        model, tok = models.load(args.model)
    except models.ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
    if dist is not None:
        dist.barrier()
        dist.destroy_process_group()
    return 0
