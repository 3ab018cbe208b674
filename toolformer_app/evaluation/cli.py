"""`eval`: zero-shot accuracy (base / tools / disabled) and perplexity, as a Markdown table and results.json."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

_EPILOG = """examples:
  python -m toolformer_app eval --model smollm2-135m --suites math,facts,dates,perplexity --limit 50
  python -m toolformer_app eval --model runs/finetune/ckpt --suites facts --ks 0,1,3,10   # Table 9
  python -m toolformer_app eval --model smollm2-135m --suite-file my_suite.jsonl

A custom suite is a JSONL file of {"prompt": ..., "answer": ..., "kind": "math"|"facts"|"dates"} lines.
Writes results.json, predictions.jsonl and table.md to --out.
"""


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    from toolformer_app.decoding import InferenceConfig  # the paper's k = 10 is its default
    from toolformer_app.evaluation.suites import DEV_OFFSET

    p = subparsers.add_parser(
        "eval", help="zero-shot accuracy with/without tools, call rates and perplexity (paper, section 4)",
        description="Evaluates the base model, the model with tools (k=10, one call) and the model with tools "
        "disabled, in one run, on fixed offline suites; prints a Markdown table.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default=None, help="preset, hub id or directory (default: the app's default model)")
    p.add_argument("--base-model", default=None,
                   help="the base model (default: base_model in the checkpoint's toolformer_card.json, else --model)")
    p.add_argument("--suites", default=None,
                   help="comma-separated: math,facts,facts_plain,dates,perplexity,plain "
                        "(default: math,facts,dates,perplexity, or none with --suite-file)")
    p.add_argument("--suite-file", action="append", default=[], metavar="FILE",
                   help="a custom JSONL suite (repeatable)")
    p.add_argument("--limit", type=int, default=None, help="the first N items of each suite / N held-out texts")
    p.add_argument("--offset", type=int, default=0,
                   help=f"skip the first N items of each suite; --offset {DEV_OFFSET} is the dev split, which no "
                        "reported figure uses: choose settings there")
    p.add_argument("--out", default=None, help="output directory (default: <data dir>/eval/<model>)")
    p.add_argument("--ks", type=_ints, default=(), help="sweep k for Table 9, e.g. 0,1,3,10")
    p.add_argument("--top-k", type=int, default=InferenceConfig.top_k_call,
                   help="k of the tools mode (default %(default)s, the paper's)")
    p.add_argument("--modes", default="base,tools,disabled", help="comma-separated subset of base,tools,disabled")
    p.add_argument("--max-new-tokens", type=int, default=32, help="tokens per answer (default 32)")
    p.add_argument("--ppl-tokens", type=int, default=128, help="tokens scored per held-out extract (default 128)")
    p.add_argument("--thresholds", type=_floats, default=(),
                   help="sweep a call threshold on p(' [') (Table 9 analogue), e.g. 0.01,0.05,0.1")
    p.add_argument("--call-threshold", type=float, default=None,
                   help="tools mode calls when p(' [') reaches this instead of top-k (Chat's calibrated mode)")
    p.add_argument("--clause-inputs", default="card",
                   help="tools whose input the decoder writes (the clause so far), e.g. QA; 'card' (default): the "
                   "model card's setting; 'none': the model writes every input (the paper)")
    p.add_argument("--free-names", action="store_true",
                   help="decode tool names freely (a suite's disallowed tool can be written; the old behaviour)")
    p.add_argument("--batch-size", type=int, default=16,
                   help="items decoded together in each mode (default 16; 1: one at a time, the same outputs in fp32)")
    p.add_argument("--no-base-cache", action="store_true",
                   help="decode the base mode again instead of reusing earlier runs' rows (<data dir>/eval_cache.sqlite)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import time

    from toolformer_app import config, models
    from toolformer_app.evaluation.config import EvalConfig
    from toolformer_app.evaluation.report import format_table
    from toolformer_app.evaluation.runner import evaluate
    from toolformer_app.evaluation.suites import SuiteError

    if args.suites is not None:
        chosen = tuple(s.strip() for s in args.suites.split(",") if s.strip())
    else:
        chosen = () if args.suite_file else EvalConfig.suites
    cfg = EvalConfig(
        suites=chosen, suite_files=tuple(args.suite_file), limit=args.limit, offset=args.offset,
        modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()), top_k_call=args.top_k, ks=args.ks,
        max_new_tokens=args.max_new_tokens, ppl_tokens=args.ppl_tokens, seed=args.seed,
        thresholds=args.thresholds, call_threshold=args.call_threshold, constrain_names=not args.free_names,
        batch_size=args.batch_size, base_cache=not args.no_base_cache,
        clause_inputs=None if args.clause_inputs == "card" else
        tuple(t.strip() for t in args.clause_inputs.split(",") if t.strip() and args.clause_inputs != "none"),
    )
    name = args.model or models.model_id()
    out = Path(args.out) if args.out else config.data_dir() / "eval" / re.sub(r"[^\w.-]+", "_", name).strip("_")
    t0 = time.perf_counter()
    try:
        results = evaluate(name, config=cfg, base_model=args.base_model, device=args.device, out_dir=out,
                           progress=not args.quiet)
    except (SuiteError, models.ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(results))
    cached = results.get("base_cache")
    reused = f" (base mode: {cached['hits']} rows reused, {cached['misses']} decoded)" if cached else ""
    print(f"\nwrote {out}/results.json, predictions.jsonl, table.md in {time.perf_counter() - t0:.0f} s{reused}",
          file=sys.stderr)
    return 0
