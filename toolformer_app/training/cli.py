"""CLI: `finetune` (runs a job in this process, or --detach) and `jobs` (list/show/logs/cancel/resume/wait)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

# flag -> FinetuneConfig field, with its type and help; defaults live in FinetuneConfig only.
_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--data", "data", str, "JSONL with a \"text\" field per line (the pipeline's dataset.jsonl)"),
    ("--model", "model", str, "base model: preset, hub id or directory (default smollm2-135m)"),
    ("--out", "out_dir", str, "final model dir (default DATA_DIR/finetuned/JOB_ID)"),
    ("--lr", "learning_rate", float, "peak learning rate (default 5e-5 full, 2e-4 LoRA)"),
    ("--batch-size", "batch_size", int, "sequences per device per micro-step (default 4)"),
    ("--grad-accum", "grad_accum", int, "micro-steps per optimizer step (default 1)"),
    ("--epochs", "epochs", float, "passes over the data (default 3; ignored with --max-steps)"),
    ("--max-steps", "max_steps", int, "optimizer steps (overrides --epochs)"),
    ("--warmup-ratio", "warmup_ratio", float, "linear warmup share of the steps (default 0.1)"),
    ("--weight-decay", "weight_decay", float, "AdamW weight decay (default 0)"),
    ("--max-grad-norm", "max_grad_norm", float, "gradient clipping (default 1.0)"),
    ("--max-length", "max_length", int, "tokens per sequence (default 256)"),
    ("--long-texts", "long_texts", str, "split (default) or truncate texts longer than --max-length"),
    ("--eval-fraction", "eval_fraction", float, "held-out share for perplexity (default 0.1; 0 = none)"),
    ("--max-eval-examples", "max_eval_examples", int, "cap on the held-out set (default 1000)"),
    ("--eval-every", "eval_every", int, "steps between evaluations (default 50)"),
    ("--save-every", "save_every", int, "steps between checkpoints (default 50)"),
    ("--keep-checkpoints", "keep_checkpoints", int, "checkpoints kept on disk (default 2)"),
    ("--seed", "seed", int, "random seed (default 0)"),
    ("--lora-r", "lora_r", int, "LoRA rank (default 16)"),
    ("--lora-alpha", "lora_alpha", int, "LoRA alpha (default 32)"),
    ("--lora-dropout", "lora_dropout", float, "LoRA dropout (default 0.05)"),
    ("--kl-weight", "kl_weight", float, "KL to the base on call-free tokens, against forgetting (default 0 = off; "
                                        "needs --lora)"),
    ("--clause-inputs", "clause_inputs", str, "tools whose calls in the data are clause calls, e.g. QA: the card "
                                              "then has decoders write those inputs (default: none)"),
    ("--precision", "precision", str, "auto (default), fp32, bf16 or fp16"),
    ("--cpu-threads", "cpu_threads", int, "torch threads on a CPU (default: one per core; 1 on a busy shared machine)"),
    ("--report-to", "report_to", str, "none (default), tensorboard or trackio: also report the run to that tracker "
                                      "(see README, Finetuning)"),
]
_SWITCHES = [  # BooleanOptionalAction: --x / --no-x
    ("--mask-results", "mask_results", "mask the loss on tool results (default on)"),
    ("--packing", "packing", "pack each batch's texts into full rows, attention kept per text (default on)"),
    ("--eval-on-start", "eval_on_start", "evaluate the base model first (default on)"),
    ("--memory-check", "memory_check", "try the longest batch before training (default on)"),
    ("--lora", "lora", "train a LoRA adapter instead of all weights (default off)"),
    ("--merge-lora", "merge_lora", "save merged weights instead of the adapter (default off)"),
    ("--overwrite", "overwrite", "replace a non-empty --out (default off)"),
    ("--cleanup-checkpoints", "cleanup_checkpoints", "delete intermediate checkpoints after success (default on)"),
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "finetune", help="finetune a model on C* (runs here; --detach runs it as a background job)",
        description="Finetune on augmented text x* with the plain LM objective. Progress events go to "
        "DATA_DIR/jobs/JOB_ID/events.jsonl; works under `accelerate launch -m toolformer_app finetune ...`.",
    )
    for flag, dest, typ, help_ in _FLAGS:
        p.add_argument(flag, dest=dest, type=typ, default=None, help=help_)
    for flag, dest, help_ in _SWITCHES:
        p.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_)
    p.add_argument("--job-id", help="the job to run (start_job passes it); a new id if it does not exist")
    p.add_argument("--resume", action="store_true", help="continue the job from its last checkpoint")
    p.add_argument("--detach", action="store_true", help="start as a background job, print its id and return")
    p.set_defaults(func=cmd_finetune)

    j = sub.add_parser("jobs", help="list, inspect, cancel or resume finetune jobs")
    jsub = j.add_subparsers(dest="jobs_command", metavar="ACTION")
    j.set_defaults(func=cmd_jobs_list, json=False, limit=20)
    pl = jsub.add_parser("list", help="recent jobs")
    pl.add_argument("--limit", type=int, default=20)
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=cmd_jobs_list)
    ps = jsub.add_parser("show", help="one job: status, config, metrics, recent events")
    ps.add_argument("job_id")
    ps.add_argument("--json", action="store_true")
    ps.set_defaults(func=cmd_jobs_show)
    pg = jsub.add_parser("logs", help="the tail of a job's log")
    pg.add_argument("job_id")
    pg.add_argument("-n", type=int, default=40)
    pg.set_defaults(func=cmd_jobs_logs)
    pe = jsub.add_parser("events", help="a job's progress events as JSON lines")
    pe.add_argument("job_id")
    pe.add_argument("--since", type=int, default=0)
    pe.add_argument("--follow", action="store_true", help="keep printing until the job ends")
    pe.set_defaults(func=cmd_jobs_events)
    pc = jsub.add_parser("cancel", help="stop a job (it saves a checkpoint first)")
    pc.add_argument("job_id")
    pc.add_argument("--grace", type=float, default=30.0, help="seconds before SIGKILL (default 30)")
    pc.set_defaults(func=cmd_jobs_cancel)
    pr = jsub.add_parser("resume", help="continue a cancelled/interrupted/failed job in the background")
    pr.add_argument("job_id")
    pr.set_defaults(func=cmd_jobs_resume)
    pw = jsub.add_parser("wait", help="wait until a job ends")
    pw.add_argument("job_id")
    pw.add_argument("--timeout", type=float, default=None)
    pw.set_defaults(func=cmd_jobs_wait)


def config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Any:
    from toolformer_app.training.options import FinetuneConfig

    values = dict(base or {})
    for _, dest, _, _ in _FLAGS:
        if getattr(args, dest, None) is not None:
            values[dest] = getattr(args, dest)
    for _, dest, _ in _SWITCHES:
        if getattr(args, dest, None) is not None:
            values[dest] = getattr(args, dest)
    return FinetuneConfig.from_dict(values)


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def cmd_finetune(args: argparse.Namespace) -> int:
    from toolformer_app.models import ModelLoadError
    from toolformer_app.training import jobs
    from toolformer_app.training.options import TrainingInputError
    from toolformer_app.training.trainer import validate_inputs

    try:
        existing = jobs._row(args.job_id) if args.job_id and jobs._is_main_rank() else None
        if args.job_id and not jobs._is_main_rank():
            return jobs.run_job(args.job_id, resume=args.resume)  # rank 0 owns the store
        if existing is not None:
            if args.detach:
                return _err("--detach starts a new job; use `jobs resume` for an existing one")
            if existing.status != "queued":
                if not args.resume:
                    return _err(f"job {args.job_id} exists ({existing.status}); use --resume or `jobs resume`")
                jobs.prepare_resume(args.job_id)
            return jobs.run_job(args.job_id, resume=args.resume)
        if args.resume:
            return _err(f"no job {args.job_id!r} to resume" if args.job_id else "--resume needs --job-id")
        cfg = config_from_args(args)
        if args.detach:
            job_id = jobs.start_job(cfg, job_id=args.job_id)
            print(job_id)
            return 0
        import os

        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not args.job_id:
            return _err("under a multi-process launcher pass --job-id NAME, so every rank joins the same job")
        job_id = args.job_id or jobs.new_job_id()
        cfg = jobs._normalise(cfg, job_id)
        validate_inputs(cfg)
        jobs.mark_interrupted()
        jobs.create_job(cfg, job_id)
        print(f"job {job_id}: events in {jobs.get_job(job_id).events_path}", file=sys.stderr)
        code = jobs.run_job(job_id)
        job = jobs.get_job(job_id)
        print(json.dumps({"job": job_id, "status": job.status, "error": job.error, "metrics": job.metrics}, indent=2))
        return code
    except (TrainingInputError, ModelLoadError, jobs.JobError) as exc:
        return _err(str(exc))


def _fmt_time(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def cmd_jobs_list(args: argparse.Namespace) -> int:
    from toolformer_app.training import jobs

    try:
        rows = jobs.list_jobs(limit=args.limit)
    except jobs.JobError as exc:
        return _err(str(exc))
    if args.json:
        print(json.dumps([j.to_dict() for j in rows], indent=2, default=str))
        return 0
    if not rows:
        print("no jobs")
        return 0
    print(f"{'id':28} {'status':12} {'step':>6} {'created':19}  out / error")
    for j in rows:
        tail = j.error if j.status in ("failed", "interrupted") and j.error else (j.out_dir or "")
        print(f"{j.id:28} {j.status:12} {j.last_step or 0:>6} {_fmt_time(j.created):19}  {tail}")
    return 0


def cmd_jobs_show(args: argparse.Namespace) -> int:
    from toolformer_app.training import jobs

    try:
        job = jobs.get_job(args.job_id)
        events = jobs.read_events(args.job_id)
    except jobs.JobError as exc:
        return _err(str(exc))
    if args.json:
        print(json.dumps({"job": job.to_dict(), "events": events}, indent=2, default=str))
        return 0
    for key in ("id", "status", "pid", "out_dir", "last_checkpoint", "error", "attempts"):
        print(f"{key:16} {getattr(job, key)}")
    print(f"{'created':16} {_fmt_time(job.created)}   started {_fmt_time(job.started)}   finished {_fmt_time(job.finished)}")
    if job.metrics:
        print("metrics         ", json.dumps({k: v for k, v in job.metrics.items() if k != "eval_history"}))
    progress = [e for e in events if e.get("type") == "progress"]
    if progress:
        e = progress[-1]
        print(f"last progress    step {e.get('step')}/{e.get('total_steps')} loss {e.get('loss')} eta {e.get('eta_s')} s")
    for e in [e for e in events if e.get("type") in ("eval", "checkpoint", "error", "done", "cancelled")][-8:]:
        print("  ", json.dumps({k: v for k, v in e.items() if k not in ("time", "metrics")}))
    return 0


def cmd_jobs_logs(args: argparse.Namespace) -> int:
    from toolformer_app.training import jobs

    try:
        print(jobs.log_tail(args.job_id, args.n))
    except jobs.JobError as exc:
        return _err(str(exc))
    return 0


def cmd_jobs_events(args: argparse.Namespace) -> int:
    from toolformer_app.training import jobs

    since = args.since
    try:
        while True:
            events = jobs.read_events(args.job_id, since)
            for e in events:
                print(json.dumps(e), flush=True)
            since += len(events)
            if not args.follow or not jobs.get_job(args.job_id).active:
                return 0
            time.sleep(1.0)
    except jobs.JobError as exc:
        return _err(str(exc))


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    from toolformer_app.training import jobs

    try:
        job = jobs.cancel_job(args.job_id, grace_s=args.grace)
    except jobs.JobError as exc:
        return _err(str(exc))
    print(f"job {job.id}: {job.status}; last checkpoint {job.last_checkpoint or 'none'}")
    return 0


def cmd_jobs_resume(args: argparse.Namespace) -> int:
    from toolformer_app.training import jobs

    try:
        job_id = jobs.resume_job(args.job_id)
    except jobs.JobError as exc:
        return _err(str(exc))
    print(job_id)
    return 0


def cmd_jobs_wait(args: argparse.Namespace) -> int:
    from toolformer_app.training import jobs

    try:
        job = jobs.wait_job(args.job_id, timeout=args.timeout)
    except jobs.JobError as exc:
        return _err(str(exc))
    print(f"job {job.id}: {job.status}" + (f" ({job.error})" if job.error else ""))
    return 0 if job.status == "succeeded" else 1
