"""QA's reader: its few-shot prefix re-encoded for every prompt vs its KV cache computed once, and shorter passages.

The questions ask about wiki titles (what, where, when), the passages are QA's own BM25 retrieval,
and the reader is the one QA runs (``_lm.greedy_complete_many``, batched). Each variant's answers
are compared with those of the default reader (no cache, the default passage length): the cache must
give the same answers, and a shorter passage is only worth having where it keeps them.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import replace

TEMPLATES = ("What is {} known for?", "Where is {}?", "When was {} founded?", "Who founded {}?")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=16, help="questions")
    p.add_argument("--passage-chars", default="300", help="shorter passage lengths to try, comma-separated")
    p.add_argument("--model", default=None, help="the reader's LM (default: the app's default model)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")


def _questions(n: int) -> list[str]:
    from toolformer_app.tools.corpus import wiki_titles

    rng = random.Random(0)
    titles = rng.sample(sorted(wiki_titles()), min(n, len(wiki_titles())))
    return [TEMPLATES[i % len(TEMPLATES)].format(t) for i, t in enumerate(titles)]


def run(args: argparse.Namespace) -> int:
    import torch

    from toolformer_app import config, models
    from toolformer_app.tools import _lm
    from toolformer_app.tools.qa import QA, READER_SHOTS, build_prompt, clean_answer

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    name = args.model or config.default_model()
    model, tok = models.load(name)
    qa = QA(model_name=name)
    questions = _questions(args.n)

    def read(tool: QA, cached: bool) -> tuple[list[str], float, int]:
        prompts = [build_prompt(q, tool.retrieve(q)) for q in questions]
        tokens = sum(len(tok(p)["input_ids"]) for p in prompts)
        start = time.perf_counter()
        raws = _lm.greedy_complete_many(model, tok, prompts, [tool.max_new_tokens] * len(prompts),
                                        prefix=READER_SHOTS if cached else None)
        return [clean_answer(r) for r in raws], time.perf_counter() - start, tokens

    read(qa, True)  # warm-up: retrieval index, kernels, the prefix's cache
    base, base_s, base_tokens = read(qa, False)
    variants = {f"cached_{qa.passage_chars}": qa}
    for chars in [int(c) for c in args.passage_chars.split(",") if c.strip()]:
        variants[f"cached_{chars}"] = replace(qa, passage_chars=chars)
    report: dict = {"model": models.model_id(name), "questions": len(questions), "threads": torch.get_num_threads(),
                    "prefix_tokens": len(tok(READER_SHOTS)["input_ids"]),
                    "uncached": {"passage_chars": qa.passage_chars, "s": round(base_s, 2), "prompt_tokens": base_tokens}}
    again_s = base_s
    for label, tool in variants.items():
        answers, seconds, tokens = read(tool, True)
        report[label] = {"passage_chars": tool.passage_chars, "s": round(seconds, 2), "prompt_tokens": tokens,
                         "same_answers": sum(a == b for a, b in zip(answers, base, strict=True)),
                         "changed": [[q, b, a] for q, a, b in zip(questions, answers, base, strict=True) if a != b]}
    _, again_s, _ = read(qa, False)  # the default reader again: the baseline is the mean of both runs
    report["uncached"]["s"] = round((base_s + again_s) / 2, 2)
    report["uncached"]["runs_s"] = [round(base_s, 2), round(again_s, 2)]
    print(f"model {report['model']}; {len(questions)} questions; few-shot prefix {report['prefix_tokens']} tokens")
    print(f"no cache, {qa.passage_chars}-char passages: {report['uncached']['s']} s "
          f"({report['uncached']['runs_s']}), {base_tokens} prompt tokens")
    for label, r in report.items():
        if label.startswith("cached_"):
            print(f"prefix cached, {r['passage_chars']}-char passages: {r['s']} s "
                  f"({report['uncached']['s'] / r['s']:.2f}x), {r['prompt_tokens']} prompt tokens, "
                  f"same answers {r['same_answers']}/{len(questions)}")
            for q, before, after in r["changed"]:
                print(f"    {q!r}: {before!r} -> {after!r}")
    if args.json:
        print(json.dumps(report))
    return 0
