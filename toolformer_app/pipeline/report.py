"""`cstar`: the quality of C* per tool (kept calls, precision), and two runs compared on the texts they share.

    python -m toolformer_app cstar runs/recipe/gen/calendar
    python -m toolformer_app cstar runs/recipe/gen/calendar runs/placebo_calendar   # placebo control vs not

Precision is the share of kept calls whose result is borne out by the next tokens
(``filtering.borne_out``). Comparing runs on shared text ids is how the placebo control is measured
at the same tau_f: the samples are seeded per (text, tool, position), so the runs draw the same calls.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def run_report(out: str | Path, text_ids: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per tool: candidates with a result, kept at the run's tau_f, precision, and texts with a kept call."""
    from toolformer_app.pipeline.config import PipelineConfig
    from toolformer_app.pipeline.filtering import keep_if_helpful, precision
    from toolformer_app.pipeline.run import load_candidates, tau_f_per_tool

    out = Path(out)
    cfg = PipelineConfig.from_dict(json.loads((out / "config.json").read_text()))
    cands = [c for c in load_candidates(out / "candidates.jsonl") if text_ids is None or c.text_id in text_ids]
    kept = keep_if_helpful(cands, tau_f_per_tool(cfg))
    report = {}
    for tool in sorted({c.tool for c in cands}):
        mine = [c for c in kept if c.tool == tool]
        report[tool] = {"scored": sum(c.tool == tool and c.loss_reduction is not None for c in cands),
                        "kept": len(mine), "texts_with_call": len({c.text_id for c in mine}),
                        "precision": precision(mine), "placebo": cfg.placebo}
    return report


def _ids(out: Path) -> set[str]:
    from toolformer_app.files import read_jsonl

    return {r["text_id"] for r in read_jsonl(out / "records.jsonl")}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cstar", help="C* quality per tool (kept calls, precision); compare two generate runs",
                       description="Prints kept calls and precision per tool for a generate run, or for two runs "
                       "on the texts both read (e.g. with and without --placebo).")
    p.add_argument("runs", nargs="+", help="one or two generate output directories")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    dirs = [Path(r) for r in args.runs]
    if len(dirs) > 2:
        print("error: give one or two runs", file=sys.stderr)
        return 2
    for d in dirs:
        if not (d / "candidates.jsonl").exists() or not (d / "config.json").exists():
            print(f"error: {d} is not a finished generate run (no candidates.jsonl)", file=sys.stderr)
            return 2
    shared = set.intersection(*(_ids(d) for d in dirs)) if len(dirs) == 2 else None
    rows = {str(d): run_report(d, shared) for d in dirs}
    print(json.dumps({"texts": len(shared) if shared is not None else None, "runs": rows}, indent=1))
    return 0
