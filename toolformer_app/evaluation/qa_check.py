"""The QA tool alone: the share of facts whose gold answer is in the tool's result (does QA answer at all?).

Two sets, never mixed:
- ``dev``: facts built the same way as the facts suite (capitals from countryinfo, relations from the
  wiki extracts) that are *not* in the suite. QA's settings are chosen here.
- ``facts``: the evaluation suite, measured and reported only.

Each item's prompt as written ("The capital of Kenya is") is the QA input: the reader sees the question
the way a completion asks it.

    python -m toolformer_app.evaluation.qa_check --set dev --limit 100
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from toolformer_app.evaluation import scoring
from toolformer_app.evaluation import suites as suite_lib
from toolformer_app.tools.wikisearch import clean_query


def dev_items() -> list[suite_lib.Item]:
    """Facts of the suite's kinds whose prompt is not in the suite (the suite was sampled from the same pool)."""
    import random

    used = {it.prompt for it in suite_lib.load_suite("facts")}
    pool = [it for it in suite_lib.capital_facts() + suite_lib.wiki_facts() if it.prompt not in used]
    random.Random(suite_lib.SEED).shuffle(pool)  # capitals and relations mixed, so --limit takes both
    return [suite_lib.Item(f"qa-dev-{n:04d}", it.kind, it.prompt, it.answers, it.meta) for n, it in enumerate(pool)]


def answer_rate(tool: Any, items: list[suite_lib.Item]) -> dict[str, Any]:
    """Run ``tool`` on each item's prompt (as written); the share whose result holds a gold answer."""
    questions = [it.prompt.removeprefix(suite_lib.FACTS_PREFIX) for it in items]
    t0 = time.perf_counter()
    results = tool.run_many(questions)
    hits = [bool(r.ok and _holds(r.output, it.answers)) for it, r in zip(items, results, strict=True)]
    # the retriever alone: a gold answer in the passages the reader was given (its ceiling)
    retrieved = [_holds(" ".join(tool.retrieve(clean_query(q))), it.answers) if hasattr(tool, "retrieve") else None
                 for q, it in zip(questions, items, strict=True)]
    return {"n": len(items), "answer_in_result": round(sum(hits) / len(items), 4) if items else None,
            "answer_in_passages": round(sum(bool(x) for x in retrieved) / len(items), 4)
            if items and None not in retrieved else None,
            "no_result": sum(not r.ok for r in results), "seconds": round(time.perf_counter() - t0, 1),
            "examples": [{"q": q, "gold": it.answer, "result": r.output} for q, it, r in
                         list(zip(questions, items, results, strict=True))[:5]]}


def _holds(text: str, answers: list[str] | tuple[str, ...]) -> bool:
    return any(scoring.contains_words(scoring.normalize_words(text), scoring.normalize_words(a)) for a in answers)


def main(argv: list[str] | None = None) -> int:
    from toolformer_app.tools import get_tool

    p = argparse.ArgumentParser(prog="python -m toolformer_app.evaluation.qa_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", choices=("dev", "facts"), default="dev")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--settings", default="{}", help='QA fields as JSON, e.g. {"n_passages": 1}')
    args = p.parse_args(argv)
    items = dev_items() if args.set == "dev" else suite_lib.load_suite("facts")
    items = items[: args.limit] if args.limit else items
    tool = get_tool("QA", **json.loads(args.settings))
    print(json.dumps({"set": args.set, "settings": json.loads(args.settings), **answer_rate(tool, items)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
